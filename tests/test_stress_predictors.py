"""Loading models (TorchScript, module:factory + state_dict) and their sidecar."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from torchio_ramp.inference import check_output
from torchio_ramp.inference import default_overlap
from torchio_ramp.inference import make_predictor
from torchio_ramp.model_files import find_sidecar
from torchio_ramp.model_files import load_model
from torchio_ramp.model_files import read_model_config

FACTORY = f'{__name__}:make_network'

# TorchScript is deprecated in recent PyTorch but is the format the paper's
# pipeline ships; the warnings are not what these tests check.
pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')


@pytest.fixture(autouse=True)
def restore_sys_path(monkeypatch):
    """Loading a factory adds the working directory to ``sys.path``; undo it."""
    monkeypatch.setattr(sys, 'path', list(sys.path))


def make_network() -> torch.nn.Module:
    """Factory used through ``--model tests.test_stress_predictors:make_network``."""
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 1), torch.nn.ReLU())


def test_torchscript_file_and_sidecar(tmp_path):
    network = torch.jit.script(torch.nn.Conv3d(1, 6, 1))
    path = tmp_path / 'strategy_a.pt'
    torch.jit.save(network, path)
    (tmp_path / 'strategy_a.json').write_text(
        json.dumps({'hu_range': [-150, 250], 'patch_size': [16, 16, 8], 'extra': 1})
    )
    loaded = load_model(path)
    assert loaded.name == 'strategy_a'
    assert loaded.config.hu_range == (-150.0, 250.0)
    assert loaded.config.patch_size == (16, 16, 8)
    assert loaded.config.source == str(tmp_path / 'strategy_a.json')
    assert loaded.fingerprint()['model'] == 'torchscript'
    assert len(loaded.fingerprint()['model_sha256']) == 64
    x = torch.rand(1, 1, 4, 4, 4)
    assert torch.equal(loaded.module(x), network(x))


def test_config_json_in_the_folder_is_the_fallback(tmp_path):
    (tmp_path / 'config.json').write_text(json.dumps({'patch_size': 32}))
    assert find_sidecar(tmp_path / 'best.pt') == tmp_path / 'config.json'
    assert read_model_config(tmp_path / 'best.pt').patch_size == (32, 32, 32)
    assert read_model_config(tmp_path / 'sub' / 'model.pt').source is None


def test_run_folder_best_pt_is_named_after_the_folder(tmp_path):
    # The training script's layout: runs/<strategy>/best.pt + config.json
    folder = tmp_path / 'ramp'
    folder.mkdir()
    torch.jit.save(torch.jit.script(torch.nn.Conv3d(1, 6, 1)), folder / 'best.pt')
    (folder / 'config.json').write_text(
        json.dumps({'hu_range': [-200, 300], 'patch_size': [32, 32, 16]})
    )
    loaded = load_model(folder / 'best.pt')
    assert loaded.name == 'ramp'
    assert loaded.config.patch_size == (32, 32, 16)


def test_config_embedded_in_torchscript_is_used_without_a_sidecar(tmp_path):
    path = tmp_path / 'exported.pt'
    config = {'hu_range': [-100, 200], 'patch_size': 24, 'strategy': 'ramp'}
    torch.jit.save(
        torch.jit.script(torch.nn.Conv3d(1, 6, 1)),
        path,
        _extra_files={'config.json': json.dumps(config)},
    )
    loaded = load_model(path)
    assert loaded.config.hu_range == (-100.0, 200.0)
    assert loaded.config.strategy == 'ramp'
    assert loaded.config.source == f'{path}!config.json'
    assert loaded.name == 'exported'


@pytest.mark.parametrize(
    ('content', 'match'),
    [
        ('{"hu_range": [300, -200]}', 'hu_range'),
        ('{"patch_size": [16, 16]}', 'patch_size'),
        ('{"num_classes": 1}', 'num_classes'),
        ('{"strategy": 3}', 'strategy'),
        ('[1, 2]', 'JSON object'),
        ('{"hu_range": ', 'not valid JSON'),
    ],
)
def test_bad_sidecar_names_file_and_key(tmp_path, content, match):
    (tmp_path / 'model.json').write_text(content)
    with pytest.raises(ValueError, match=match) as error:
        read_model_config(tmp_path / 'model.pt')
    assert 'model.json' in str(error.value)


def test_factory_with_state_dict_and_checkpoint(tmp_path):
    reference = make_network()
    weights = tmp_path / 'weights.pth'
    torch.save(reference.state_dict(), weights)
    loaded = load_model(FACTORY, weights)
    x = torch.rand(1, 1, 3, 3, 3)
    assert torch.equal(loaded.module(x), reference(x))
    assert loaded.name == 'weights' and loaded.fingerprint()['model'] == FACTORY
    checkpoint = tmp_path / 'checkpoint.ckpt'
    torch.save({'state_dict': reference.state_dict(), 'epoch': 3}, checkpoint)
    assert torch.equal(load_model(FACTORY, checkpoint).module(x), reference(x))


def test_whole_pickled_model_is_refused_by_weights_only(tmp_path):
    path = tmp_path / 'pickled.pth'
    torch.save(make_network(), path)
    with pytest.raises(ValueError, match=r'weights_only=True.*state_dict\(\)'):
        load_model(FACTORY, path)


def test_weights_that_do_not_fit(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save(torch.nn.Conv3d(1, 2, 3).state_dict(), path)
    with pytest.raises(ValueError, match='do not fit'):
        load_model(FACTORY, path)


@pytest.mark.parametrize(
    ('model', 'weights', 'error', 'match'),
    [
        ('missing.pt', None, FileNotFoundError, 'model file not found: missing.pt'),
        (FACTORY, None, ValueError, 'needs --weights'),
        (FACTORY, 'absent.pth', FileNotFoundError, 'absent.pth'),
        ('no_such_module_xyz:factory', 'w.pth', ValueError, 'cannot import'),
        (f'{__name__}:absent', 'w.pth', ValueError, 'has no'),
    ],
)
def test_model_errors(tmp_path, monkeypatch, model, weights, error, match):
    monkeypatch.chdir(tmp_path)
    torch.save(make_network().state_dict(), tmp_path / 'w.pth')
    with pytest.raises(error, match=match):
        load_model(model, weights)


def test_state_dict_passed_as_torchscript_explains(tmp_path):
    path = tmp_path / 'weights.pt'
    torch.save(make_network().state_dict(), path)
    with pytest.raises(ValueError, match=r'written by torch\.save.*module:factory'):
        load_model(path)
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a model')
    with pytest.raises(ValueError, match=r'garbage\.pt is not a model file'):
        load_model(garbage)


def test_check_output_shapes():
    assert check_output(torch.nn.Conv3d(1, 6, 1), (8, 8, 8)) == 6
    with pytest.raises(ValueError, match='sidecar says num_classes = 4'):
        check_output(torch.nn.Conv3d(1, 6, 1), (8, 8, 8), num_classes=4)
    with pytest.raises(ValueError, match='expected logits'):
        check_output(torch.nn.Conv3d(1, 6, 3), (8, 8, 8), name='m.pt')
    with pytest.raises(ValueError, match=r'm\.pt failed on a blank'):
        check_output(torch.nn.Conv3d(2, 6, 1), (8, 8, 8), name='m.pt')


def test_predictor_over_a_module_matches_full_volume_argmax():
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 6, 1)  # pointwise: patches cannot change the result
    image = torch.rand(1, 20, 18, 9)
    predict = make_predictor(model, (8, 8, 8), batch_size=4)
    expected = model(image[None])[0].argmax(0)
    assert torch.equal(predict(image), expected)
    assert default_overlap((8, 8, 8)) == (4, 4, 4)


def test_factory_found_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / 'my_net_module_for_stress.py').write_text(
        'import torch\n\ndef build():\n    return torch.nn.Conv3d(1, 3, 1)\n'
    )
    torch.save(torch.nn.Conv3d(1, 3, 1).state_dict(), tmp_path / 'net.pth')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, 'path', [p for p in sys.path if p not in ('', str(tmp_path))]
    )
    loaded = load_model('my_net_module_for_stress:build', Path('net.pth'))
    assert isinstance(loaded.module, torch.nn.Conv3d)
