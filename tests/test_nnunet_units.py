"""nnU-Net integration pieces that need nnunetv2 but no trained model.

Trainer declarations against nnU-Net's base class, checkpoints read as data
(crafted files never run), the trainer module's install, records and clean-up.
"""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('nnunetv2')

from click.testing import CliRunner
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from torchio_ramp.nnunet import RAMP_TRAINERS
from torchio_ramp.nnunet import trainers
from torchio_ramp.nnunet.__main__ import main as nnunet_main
from torchio_ramp.nnunet.checkpoint import CheckpointError
from torchio_ramp.nnunet.checkpoint import load_checkpoint
from torchio_ramp.nnunet.install import EXT_FOLDER
from torchio_ramp.nnunet.install import SHIM_NAME
from torchio_ramp.nnunet.install import install
from torchio_ramp.nnunet.install import uninstall
from torchio_ramp.nnunet.model_folder import ModelFolder

REPO = Path(__file__).resolve().parents[1]


def test_the_trainer_names_known_without_nnunet_are_the_trainer_module():
    defined = {
        name
        for name, value in vars(trainers).items()
        if isinstance(value, type)
        and issubclass(value, nnUNetTrainer)
        and value.__module__ == trainers.__name__
    }
    assert defined == set(RAMP_TRAINERS) == set(trainers.__all__)


def _kind(cls: type, name: str) -> type:
    return type(inspect.getattr_static(cls, name))


def _parameters(function) -> list[tuple[str, object, object]]:
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize('name', trainers.__all__)
def test_overrides_match_nnunets_declarations(name):
    ours = getattr(trainers, name)
    overridden = [
        attribute
        for attribute, value in vars(nnUNetTrainer).items()
        if callable(getattr(nnUNetTrainer, attribute))
        and (attribute == '__init__' or not attribute.startswith('__'))
        and inspect.getattr_static(ours, attribute) is not value
    ]
    assert 'save_checkpoint' in overridden  # portable checkpoints
    for attribute in overridden:
        base = inspect.getattr_static(nnUNetTrainer, attribute)
        assert _kind(ours, attribute) is type(base), attribute  # static stays static
        assert _parameters(getattr(ours, attribute)) == _parameters(
            getattr(nnUNetTrainer, attribute)
        ), attribute
    # the network is nnU-Net's: a checkpoint of ours is a stock model
    assert ours.build_network_architecture is nnUNetTrainer.build_network_architecture


def test_training_pipelines_follow_the_strategy():
    def steps(cls):
        pipeline = cls.get_training_transforms((16, 16, 16), None, None, (0, 1), False)
        return [type(step).__name__ for step in pipeline.transforms]

    assert steps(trainers.nnUNetTrainerRAMP) == [
        'SpatialTransform',
        'TorchIOStage',
        'RemoveLabelTransform',
    ]
    assert 'TorchIOStage' not in steps(trainers.nnUNetTrainerRAMPIntensity)
    assert steps(trainers.nnUNetTrainerRAMPPlus) == steps(nnUNetTrainer)
    assert trainers.nnUNetTrainerRAMP_Tiny.tiny_epochs == 2

    class Shorter(trainers.nnUNetTrainerRAMPGeometric):
        tiny_epochs = 1

    assert steps(Shorter) == steps(trainers.nnUNetTrainerRAMPGeometric)


class Payload:
    """Pickles as a call that creates ``path`` when unpickled."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}',))


def _checkpoint(**extra) -> dict:
    return {
        'network_weights': {'w': torch.ones(2)},
        'trainer_name': 'nnUNetTrainerRAMP',
        'init_args': {'configuration': '3d_fullres', 'device': torch.device('cpu')},
        'logging': {'mean_fg_dice': [np.float32(0.5)], 'lrs': [0.01]},
        '_best_ema': np.float32(0.5),
        'inference_allowed_mirroring_axes': (0, 1, 2),
        **extra,
    }


def test_a_crafted_checkpoint_never_runs_its_code(tmp_path):
    sentinel = tmp_path / 'sentinel'
    path = tmp_path / 'checkpoint_final.pth'
    torch.save(_checkpoint(optimizer_state=Payload(sentinel)), path)
    with pytest.raises(CheckpointError, match=r'checkpoint_final\.pth was refused'):
        load_checkpoint(path)
    assert not sentinel.exists()
    # the payload is live: nnU-Net's own way of loading runs it
    torch.load(path, weights_only=False)
    assert sentinel.exists()


def test_nnunet_checkpoints_with_numpy_logs_load_as_data(tmp_path):
    path = tmp_path / 'checkpoint_best.pth'
    torch.save(_checkpoint(), path)
    loaded = load_checkpoint(path)
    assert loaded['_best_ema'] == np.float32(0.5)
    assert torch.equal(loaded['network_weights']['w'], torch.ones(2))


@pytest.mark.parametrize(
    ('content', 'message'),
    [
        ('truncated', r'x\.pth is damaged or not a PyTorch checkpoint'),
        ('text', r'x\.pth is damaged or not a PyTorch checkpoint'),
        ('list', r'x\.pth is not an nnU-Net checkpoint: it holds a list'),
        ('keys', r'x\.pth is not an nnU-Net checkpoint: no network_weights'),
        ('weights', r'x\.pth: network_weights is not a state dict of tensors'),
    ],
)
def test_damaged_or_foreign_checkpoints_are_named(tmp_path, content, message):
    path = tmp_path / 'x.pth'
    if content == 'truncated':
        torch.save(_checkpoint(), path)
        path.write_bytes(path.read_bytes()[:300])
    elif content == 'text':
        path.write_text('not a checkpoint')
    elif content == 'list':
        torch.save([1, 2], path)
    elif content == 'keys':
        torch.save({'trainer_name': 'x', 'init_args': {}}, path)
    else:
        torch.save(_checkpoint(network_weights={'w': 1.0}), path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_model_folder_is_read_as_data_before_nnunet_sees_it(tmp_path):
    sentinel = tmp_path / 'sentinel'
    folder = tmp_path / 'Dataset001_X' / 'nnUNetTrainerRAMP__nnUNetPlans__3d_fullres'
    (folder / 'fold_0').mkdir(parents=True)
    (folder / 'plans.json').write_text('{"configurations": {}}')
    (folder / 'dataset.json').write_text('{}')
    torch.save(
        _checkpoint(grad_scaler_state=Payload(sentinel)),
        folder / 'fold_0' / 'checkpoint_final.pth',
    )
    with pytest.raises(ValueError, match='was refused'):
        ModelFolder(folder, 0)
    result = CliRunner().invoke(
        nnunet_main, ['export-model', str(folder), str(tmp_path / 'o')]
    )
    assert result.exit_code == 1 and 'Error:' in result.output
    assert 'was refused' in result.output and not sentinel.exists()
    assert not (tmp_path / 'o').exists()


def test_install_into_a_folder_is_idempotent_and_uninstall_cleans_up(tmp_path):
    installed = install(tmp_path)
    assert installed.written and installed.path == tmp_path / SHIM_NAME
    assert installed.records == ()  # only nnU-Net's own package is recorded
    assert not install(tmp_path).written
    # what Python writes when nnU-Net imports the module goes too
    subprocess.run(
        [sys.executable, '-m', 'py_compile', str(installed.path)], check=True
    )
    assert list((tmp_path / '__pycache__').iterdir())
    assert uninstall(tmp_path) == installed.path
    assert not list(tmp_path.rglob('torchio_ramp_trainers*'))
    assert uninstall(tmp_path) is None


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a read-only file system (a tmpfs mounted read-only)."""
    folder = tmp_path / 'read-only'
    folder.mkdir()
    mounted = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', 'ro', 'tmpfs', str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip('cannot mount a read-only file system here')
    try:
        yield folder
    finally:
        subprocess.run(['umount', str(folder)], check=False)


def test_install_on_a_read_only_file_system_is_a_clear_error(
    read_only_folder, monkeypatch
):
    with pytest.raises(PermissionError, match='Read-only file system') as raised:
        install(read_only_folder)
    assert str(read_only_folder / SHIM_NAME) in str(raised.value)
    assert f'nnUNet_extTrainer={EXT_FOLDER}' in str(raised.value)
    # the command: its own message, exit 1, no traceback
    monkeypatch.setattr(
        'torchio_ramp.nnunet.install.trainer_folder', lambda: read_only_folder
    )
    result = CliRunner().invoke(nnunet_main, ['install'])
    assert result.exit_code == 1 and result.output.startswith('Error: cannot write')
    assert 'Traceback' not in result.output


def test_the_extension_module_is_silent_without_torchio_ramp():
    code = (
        'import runpy, sys, warnings\n'
        "sys.modules['torchio_ramp'] = None\n"
        "warnings.simplefilter('error')\n"
        f'names = runpy.run_path({str(EXT_FOLDER / SHIM_NAME)!r})\n'
        "print(sorted(n for n in names if n.startswith('nnUNet')))\n"
    )
    done = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '[]' and done.stderr == ''


def test_a_leftover_nnunetv2_folder_is_named_and_removed(tmp_path):
    # What `pip uninstall nnunetv2` left behind when the module was not
    # recorded: a namespace package holding only the trainer module.
    trainers_folder = tmp_path / 'nnunetv2' / 'training' / 'nnUNetTrainer'
    trainers_folder.mkdir(parents=True)
    (trainers_folder / SHIM_NAME).write_text('')
    (trainers_folder / '__pycache__').mkdir()
    code = (
        'import sys\n'
        'from torchio_ramp.nnunet import install\n'
        f'sys.path[:] = [{str(tmp_path)!r}] + '
        "[p for p in sys.path if 'site-packages' not in p]\n"
        "for name in [n for n in sys.modules if n.startswith('nnunetv2')]:\n"
        '    del sys.modules[name]\n'
        'try:\n'
        '    install.install()\n'
        'except ImportError as error:\n'
        "    print('refused:', error)\n"
        "print('removed:', install.uninstall())\n"
    )
    done = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        "refused: nnU-Net v2 is not installed: pip install 'torchio-ramp[nnunet]'"
        in (done.stdout)
    )
    assert (
        f'leftover folder of an uninstalled nnunetv2 is there ({tmp_path / "nnunetv2"})'
        in (done.stdout)
    )
    assert f'removed: {trainers_folder / SHIM_NAME}' in done.stdout
    assert not (tmp_path / 'nnunetv2').exists()  # import nnunetv2 fails again


def test_pip_uninstall_nnunetv2_removes_the_recorded_module(tmp_path):
    """The real pip, in a throwaway environment holding a copy of nnunetv2."""
    import importlib.metadata

    import nnunetv2
    import pip

    from torchio_ramp.nnunet import install as installer

    venv = tmp_path / 'venv'
    subprocess.run(
        [sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True
    )
    site = next(venv.glob('lib/python3*/site-packages'))
    package = Path(nnunetv2.__path__[0])
    dist = importlib.metadata.distribution('nnunetv2')
    record = next(f for f in dist.files if f.name == 'RECORD')
    dist_info = Path(str(record.locate())).parent
    shutil.copytree(
        package,
        site / 'nnunetv2',
        ignore=shutil.ignore_patterns(SHIM_NAME, 'torchio_ramp_*'),
    )
    shutil.copytree(dist_info, site / dist_info.name)
    copy = site / 'nnunetv2' / 'training' / 'nnUNetTrainer'
    record_copy = site / dist_info.name / 'RECORD'
    path = install(copy).path
    installer.edit_records(
        [record_copy], [path, *installer.bytecode_paths(path)], add=True
    )
    subprocess.run([sys.executable, '-m', 'py_compile', str(path)], check=True)
    assert SHIM_NAME in record_copy.read_text()
    pip_only = tmp_path / 'pip-only'
    pip_only.mkdir()
    (pip_only / 'pip').symlink_to(Path(pip.__file__).parent)
    done = subprocess.run(
        [str(venv / 'bin' / 'python'), '-m', 'pip', 'uninstall', '-y', 'nnunetv2'],
        env={**os.environ, 'PYTHONPATH': str(pip_only)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (site / 'nnunetv2').exists()  # no namespace leftover
    assert not path.exists()


def test_nnunet_ext_trainer_finds_the_ramp_trainers_where_its_search_works(tmp_path):
    from torchio_ramp.nnunet.install import trainer_folder

    if (trainer_folder() / SHIM_NAME).is_file():
        pytest.skip('the trainer module is installed in nnU-Net: it would be found')
    code = (
        'from nnunetv2.utilities.find_objects import'
        ' recursive_find_trainer_class_by_name as find\n'
        "print(find('nnUNetTrainerRAMP').__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, '-c', code],
        env={**os.environ, 'nnUNet_extTrainer': str(EXT_FOLDER)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:  # nnU-Net's own mechanism, nothing written
        assert done.stdout.strip().endswith('torchio_ramp.nnunet.trainers')
    else:  # only what `check` and `install` diagnose: torchvision fails first
        assert 'torchvision' in done.stderr, done.stderr[-2000:]
