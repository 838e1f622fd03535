"""Fault injection for ramp-train and sharded re-runs of ramp-stress.

Bad devices, seeds, hostile or damaged weight files and a truncated
``last.pt`` end in ``Error: ...`` naming the option or file, exit 2 (usage) or
1 (runtime), never a traceback; training data are verified on read; a
torchrun re-run over a finished single-process stress run does nothing.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from ramp_prep.cli import main as prep_main
from tests.prep_fixtures import invoke_cli as invoke
from tests.test_faults_data import zero_spacing
from torchio_ramp.integrity import IntegrityError
from torchio_ramp.models import UNET_PRESETS
from torchio_ramp.models import UNet3d
from torchio_ramp.stress.cli import main as stress_main
from torchio_ramp.training import TrainingConfig
from torchio_ramp.training import train
from torchio_ramp.training.cli import main
from torchio_ramp.training.run import RunFolder
from torchio_ramp.training.run import load_initial_weights

pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')

SHAPE = 16
TINY = ['--patch-size', SHAPE, '--model', 'tiny', '--iterations-per-epoch', 1,
        '--samples-per-volume', 1, '--queue-length', 2, '--val-overlap', 0,
        '--epochs', 1, '--no-progress']  # fmt: skip


@pytest.fixture(scope='module')
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('faults-training')
    source, out = root / 'source', root / 'prepared'
    invoke(prep_main, ['synth', source, '--layout', 'totalseg', '--subjects', 4,
                       '--shape', f'{SHAPE},{SHAPE},{SHAPE}', '--spacing', '12,12,12',
                       '--no-progress'], 0)  # fmt: skip
    invoke(prep_main, ['totalseg', source, out, '--fractions', '0.5,0.25,0.25',
                       '--no-progress'], 0)  # fmt: skip
    return out


@pytest.fixture(scope='module')
def finished(prepared, tmp_path_factory) -> Path:
    """A one-epoch tiny run (its last.pt and config.json are real)."""
    out = tmp_path_factory.mktemp('finished') / 'run'
    invoke(main, ['--data', prepared, '--out', out, '--device', 'cpu', *TINY], 0)
    return out


# Options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ('option', 'value', 'needle'),
    [
        ('--device', 'bogus', "'bogus' is not a device name"),
        ('--device', 'gpu0', 'is not a device name'),
        ('--seed', -1, '-1 is not in the range'),
        ('--seed', 2**64, 'is not in the range'),
    ],
)
def test_bad_options_are_usage_errors(prepared, tmp_path, option, value, needle):
    out = tmp_path / 'run'
    result = invoke(main, ['--data', prepared, '--out', out, option, value], 2)
    assert f"Invalid value for '{option}'" in result.output
    assert needle in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ('option', 'values', 'needle'),
    [
        ('--lr', ['inf'], 'must be a finite number > 0, not inf'),
        ('--lr', ['nan'], 'must be a finite number > 0, not nan'),
        ('--lr', ['0'], 'must be a finite number > 0, not 0.0'),
        ('--lr', ['-1e-3'], 'must be a finite number > 0, not -0.001'),
        ('--weight-decay', ['nan'], 'must be a finite number >= 0, not nan'),
        ('--weight-decay', ['-1'], 'must be a finite number >= 0, not -1.0'),
        ('--p-corrupt', ['nan'], 'must be a finite number in [0, 1], not nan'),
        ('--p-corrupt', ['1.5'], 'must be a finite number in [0, 1], not 1.5'),
        ('--hu-range', ['-inf', '300'], 'must be a finite number, not -inf'),
        ('--hu-range', ['300', '-200'], 'LOW must be below HIGH'),
        ('--queue-length', ['0'], '0 is not in the range x>=1'),
        ('--samples-per-volume', ['-1'], '-1 is not in the range x>=1'),
    ],
)
def test_numeric_options_are_finite_usage_errors(
    prepared, tmp_path, option, values, needle
):
    out = tmp_path / 'run'
    result = invoke(main, ['--data', prepared, '--out', out, option, *values], 2)
    assert f"Invalid value for '{option}'" in result.output
    assert needle in result.output
    assert not out.exists()


def test_an_empty_out_is_a_usage_error(prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(main, ['--data', prepared, '--out', '', *TINY], 2)
    assert "Invalid value for '--out': '' is not a folder name" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ('field', 'value'),
    [('lr', float('inf')), ('lr', 0), ('weight_decay', float('nan')), ('lr', '1')],
)
def test_training_config_refuses_non_finite_numbers(tmp_path, field, value):
    with pytest.raises(ValueError, match=rf'{field} must be a finite number'):
        TrainingConfig('data', str(tmp_path), **{field: value})
    with pytest.raises(ValueError, match='hu_range must be finite with low < high'):
        TrainingConfig('data', str(tmp_path), hu_range=(float('-inf'), 300))


@pytest.mark.parametrize(
    ('environment', 'needle'),
    [
        ({'RANK': 'x'}, "variable RANK='x' (set by torchrun) must be an integer >= 0"),
        ({'LOCAL_RANK': '-1'}, "LOCAL_RANK='-1' (set by torchrun) must be an integer"),
        (
            {'WORLD_SIZE': '0'},
            "WORLD_SIZE='0' (set by torchrun) must be an integer >= 1",
        ),
        ({'WORLD_SIZE': 'two'}, "WORLD_SIZE='two'"),
        ({'RANK': '1'}, 'RANK=1 and WORLD_SIZE=1 (set by torchrun) disagree'),
    ],
)
def test_torchrun_variables_are_named(
    prepared, tmp_path, monkeypatch, environment, needle
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = invoke(main, ['--data', prepared, '--out', tmp_path / 'run', '--device',
                           'cpu', *TINY], 1)  # fmt: skip
    assert needle in result.output
    assert not (tmp_path / 'run').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_cuda_without_a_gpu_is_a_usage_error(prepared, tmp_path):
    result = invoke(main, ['--data', prepared, '--out', tmp_path / 'r', '--device',
                           'cuda'], 2)  # fmt: skip
    assert 'CUDA is not available' in result.output
    with pytest.raises(ValueError, match='device cuda: CUDA is not available'):
        TrainingConfig(str(prepared), str(tmp_path / 'r'), device='cuda')


@pytest.mark.parametrize('seed', [-1, 2**64, 1.5])
def test_training_config_refuses_bad_seeds(tmp_path, seed):
    with pytest.raises(ValueError, match='seed must be an integer'):
        TrainingConfig('data', str(tmp_path), seed=seed)


# --init-weights ---------------------------------------------------------------------


class Hostile:
    def __reduce__(self):
        return (print, ('this code must never run',))


def _weights(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f'{kind}.pt'
    model = UNet3d(num_classes=6, channels=UNET_PRESETS['tiny'])
    if kind == 'garbage':
        path.write_bytes(b'not a checkpoint at all')
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'truncated':
        torch.save(model.state_dict(), path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == 'hostile':
        with path.open('wb') as f:
            pickle.dump({'weight': Hostile()}, f)
    elif kind == 'tensor':
        torch.save(torch.zeros(3), path)
    elif kind == 'other-model':
        other = UNet3d(num_classes=3, channels=UNET_PRESETS['tiny'])
        torch.save(other.state_dict(), path)
    return path


@pytest.mark.parametrize(
    ('kind', 'needle'),
    [
        ('garbage', 'cannot read'),
        ('empty', 'cannot read'),
        ('truncated', 'cannot read'),
        ('hostile', 'cannot read'),
        ('tensor', 'holds a Tensor, not a state_dict'),
        ('other-model', 'does not fit the UNet3d'),
    ],
)
def test_bad_initial_weights_are_named(prepared, tmp_path, capsys, kind, needle):
    path = _weights(tmp_path, kind)
    model = UNet3d(num_classes=6, channels=UNET_PRESETS['tiny'])
    with pytest.raises(ValueError, match=f'init_weights: .*{kind}.pt') as caught:
        load_initial_weights(model, path)
    assert needle in str(caught.value)
    result = invoke(main, ['--data', prepared, '--out', tmp_path / 'run',
                           '--init-weights', path, '--device', 'cpu', *TINY],
                    1)  # fmt: skip
    assert path.name in result.output and needle in result.output
    assert 'this code must never run' not in capsys.readouterr().out


def test_a_last_checkpoint_can_start_a_new_run(finished, tmp_path):
    model = UNet3d(num_classes=6, channels=UNET_PRESETS['tiny'])
    load_initial_weights(model, finished / RunFolder.LAST)  # its 'model' entry
    reference = torch.load(finished / RunFolder.LAST, weights_only=True)['model']
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


# --resume --------------------------------------------------------------------------


@pytest.mark.parametrize('keep', [0.0, 0.1, 0.5, 0.99])
def test_resume_from_a_truncated_last_checkpoint_is_an_error(finished, tmp_path, keep):
    run = tmp_path / 'run'
    run.mkdir()
    for name in (RunFolder.CONFIG, RunFolder.LAST, RunFolder.METRICS):
        (run / name).write_bytes((finished / name).read_bytes())
    config = json.loads((run / RunFolder.CONFIG).read_text())
    config['training']['out'] = str(run)
    (run / RunFolder.CONFIG).write_text(json.dumps(config))
    last = run / RunFolder.LAST
    data = last.read_bytes()
    last.write_bytes(data[: int(len(data) * keep)])
    damaged = last.read_bytes()
    result = invoke(main, ['--out', run, '--resume', '--no-progress'], 1)
    assert f'{last} is damaged and cannot be resumed from' in result.output
    assert last.read_bytes() == damaged  # nothing overwritten
    metrics = (run / RunFolder.METRICS).read_bytes()
    assert metrics == (finished / RunFolder.METRICS).read_bytes()


def test_resume_from_a_foreign_checkpoint_is_an_error(finished, tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    for name in (RunFolder.CONFIG, RunFolder.METRICS):
        (run / name).write_bytes((finished / name).read_bytes())
    config = json.loads((run / RunFolder.CONFIG).read_text())
    config['training']['out'] = str(run)
    (run / RunFolder.CONFIG).write_text(json.dumps(config))
    torch.save({'model': {}}, run / RunFolder.LAST)
    result = invoke(main, ['--out', run, '--resume', '--no-progress'], 1)
    assert 'is not a training checkpoint of this tool' in result.output


# Training data are verified ----------------------------------------------------------


def test_training_refuses_an_edited_train_label(prepared, tmp_path):
    import shutil

    data = tmp_path / 'data'
    shutil.copytree(prepared, data)
    train_id = json.loads((data / 'splits.json').read_text())['train'][0]
    label = data / 'labels' / f'{train_id}.nii.gz'
    label.write_bytes(label.read_bytes()[: label.stat().st_size // 2])
    config = TrainingConfig(str(data), str(tmp_path / 'run'), device='cpu')
    with pytest.raises(IntegrityError, match=rf'{train_id}\.nii\.gz'):
        train(config, progress=False, log=lambda line: None)
    result = invoke(main, ['--data', data, '--out', tmp_path / 'cli', '--device',
                           'cpu', *TINY], 1)  # fmt: skip
    assert f'{train_id}.nii.gz' in result.output and 'manifest.csv' in result.output


def test_training_names_a_ct_with_a_zero_spacing(prepared, tmp_path):
    import shutil

    data = tmp_path / 'data'
    shutil.copytree(prepared, data)
    train_id = json.loads((data / 'splits.json').read_text())['train'][0]
    image = data / 'images' / f'{train_id}.nii.gz'
    zero_spacing(data, image, ('pixdim', 'sform'))
    result = invoke(main, ['--data', data, '--out', tmp_path / 'run', '--device',
                           'cpu', *TINY], 1)  # fmt: skip
    assert f'{image}: zero or non-finite voxel spacing' in result.output


# torchrun over a finished single-process stress run ----------------------------------


def test_torchrun_skips_a_complete_single_process_run(
    prepared, finished, tmp_path, monkeypatch
):
    out = tmp_path / 'stress'
    run = ['run', '--model', finished / 'best.pt', '--data', prepared, '--out', out,
           '--split', 'all', '--families', 'blur', '--levels', 0.1,
           '--no-progress']  # fmt: skip
    first = invoke(stress_main, run, 0)
    assert '4 subject(s) evaluated' in first.output
    before = (out / 'results.csv').read_bytes()
    for rank in range(2):
        monkeypatch.setenv('RANK', str(rank))
        monkeypatch.setenv('WORLD_SIZE', '2')
        again = invoke(stress_main, run, 0)
        assert '0 subject(s) evaluated, 2 already done' in again.output
        assert 'results.csv' in again.output
    assert (out / 'results.csv').read_bytes() == before
    assert not list(out.glob('results.shard-*'))
    monkeypatch.setenv('RANK', '0')
    other = [*run[:-1], '--seed', 5, '--no-progress']  # other arguments: shards run
    result = invoke(stress_main, other, 0)
    assert '2 subject(s) evaluated' in result.output
    assert (out / 'results.shard-0-of-2.csv').exists()
