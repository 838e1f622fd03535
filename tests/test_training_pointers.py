"""What ``ramp-train`` points to when it ends: the ``torch.export`` archive."""

from __future__ import annotations

import json
from pathlib import Path

from ramp_prep.cli import main as ramp_prep
from torchio_ramp.training.cli import main as ramp_train

from .prep_fixtures import invoke_cli


def test_ramp_train_recommends_best_pt2_and_config_json_lists_it(tmp_path):
    source, data, run = tmp_path / 'source', tmp_path / 'prepared', tmp_path / 'run'
    invoke_cli(ramp_prep, ['synth', source, '--layout', 'totalseg', '--subjects',
                           7, '--shape', '16,16,16', '--no-progress'], 0)  # fmt: skip
    invoke_cli(ramp_prep, ['totalseg', source, data, '--no-progress'], 0)
    result = invoke_cli(
        ramp_train,
        ['--data', data, '--out', run, '--model', 'tiny', '--patch-size', 16,
         '--epochs', 1, '--iterations-per-epoch', 1, '--samples-per-volume', 1,
         '--queue-length', 2, '--val-overlap', 0, '--device', 'cpu',
         '--no-progress'],
        0,
    )  # fmt: skip
    lines = result.output.splitlines()
    model = run / 'best.pt2'
    assert model.is_file()
    assert f'Model: {model} (torch.export), {run / "best.pt"} (TorchScript)' in (
        result.output
    )
    assert lines[-1].startswith(f'Stress test: ramp-stress run --model {model} ')
    files = json.loads((run / 'config.json').read_text())['files']
    assert files['torch_export'] == 'best.pt2' and files['torchscript'] == 'best.pt'
    for name in files.values():
        assert Path(run / name).is_file(), name
    # Resuming a finished run rewrites nothing the stress test fingerprints.
    exported = model.read_bytes()
    again = invoke_cli(ramp_train, ['--out', run, '--resume', '--no-progress'], 0)
    assert f'Model: {model} (torch.export' in again.output
    assert model.read_bytes() == exported
