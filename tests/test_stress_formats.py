"""One model exported as torch.export, ONNX and TorchScript: the same results.

Tolerance: the three runtimes compute the same float32 convolutions in a
different order, so logits agree to 1e-5 (absolute and relative; measured:
2e-5 absolute on logits of magnitude 15, 1.3e-6 relative); the stress-test
results tables (Dice, volumes) are then equal to 1e-9, i.e. no voxel changes
label.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.prep_fixtures import prepare_phantoms
from torchio_ramp.model_files import load_model
from torchio_ramp.model_files import load_model_file
from torchio_ramp.model_files import model_format
from torchio_ramp.stress.cli import main
from torchio_ramp.stress.store import load_results

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

CENTRES = torch.tensor([0.2, 0.52, 0.5, 0.7, 0.48, 0.46]) + 0.0007
SIDECAR = {'hu_range': [-200, 300], 'patch_size': 16, 'num_classes': 6}
GRID = ['--families', 'gaussian_noise,ghosting', '--levels', '0.05,0.25']


def network() -> torch.nn.Module:
    """Nearest-intensity classifier (logit_k = 50 (2 c_k x - c_k^2)) after a
    light 3x3x3 smoothing: a real segmenter of the phantoms."""
    smooth = torch.nn.Conv3d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        smooth.weight.fill_(0.1 / 26)
        smooth.weight[0, 0, 1, 1, 1] = 0.9
    conv = torch.nn.Conv3d(1, 6, 1)
    with torch.no_grad():
        conv.weight.copy_(100 * CENTRES.reshape(6, 1, 1, 1, 1))
        conv.bias.copy_(-50 * CENTRES**2)
    return torch.nn.Sequential(smooth, torch.nn.ReLU(), conv).eval()


def export_onnx(model, path: Path, batch: int | None, config: dict | None = None):
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    example = torch.rand(batch or 2, 1, 16, 16, 16)
    axes = None if batch else {'image': {0: 'batch'}, 'logits': {0: 'batch'}}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (example,), str(path), input_names=['image'],
                          output_names=['logits'], dynamic_axes=axes,
                          dynamo=False)  # fmt: skip
    if config is not None:
        proto = onnx.load(str(path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = 'config.json', json.dumps(config)
        onnx.save(proto, str(path))


def export_program(model, path: Path, batch: int | None, config: dict | None = None):
    example = torch.rand(batch or 2, 1, 16, 16, 16)
    shapes = None if batch else ({0: torch.export.Dim('batch', min=1, max=4096)},)
    program = torch.export.export(model, (example,), dynamic_shapes=shapes)
    extra = None if config is None else {'config.json': json.dumps(config)}
    torch.export.save(program, path, extra_files=extra)


@pytest.fixture(scope='module')
def exported(tmp_path_factory) -> dict[str, Path]:
    """The same network in every format, under suffixes that do not say which."""
    folder = tmp_path_factory.mktemp('formats')
    model = network()
    paths = {
        'torch.export': folder / 'net-a.model',
        'onnx': folder / 'net-b.model',
        'torchscript': folder / 'net-c.model',
    }
    export_program(model, paths['torch.export'], None)
    export_onnx(model, paths['onnx'], None)
    torch.jit.save(torch.jit.script(model), paths['torchscript'])
    for path in paths.values():
        path.with_suffix('.json').write_text(json.dumps(SIDECAR))
    return paths


@pytest.fixture(scope='module')
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('formats-data')
    return prepare_phantoms(root, 3, '24,24,24')


def test_format_is_read_from_the_content(exported, tmp_path):
    for kind, path in exported.items():
        assert model_format(path) == kind
    weights = tmp_path / 'weights.pt2'
    torch.save(network().state_dict(), weights)
    with pytest.raises(ValueError, match=r'weights\.pt2 was written by torch\.save'):
        model_format(weights)
    pickled = tmp_path / 'old.pt'
    torch.save(network().state_dict(), pickled, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r'old\.pt is a pickle.*module:factory'):
        model_format(pickled)
    text = tmp_path / 'notes.onnx'
    text.write_text('hello')
    with pytest.raises(ValueError, match=r'notes\.onnx is not a model file'):
        load_model(text)


def test_logits_agree_across_formats(exported):
    x = torch.rand(3, 1, 16, 16, 16)  # an odd batch: not the export's example
    expected = network()(x)
    for kind, path in exported.items():
        module, _, found = load_model_file(path, trust=kind == 'torchscript')
        assert found == kind
        torch.testing.assert_close(module(x), expected, atol=1e-5, rtol=1e-5)


def test_fixed_batch_exports_run_any_batch(tmp_path):
    model = network()
    x = torch.rand(3, 1, 16, 16, 16)
    for name, export in (('one.onnx', export_onnx), ('one.pt2', export_program)):
        path = tmp_path / name
        export(model, path, 1)
        module, _, _ = load_model_file(path)
        assert module.batch == 1
        torch.testing.assert_close(module(x), model(x), atol=1e-5, rtol=1e-5)


def test_embedded_config_and_sidecar_rules(tmp_path):
    model = network()
    config = {**SIDECAR, 'patch_size': [16, 16, 8], 'strategy': 'ramp'}
    for name, export in (('a.onnx', export_onnx), ('b.pt2', export_program)):
        path = tmp_path / name
        export(model, path, None, config)
        loaded = load_model(path)
        assert loaded.config.patch_size == (16, 16, 8)
        assert loaded.config.source == f'{path}!config.json'
        assert loaded.fingerprint()['model'] == model_format(path)
        # A sidecar file beside the model wins over the embedded settings.
        path.with_suffix('.json').write_text(json.dumps(SIDECAR))
        assert load_model(path).config.patch_size == (16, 16, 16)
        with pytest.raises(ValueError, match='--weights is only for'):
            load_model(path, tmp_path / 'w.pth')


def test_same_results_table_from_every_format(exported, prepared, tmp_path):
    tables = {}
    for kind, path in exported.items():
        out = tmp_path / kind
        arguments = ['run', '--model', path, '--data', prepared, '--out', out,
                     *GRID, '--batch-size', 3, '--no-progress']  # fmt: skip
        result = CliRunner().invoke(main, [str(a) for a in arguments])
        assert result.exit_code == 0, result.output + repr(result.exception)
        header = json.loads((out / 'results.json').read_text())
        assert header['arguments']['model'] == kind
        tables[kind] = load_results(out)
    reference = tables['torch.export']
    dice = reference.subject_dice()
    assert dice[:, 0].min() > 0.3  # a model that segments the clean phantoms
    assert dice[:, -1].max() < dice[:, 0].min()  # ghosting 0.25 breaks it
    for results in tables.values():
        assert results.subjects == reference.subjects
        np.testing.assert_allclose(results.dice, reference.dice, atol=1e-9)
        np.testing.assert_allclose(
            results.predicted_ml, reference.predicted_ml, atol=1e-9
        )
