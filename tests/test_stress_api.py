"""The Python stress API writes the command's header: either resumes the other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.prep_fixtures import prepare_phantoms
from torchio_ramp.stress import stress_test_model
from torchio_ramp.stress.cli import main
from torchio_ramp.stress.store import ResultsError

CENTRES = torch.tensor([0.2, 0.52, 0.5, 0.7, 0.48, 0.46]) + 0.0007
GRID = {'families': ['stripe'], 'levels': [0.1, 0.2]}


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp('api')
    prepare_phantoms(root, 3, '16,16,16')
    conv = torch.nn.Conv3d(1, 6, 1)
    with torch.no_grad():
        conv.weight.copy_(100 * CENTRES.reshape(6, 1, 1, 1, 1))
        conv.bias.copy_(-50 * CENTRES**2)
    model = root / 'nearest.pt2'
    batch = torch.export.Dim('batch', min=1, max=64)
    program = torch.export.export(
        conv, (torch.rand(2, 1, 8, 8, 8),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, model)
    model.with_suffix('.json').write_text(
        json.dumps({'hu_range': [-200, 300], 'patch_size': 8})
    )
    return root / 'prepared', model


def cli_run(model, data, out, *extra):
    arguments = ['run', '--model', model, '--data', data, '--out', out,
                 '--families', 'stripe', '--levels', '0.1,0.2', '--no-progress',
                 *extra]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in arguments])
    assert result.exit_code == 0, result.output
    return result.output


def header(folder: Path) -> dict:
    document = json.loads((folder / 'results.json').read_text())
    document.pop('sessions')
    return document


def test_api_and_cli_write_the_same_header(setup, tmp_path):
    data, model = setup
    cli_run(model, data, tmp_path / 'cli')
    outcome = stress_test_model(model, data, tmp_path / 'api', **GRID)
    assert header(tmp_path / 'cli') == header(tmp_path / 'api')
    assert len(outcome.evaluated) == 3
    cli = (tmp_path / 'cli' / 'results.csv').read_bytes()
    assert (tmp_path / 'api' / 'results.csv').read_bytes() == cli


def test_each_resumes_the_other(setup, tmp_path):
    data, model = setup
    cli_run(model, data, tmp_path / 'a')
    outcome = stress_test_model(model, data, tmp_path / 'a', **GRID)
    assert outcome.evaluated == [] and len(outcome.skipped) == 3
    # A run cut short by the API (one subject) is finished by the command.
    folder = tmp_path / 'b'
    stress_test_model(model, data, folder, shard=None, **GRID)
    lines = (folder / 'results.csv').read_text().splitlines(keepends=True)
    first = lines[1].split(',')[2]
    kept = [line for line in lines if line.split(',')[2] in ('subject_id', first)]
    (folder / 'results.csv').write_text(''.join(kept))
    output = cli_run(model, data, folder)
    assert '2 subject(s) evaluated, 1 already done' in output
    # Other arguments are still refused, naming the difference.
    with pytest.raises(ResultsError, match=r'arguments\.seed'):
        stress_test_model(model, data, folder, seed=1, **GRID)


def test_the_run_is_announced_in_one_line(setup, tmp_path):
    data, model = setup
    lines = []
    stress_test_model(
        model, data, tmp_path / 'run', shard=(0, 2), announce=lines.append, **GRID
    )
    assert lines == [
        f'ramp-stress: nearest on {data} (test) shard 0/2: 2 corrupted settings'
        ' + clean (paired v2 severity protocol), HU window (-200.0, 300.0),'
        ' patch (8, 8, 8), overlap (4, 4, 4), device cpu'
    ]


def test_the_header_records_what_earlier_versions_recorded(setup, tmp_path):
    # Results written before the run specification resume after it: the
    # binding arguments have the same names, the session the same facts.
    data, model = setup
    stress_test_model(model, data, tmp_path / 'run', batch_size=3, **GRID)
    document = json.loads((tmp_path / 'run' / 'results.json').read_text())
    arguments = document['arguments']
    assert set(arguments) == {
        'name', 'model', 'model_sha256', 'patch_size', 'overlap', 'amp',
        'num_classes', 'strategy', 'families', 'levels', 'seed', 'hu_range',
        'protocol', 'protocol_version', 'split', 'data_sha256',
    }  # fmt: skip
    assert arguments['patch_size'] == [8, 8, 8] and arguments['overlap'] == [4, 4, 4]
    assert arguments['amp'] is False and arguments['name'] == 'nearest'
    assert arguments['families'] == ['stripe'] and arguments['hu_range'] == [-200, 300]
    session = document['sessions'][0]
    assert set(session) == {
        'started', 'data', 'tool_version', 'torch', 'torchio', 'host',
        'model_path', 'sidecar', 'device', 'aggregation_device', 'batch_size',
    }  # fmt: skip
    assert session['batch_size'] == 3 and session['device'] == 'cpu'
