"""Patch-queue training: every strategy trains and exports, validation, resume."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ramp_prep.cli import main as ramp_prep
from torchio_ramp.datasets import load_split
from torchio_ramp.labels import CLASS_NAMES
from torchio_ramp.model_files import load_model
from torchio_ramp.models import UNet3d
from torchio_ramp.models import check_patch_size
from torchio_ramp.models import unet3d_tiny
from torchio_ramp.pipelines import STRATEGIES
from torchio_ramp.training import DiceCELoss
from torchio_ramp.training import TrainingConfig
from torchio_ramp.training import evaluate
from torchio_ramp.training import make_patch_sampler
from torchio_ramp.training import strategy_overrides
from torchio_ramp.training import train
from torchio_ramp.training import validation_transform

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'
SHAPE = 16


@pytest.fixture(scope='module')
def prepared(tmp_path_factory) -> Path:
    """Seven 16^3 phantoms prepared by ramp-prep: 4 train, 1 val, 2 test."""
    root = tmp_path_factory.mktemp('training')
    source, out = root / 'source', root / 'prepared'
    shape = f'{SHAPE},{SHAPE},{SHAPE}'
    for args in (
        ['synth', str(source), '--layout', 'totalseg', '--subjects', '7'],
        ['totalseg', str(source), str(out), '--no-progress'],
    ):
        if args[0] == 'synth':
            args += ['--shape', shape, '--spacing', '12,12,12']
        ramp_prep.main(args, standalone_mode=False)
    return out


def tiny(prepared: Path, out: Path, **options) -> TrainingConfig:
    """A run of two iterations of two 16^3 patches per epoch."""
    values = {
        'patch_size': SHAPE,
        'model': 'tiny',
        'epochs': 1,
        'iterations_per_epoch': 2,
        'batch_size': 2,
        'samples_per_volume': 2,
        'queue_length': 4,
        'val_overlap': 0,
        'device': 'cpu',
        **options,
    }
    return TrainingConfig(str(prepared), str(out), **values)


def run_quietly(config: TrainingConfig, **kwargs):
    return train(config, progress=False, log=lambda line: None, **kwargs)


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / 'last.pt', weights_only=True)['model']


@pytest.mark.parametrize('name', list(STRATEGIES))
def test_every_strategy_trains_and_exports_a_loadable_model(prepared, tmp_path, name):
    run = tmp_path / name
    result = run_quietly(tiny(prepared, run, strategy=name))
    assert result.best_epoch == 1 and result.epochs_completed == 1
    for file in ('best.pt', 'best_state_dict.pt', 'last.pt', 'metrics.csv'):
        assert (run / file).is_file(), file
    document = json.loads((run / 'config.json').read_text())
    assert document['strategy'] == name
    assert document['hu_range'] == [-200.0, 300.0]
    assert document['patch_size'] == [SHAPE] * 3
    assert document['num_classes'] == 6
    assert document['seed'] == 0
    assert document['best_epoch'] == 1
    assert document['synthetic'] is True
    assert document['model']['kwargs'] == {
        'in_channels': 1,
        'num_classes': 6,
        'channels': [8, 16, 32, 64],
    }
    assert document['model']['factory'] == 'torchio_ramp.models:unet3d_tiny'
    assert Path(document['data']) == prepared.resolve()

    scripted = torch.jit.load(str(run / 'best.pt'))
    image = torch.rand(1, 1, SHAPE, SHAPE, SHAPE)
    logits = scripted(image)
    assert logits.shape == (1, 6, SHAPE, SHAPE, SHAPE)
    rebuilt = unet3d_tiny()
    rebuilt.load_state_dict(torch.load(run / 'best_state_dict.pt', weights_only=True))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(image), logits)
    # The stress test finds hu_range and patch_size for the TorchScript file
    loaded = load_model(run / 'best.pt')
    assert loaded.config.hu_range == (-200.0, 300.0)
    assert loaded.config.patch_size == (SHAPE, SHAPE, SHAPE)
    assert loaded.config.strategy == name
    # ... and for the torch.export archive beside it: same name, same logits
    program = load_model(run / 'best.pt2')
    assert program.format == 'torch.export' and program.name == loaded.name
    assert program.config.patch_size == (SHAPE, SHAPE, SHAPE)
    assert program.config.source == str(run / 'config.json')
    with torch.no_grad():
        batch = torch.rand(3, 1, SHAPE, SHAPE, SHAPE)
        torch.testing.assert_close(
            program.module(batch), scripted(batch), atol=1e-5, rtol=1e-5
        )


def test_metrics_csv_has_one_row_per_epoch_with_every_class(prepared, tmp_path):
    run = tmp_path / 'run'
    run_quietly(tiny(prepared, run, strategy='baseline', epochs=2))
    with (run / 'metrics.csv').open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row['epoch'] for row in rows] == ['1', '2']
    columns = ['epoch', 'train_loss', 'val_dice']
    columns += [f'val_dice_{name}' for name in CLASS_NAMES.values()]
    assert list(rows[0]) == [*columns, 'lr', 'seconds']
    # poly decay over two epochs: lr, then lr * (1/2) ** 0.9
    assert float(rows[0]['lr']) == pytest.approx(1e-3)
    assert float(rows[1]['lr']) == pytest.approx(1e-3 * 0.5**0.9, rel=1e-4)
    for row in rows:
        assert 0 <= float(row['val_dice']) <= 1
        assert float(row['train_loss']) > 0


def test_validation_dice_of_an_oracle_is_one_and_of_background_is_zero(prepared):
    dataset = load_split(prepared, 'val', transform=validation_transform())
    labels = {s['subject_id']: s['label'].data[0] for s in dataset}
    shapes = {s['subject_id']: s['label'].data[0].shape for s in dataset}
    evaluations = []
    for predict in (
        lambda image: next(iter(labels.values())),
        lambda image: torch.zeros(next(iter(shapes.values())), dtype=torch.long),
    ):
        evaluations.append(evaluate(predict, dataset, annotated=[1, 2, 3, 4, 5]))
    oracle, background = evaluations
    assert oracle.mean_dice == 1.0
    assert oracle.class_dice == dict.fromkeys(CLASS_NAMES, 1.0)
    assert background.mean_dice == 0.0


def test_resume_continues_from_the_saved_epoch_and_equals_an_uninterrupted_run(
    prepared, tmp_path
):
    whole, split = tmp_path / 'whole', tmp_path / 'split'
    run_quietly(tiny(prepared, whole, epochs=2))
    first = run_quietly(tiny(prepared, split, epochs=2), stop_after=1)
    assert first.epochs_completed == 1
    assert torch.load(split / 'last.pt', weights_only=True)['epoch'] == 1
    # A crash after the metrics row of epoch 2 but before last.pt: the row is redone
    with (split / 'metrics.csv').open('a') as stream:
        stream.write('2,9.9,0.5,0.5,0.5,0.5,0.5,0.5,0.001,1.0\r\n')

    second = run_quietly(tiny(prepared, split, epochs=2), resume=True)
    assert second.epochs_completed == 2
    assert [row['epoch'] for row in second.history] == [2]
    state = torch.load(split / 'last.pt', weights_only=True)
    assert state['epoch'] == 2
    # AdamW's step counts continue (2 iterations x 2 epochs): the state was restored
    steps = {float(s['step']) for s in state['optimizer']['state'].values()}
    assert steps == {4.0}
    reference, resumed = last_weights(whole), last_weights(split)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    with (split / 'metrics.csv').open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row['epoch'] for row in rows] == ['1', '2']
    assert rows[1]['train_loss'] != '9.9'


def test_same_seed_same_weights_with_workers_other_seed_differs(prepared, tmp_path):
    runs = {}
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        run_quietly(tiny(prepared, tmp_path / name, seed=seed, workers=1))
        runs[name] = last_weights(tmp_path / name)
    a, b, c = runs['a'], runs['b'], runs['c']
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def _ddp_worker(rank: int, world_size: int, port: int, config: dict) -> None:
    import os

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    try:
        train(TrainingConfig.from_dict(config), progress=False, log=lambda line: None)
    finally:
        torch.distributed.destroy_process_group()


def test_two_process_ddp_on_cpu_writes_one_run(prepared, tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    run = tmp_path / 'ddp'
    config = tiny(prepared, run, strategy='ramp', epochs=2).to_dict()
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, config), nprocs=2)
    document = json.loads((run / 'config.json').read_text())
    assert document['world_size'] == 2 and document['epochs_completed'] == 2
    with (run / 'metrics.csv').open() as stream:
        assert [row['epoch'] for row in csv.DictReader(stream)] == ['1', '2']
    scripted = torch.jit.load(str(run / 'best.pt'))
    assert scripted(torch.rand(1, 1, SHAPE, SHAPE, SHAPE)).shape[1] == 6


def test_resume_refuses_other_options_and_a_new_run_refuses_to_overwrite(
    prepared, tmp_path
):
    run = tmp_path / 'run'
    run_quietly(tiny(prepared, run))
    with pytest.raises(ValueError, match=r'epochs: 1 != 3'):
        run_quietly(tiny(prepared, run, epochs=3), resume=True)
    with pytest.raises(FileExistsError, match='already holds a training run'):
        run_quietly(tiny(prepared, run))
    with pytest.raises(FileNotFoundError, match=r'config\.json not found'):
        run_quietly(tiny(prepared, tmp_path / 'nothing'), resume=True)
    finished = run_quietly(tiny(prepared, run), resume=True)
    assert finished.history == [] and finished.epochs_completed == 1


def test_bad_data_and_patch_sizes_are_named(prepared, tmp_path):
    with pytest.raises(ValueError, match=r'patch_size \(32, 32, 32\) is larger'):
        run_quietly(tiny(prepared, tmp_path / 'a', patch_size=32))
    with pytest.raises(ValueError, match='multiples of 8'):
        check_patch_size((20, 16, 16), UNet3d(channels=(4, 8, 16, 32)))
    with pytest.raises(ValueError, match='Unknown strategy'):
        tiny(prepared, tmp_path / 'b', strategy='mixup')


def test_ablation_options_map_to_the_strategy_keywords():
    assert strategy_overrides('ramp', exclude_families=['blur']) == {
        'exclude_families': ['blur']
    }
    assert strategy_overrides('corruption', num_corruptions=1) == {'num_corruptions': 1}
    assert strategy_overrides('artifact', p_corrupt=0.3) == {'p': 0.3}
    with pytest.raises(
        ValueError, match=r"--p-corrupt only apply .* not to 'baseline'"
    ):
        strategy_overrides('baseline', p_corrupt=0.3)


def test_dice_ce_loss_values():
    loss = DiceCELoss()
    target = torch.randint(0, 6, (2, 8, 8, 8))
    one_hot = torch.nn.functional.one_hot(target, 6).permute(0, 4, 1, 2, 3).float()
    assert float(loss(30 * one_hot, target)) == pytest.approx(0, abs=1e-6)
    # Uniform logits: CE = log 6; soft Dice of each class = 2 (n/6) / (n/6 + n_c)
    uniform = torch.zeros(2, 6, 8, 8, 8)
    counts = torch.bincount(target.flatten(), minlength=6)[1:].double()
    n = target.numel()
    dice = 2 * counts / 6 / (n / 6 + counts)
    expected = math.log(6) + 1 - float(dice.mean())
    assert float(loss(uniform, target)) == pytest.approx(expected, rel=1e-5)


def test_label_sampler_centres_every_class_equally_by_default():
    sampler = make_patch_sampler('label', (8, 8, 8))
    assert sampler.label_probabilities_dict == dict.fromkeys(range(6), 1.0)
    with pytest.raises(ValueError, match="'label' or 'uniform'"):
        make_patch_sampler('weighted', (8, 8, 8))


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_script_runs_resumes_and_reports_bad_options(prepared, tmp_path):
    script = load_script('train')
    run = tmp_path / 'cli'
    common = ['--patch-size', str(SHAPE), '--model', 'tiny', '--iterations-per-epoch']
    common += ['1', '--samples-per-volume', '1', '--queue-length', '2']
    common += ['--val-overlap', '0', '--device', 'cpu', '--no-progress']
    runner = CliRunner()
    result = runner.invoke(
        script.main,
        [
            *('--data', str(prepared), '--out', str(run), '--strategy', 'ramp'),
            *('--exclude', 'blur,stripe', '--num-corruptions', '1-2'),
            *('--p-corrupt', '0.5', '--epochs', '2', *common),
        ],
    )
    assert result.exit_code == 0, result.output
    assert 'Best epoch' in result.output and 'ramp-stress run --model' in result.output
    document = json.loads((run / 'config.json').read_text())
    assert document['strategy_options'] == {
        'exclude_families': ['blur', 'stripe'],
        'num_corruptions': [1, 2],
        'p_corrupt': 0.5,
    }
    result = runner.invoke(
        script.main, ['--out', str(run), '--resume', '--epochs', '3']
    )
    assert result.exit_code == 1
    assert 'epochs: 2 != 3' in result.output
    result = runner.invoke(
        script.main,
        [
            *('--data', str(prepared), '--out', str(tmp_path / 'x')),
            *('--strategy', 'geometric', '--p-corrupt', '0.2'),
        ],
    )
    assert result.exit_code == 1
    assert 'only apply to strategies with a corruption stage' in result.output
    result = runner.invoke(script.main, ['--out', str(tmp_path / 'y')])
    assert result.exit_code == 1 and '--data is required' in result.output
    for families, message in (
        ('blur,fog', "unknown corruption family 'fog'; valid names: gaussian_noise"),
        ('blur,blur', "repeated family names in ['blur', 'blur']"),
    ):
        result = runner.invoke(
            script.main,
            [
                '--data',
                str(prepared),
                '--out',
                str(tmp_path / 'z'),
                '--exclude',
                families,
            ],
        )
        assert result.exit_code == 2
        assert "Invalid value for '--exclude-families'" in result.output
        assert message in result.output
        assert not (tmp_path / 'z').exists()


def test_initial_weights_come_from_a_state_dict_or_a_run_folder(tmp_path):
    from torchio_ramp.models import UNET_PRESETS
    from torchio_ramp.models import UNet3d
    from torchio_ramp.training import RunFolder
    from torchio_ramp.training import load_initial_weights

    torch.manual_seed(1)
    trained = UNet3d(num_classes=6, channels=UNET_PRESETS['tiny'])
    run = tmp_path / 'run'
    run.mkdir()
    torch.save(trained.state_dict(), run / RunFolder.STATE_DICT)
    for source in (run, run / RunFolder.STATE_DICT):
        torch.manual_seed(2)
        fresh = UNet3d(num_classes=6, channels=UNET_PRESETS['tiny'])
        load_initial_weights(fresh, source)
        for name, value in fresh.state_dict().items():
            assert torch.equal(value, trained.state_dict()[name]), name
    wider = UNet3d(num_classes=6, channels=UNET_PRESETS['small'])
    with pytest.raises(
        ValueError, match=r'init_weights: .*best_state_dict.pt does not fit'
    ):
        load_initial_weights(wider, run)
    with pytest.raises(
        FileNotFoundError, match=r'init_weights: .*missing.pt not found'
    ):
        load_initial_weights(wider, tmp_path / 'missing.pt')


def test_ramp_train_is_the_console_script_and_the_example_wraps_it():
    import subprocess
    import sys
    from importlib.metadata import entry_points

    from torchio_ramp.training.cli import main

    (script,) = entry_points(group='console_scripts', name='ramp-train')
    assert script.load() is main
    assert load_script('train').main is main
    help_text = subprocess.run(
        [sys.executable, '-m', 'torchio_ramp.training', '--help'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert help_text.startswith('Usage: ramp-train [OPTIONS]')
    assert '--patch-size' in help_text and '--resume' in help_text
