"""nnU-Net v2 as a client: export, planning, fold 0, RAMP trainers, predictor.

Runs the real nnunetv2 (``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train
-device cpu``, ``nnUNetPredictor``, ``nnUNetv2_predict``) on seven 32^3
phantoms, once per module: a tiny configuration of the end-to-end path a user
follows. The model is trained by a subclass of ``nnUNetTrainerRAMP_Tiny``
with a shorter schedule (one epoch of two iterations, no final validation),
written into nnU-Net's trainer package beside the installed trainer module,
as a user would subclass a trainer.
"""

from __future__ import annotations

import json
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

from ramp_prep.cli import main as prep_main
from ramp_prep.convert import prepare
from ramp_prep.synth import write_synthetic
from torchio_ramp.datasets import load_split
from torchio_ramp.nnunet.install import SHIM_NAME
from torchio_ramp.nnunet.install import trainer_folder
from torchio_ramp.stress.cli import main as stress_main

pytestmark = pytest.mark.nnunet

DATASET_ID = 987
NAME = 'Dataset987_RampTotalSegSynth'
TRAINER = 'nnUNetTrainerRAMP_Smoke'
SMOKE_MODULE = 'torchio_ramp_test_smoke.py'
SMOKE_TEXT = f"""
from torchio_ramp.nnunet.trainers import nnUNetTrainerRAMP_Tiny


class {TRAINER}(nnUNetTrainerRAMP_Tiny):
    tiny_epochs = 1
    tiny_iterations = 2
    tiny_val_iterations = 1

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file('final validation skipped (smoke schedule)')
"""
BIN = Path(sys.executable).parent


def run(args, env, cwd=None):
    result = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope='module')
def nnunet(tmp_path_factory):
    """Export, plan and preprocess, install the trainers, train RAMP (smoke)."""
    base = tmp_path_factory.mktemp('nnunet')
    folders = {k: base / k for k in ('raw', 'preprocessed', 'results')}
    env_vars = {
        'nnUNet_raw': str(folders['raw']),
        'nnUNet_preprocessed': str(folders['preprocessed']),
        'nnUNet_results': str(folders['results']),
        'nnUNet_def_n_proc': '1',
    }
    # data augmentation in the main process (planning needs it positive)
    training_env = {'nnUNet_n_proc_DA': '0'}
    saved = {k: os.environ.get(k) for k in [*env_vars, *training_env]}
    os.environ.update(env_vars)
    env = {k: v for k, v in os.environ.items() if k != 'nnUNet_extTrainer'}
    shim = trainer_folder() / SHIM_NAME
    had_shim = shim.is_file()
    smoke = trainer_folder() / SMOKE_MODULE
    try:
        ids = write_synthetic(base / 'src', 'totalseg', 7, shape=(32, 32, 32))
        prepare(
            'totalseg',
            base / 'src',
            folders['raw'],
            fmt='nnunet',
            dataset_id=DATASET_ID,
            progress=False,
        )
        planning = run(
            [
                BIN / 'nnUNetv2_plan_and_preprocess',
                '-d',
                str(DATASET_ID),
                '--verify_dataset_integrity',
                '-c',
                '3d_fullres',
                '-np',
                '1',
            ],
            env,
        )
        install = run([sys.executable, '-m', 'torchio_ramp.nnunet', 'install'], env)
        smoke.write_text(SMOKE_TEXT, encoding='utf-8')
        os.environ.update(training_env)
        env.update(training_env)
        training = run(
            [BIN / 'nnUNetv2_train', str(DATASET_ID), '3d_fullres', '0', '-tr',
             TRAINER, '-device', 'cpu'],
            env,
        )  # fmt: skip
        if not had_shim:  # the registration cleans up after itself
            run([sys.executable, '-m', 'torchio_ramp.nnunet', 'uninstall'], env)
        yield {
            **folders,
            'ids': ids,
            'planning': planning,
            'install': install,
            'training': training,
            'model': folders['results'] / NAME / f'{TRAINER}__nnUNetPlans__3d_fullres',
        }
    finally:
        for path in [smoke, *smoke.parent.glob(f'__pycache__/{smoke.stem}.*')]:
            path.unlink(missing_ok=True)
        if not had_shim and shim.is_file():
            subprocess.run(
                [sys.executable, '-m', 'torchio_ramp.nnunet', 'uninstall'], check=False
            )
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def our_split(nnunet):
    return json.loads((nnunet['raw'] / NAME / 'splits.json').read_text())


def test_export_passes_nnunet_verification_and_planning(nnunet):
    out = nnunet['planning'].stdout
    assert 'Verifying dataset' in out or 'verify' in out.lower()
    planned = nnunet['preprocessed'] / NAME
    plans = json.loads((planned / 'nnUNetPlans.json').read_text())
    assert plans['configurations']['3d_fullres']['normalization_schemes'] == [
        'CTNormalization'
    ]
    cases = sorted(p.name[:-7] for p in (planned / 'gt_segmentations').iterdir())
    split = our_split(nnunet)
    assert cases == sorted(split['train'] + split['val'])


def test_fold_0_is_our_seed_42_split(nnunet):
    split = our_split(nnunet)
    assert split['seed'] == 42 and len(split['train']) == 4 and len(split['val']) == 1
    path = nnunet['preprocessed'] / NAME / 'splits_final.json'
    fold0 = {'train': split['train'], 'val': split['val']}
    assert json.loads(path.read_text())[0] == fold0
    log = next((nnunet['model'] / 'fold_0').glob('training_log_*.txt')).read_text()
    assert 'This split has 4 training and 1 validation cases' in log

    runner = CliRunner()
    result = runner.invoke(prep_main, ['nnunet-splits', str(DATASET_ID)])
    assert result.exit_code == 0 and '(unchanged)' in result.output
    # nnU-Net's own five-fold file (made when none exists) is not replaced silently
    path.write_text(json.dumps([{'train': split['train'][:2], 'val': split['val']}]))
    result = runner.invoke(prep_main, ['nnunet-splits', NAME])
    assert result.exit_code == 1 and '--overwrite' in result.output
    result = runner.invoke(prep_main, ['nnunet-splits', NAME, '--overwrite'])
    assert result.exit_code == 0 and '(written)' in result.output
    assert json.loads(path.read_text()) == [fold0]


def test_nnunet_splits_errors_name_the_problem(nnunet, monkeypatch, tmp_path):
    runner = CliRunner()
    result = runner.invoke(prep_main, ['nnunet-splits', '986'])
    assert result.exit_code == 1 and 'dataset 986 not found in' in result.output
    # a malformed splits.json: the file and the key are named, no traceback
    raw = tmp_path / 'raw'
    shutil.copytree(nnunet['raw'] / NAME, raw / NAME)
    splits = raw / NAME / 'splits.json'
    for text, message in (
        ('{"train": ', 'splits.json is not valid JSON'),
        ('[1, 2]', 'must hold a JSON object with "train" and "val", not list'),
        ('{"train": ["a"], "val": 3}', '"val" must be a list of subject ids, not 3'),
    ):
        splits.write_text(text)
        result = runner.invoke(prep_main, ['nnunet-splits', NAME, '--raw', str(raw)])
        assert result.exit_code == 1 and message in result.output, result.output
        assert 'Traceback' not in result.output
    monkeypatch.delenv('nnUNet_preprocessed')
    result = runner.invoke(prep_main, ['nnunet-splits', str(DATASET_ID)])
    assert result.exit_code == 1
    assert 'nnUNet_preprocessed is not set' in result.output


def test_a_resplit_export_has_a_way_back_to_planning(nnunet, tmp_path):
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import (  # noqa: E501
        _maybe_copy_splits_file,
    )

    raw, preprocessed = tmp_path / 'raw', tmp_path / 'preprocessed'
    shutil.copytree(nnunet['raw'] / NAME, raw / NAME)
    (preprocessed / NAME).mkdir(parents=True)
    shutil.copytree(
        nnunet['preprocessed'] / NAME / 'gt_segmentations',
        preprocessed / NAME / 'gt_segmentations',
    )
    stale = preprocessed / NAME / 'splits_final.json'
    shutil.copy(nnunet['preprocessed'] / NAME / 'splits_final.json', stale)
    runner = CliRunner()
    result = runner.invoke(
        prep_main,
        ['split', str(raw / NAME), '--seed', '7', '--fractions', '0.4,0.3,0.3'],
    )
    assert result.exit_code == 0, result.output
    raw_split = str(raw / NAME / 'splits_final.json')
    with pytest.raises(AssertionError):  # what nnU-Net's planning stops on
        _maybe_copy_splits_file(raw_split, str(stale))
    args = [
        'nnunet-splits',
        NAME,
        '--raw',
        str(raw),
        '--preprocessed',
        str(preprocessed),
    ]
    result = runner.invoke(prep_main, args)
    assert result.exit_code == 1 and f'{stale} holds another split' in result.output
    assert 'it is stale' in result.output and '--overwrite' in result.output
    result = runner.invoke(prep_main, [*args, '--overwrite'])
    assert result.exit_code == 0, result.output
    assert 'now run nnUNetv2_plan_and_preprocess -d 987' in result.output
    _maybe_copy_splits_file(raw_split, str(stale))  # planning goes through now
    assert json.loads(stale.read_text()) == json.loads(Path(raw_split).read_text())


def test_install_reports_how_nnunet_finds_the_trainers(nnunet):
    out = nnunet['install']
    assert f'RAMP trainers installed: {trainer_folder() / SHIM_NAME}' in out.stdout
    torchvision = subprocess.run(
        [sys.executable, '-c', 'import torchvision'], capture_output=True, check=False
    )
    if torchvision.returncode == 0:
        assert 'nnUNet_extTrainer=' in out.stdout and out.stderr == ''
    else:  # the fallback, with the diagnosis and its fix
        assert 'torchvision does not import next to this torch' in out.stderr
        version = torch.__version__.split('+')[0]
        assert f'pip install --force-reinstall torch=={version} torchvision==' in (
            out.stderr
        )
    # the fixture uninstalled it again: nothing of ours is left in nnU-Net
    folder = trainer_folder()
    assert not list(folder.rglob('torchio_ramp_trainers*'))


def test_install_is_recorded_and_nnunet_finds_the_trainers(nnunet):
    import importlib.metadata

    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from torchio_ramp.nnunet.install import install
    from torchio_ramp.nnunet.install import uninstall
    from torchio_ramp.nnunet.trainers import nnUNetTrainerRAMP

    def recorded():
        files = importlib.metadata.distribution('nnunetv2').files
        return [f for f in files if f.name.startswith('torchio_ramp_trainers')]

    had = (trainer_folder() / SHIM_NAME).is_file()
    try:
        installed = install()
        assert installed.path.name == SHIM_NAME and not install().written
        assert recorded() and installed.records  # pip uninstall removes it
        found = recursive_find_trainer_class_by_name('nnUNetTrainerRAMP')
        assert found is nnUNetTrainerRAMP
    finally:
        if not had:
            assert uninstall() == trainer_folder() / SHIM_NAME
            assert not recorded()
            assert not list(trainer_folder().rglob('torchio_ramp_trainers*'))


def make_trainer(nnunet, trainer_class):
    """``trainer_class`` on fold 0, as ``nnUNetv2_train`` builds it."""
    folder = nnunet['preprocessed'] / NAME
    plans = json.loads((folder / 'nnUNetPlans.json').read_text())
    plans['continue_training'] = False
    dataset_json = json.loads((folder / 'dataset.json').read_text())
    trainer = trainer_class(plans, '3d_fullres', 0, dataset_json, torch.device('cpu'))
    trainer.initialize()
    return trainer


def test_ramp_batches_in_nnunet_domain_labels_untouched(nnunet, monkeypatch):
    from torchio_ramp.batch import BatchRampCorrupt
    from torchio_ramp.nnunet import trainers
    from torchio_ramp.nnunet.augment import TorchIOStage

    monkeypatch.setenv('RAMP_NNUNET_TINY_EPOCHS', '9')  # no longer read
    trainer = make_trainer(nnunet, trainers.nnUNetTrainerRAMP_Tiny)
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch) == (2, 5)
    train_loader, _ = trainer.get_dataloaders()
    loader = train_loader.data_loader
    steps = loader.transforms.transforms
    # the data loader: nnU-Net's steps and RAMP's spatial stage only
    assert [type(t) for t in steps].count(TorchIOStage) == 1
    batch = next(train_loader)
    data = batch['data']
    domain = trainer.ramp_domain
    below = domain.from_window(torch.zeros(())).item()
    air = data < below
    assert air.float().mean() > 0.05

    # the intensity stage on the batch, per sample, in nnU-Net's domain
    trainer._ramp_corrupt = None
    torch.manual_seed(0)
    changed = trainer.augment_batch(data)
    assert changed.shape == data.shape and changed.dtype == data.dtype
    assert (changed[air] < below).float().mean() > 0.9  # air stays air
    assert any(not torch.equal(changed[b], data[b]) for b in range(data.shape[0]))

    # the corruption stage, forced on, on the collated batch (training device)
    trainer._ramp_intensity = None
    trainer._ramp_corrupt = BatchRampCorrupt(p=1.0, generator_device='input')
    corrupted = trainer.augment_batch(data)
    inside = (domain.to_window(data) > 0) & (domain.to_window(data) < 1)
    for b in range(data.shape[0]):
        difference = (corrupted[b] - data[b])[inside[b]]
        assert difference.abs().mean() > 1e-3  # visible in every sample
    round_trip = domain.from_window(domain.to_window(data))
    assert torch.allclose(round_trip[inside], data[inside], atol=1e-5)

    # a real training step sees the augmented batch and the untouched targets
    seen = {}
    network_forward = trainer.network.forward

    def forward(x):
        seen['data'] = x.detach().clone()
        return network_forward(x)

    trainer.network.forward = forward
    targets = [t.clone() for t in batch['target']]
    loss = trainer.train_step(batch)['loss']
    assert np.isfinite(float(loss))
    assert not torch.equal(seen['data'], data)
    assert all(torch.equal(a, b) for a, b in zip(batch['target'], targets, strict=True))


def predictions(folder: Path) -> dict[str, torch.Tensor]:
    """nnU-Net's NIfTI outputs as ``(I, J, K)`` label tensors."""
    import SimpleITK as sitk

    return {
        path.name[: -len('.nii.gz')]: torch.from_numpy(
            sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0)
        ).long()
        for path in sorted(folder.glob('*.nii.gz'))
    }


STOCK_PREDICT = """
import importlib.util, sys
assert importlib.util.find_spec('torchio_ramp') is None, 'torchio_ramp importable'
from nnunetv2.inference.predict_from_raw_data import predict_entry_point
sys.argv = ['nnUNetv2_predict'] + sys.argv[1:]
predict_entry_point()
"""


def stock_predict(nnunet, tmp_path, results: Path, trainer: str) -> Path:
    """``nnUNetv2_predict`` where torchio-ramp cannot be imported.

    The interpreter reads a site folder holding every installed distribution
    but this project (links to the real ones), and no module of ours is in
    nnU-Net's trainer package.
    """
    import site as site_module

    site = tmp_path / 'site'
    if not site.exists():
        site.mkdir()
        real = Path(site_module.getsitepackages()[0])
        for entry in real.iterdir():
            if 'torchio_ramp' not in entry.name and 'ramp_prep' not in entry.name:
                (site / entry.name).symlink_to(entry)
    assert not list(trainer_folder().glob('torchio_ramp_trainers*'))
    inputs = tmp_path / 'inputs'
    if not inputs.exists():
        inputs.mkdir()
        for path in (nnunet['raw'] / NAME / 'imagesTs').iterdir():
            (inputs / path.name).symlink_to(path)
    out = tmp_path / f'predicted-{trainer}'
    code = f'import site; site.addsitedir({str(site)!r})\n' + STOCK_PREDICT
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH',)}
    env.update(nnUNet_results=str(results), nnUNet_n_proc_DA='0')
    run(
        [sys.executable, '-S', '-c', code, '-d', NAME, '-c', '3d_fullres', '-f', '0',
         '-tr', trainer, '-i', str(inputs), '-o', str(out), '-device', 'cpu',
         '--disable_tta', '-npp', '1', '-nps', '1'],
        env,
        cwd=tmp_path,  # not the checkout, whose torchio_ramp/ would import
    )  # fmt: skip
    return out


def test_stock_nnunet_predicts_with_ramp_models_without_this_project(nnunet, tmp_path):
    from torchio_ramp.nnunet.checkpoint import load_checkpoint
    from torchio_ramp.nnunet.export import export_model
    from torchio_ramp.nnunet.predictor import NnunetPredictor
    from torchio_ramp.stress.protocol import StressProtocol

    checkpoint = load_checkpoint(nnunet['model'] / 'fold_0' / 'checkpoint_final.pth')
    assert checkpoint['trainer_name'] == 'nnUNetTrainer'  # saved portable
    assert checkpoint['ramp_provenance']['trainer_name'] == TRAINER
    assert checkpoint['ramp_provenance']['ramp_strategy'] == 'ramp'

    # ours, without the trainer module installed (the fixture removed it)
    ours = NnunetPredictor(nnunet['model'], 0)
    expected = {}
    for subject in load_split(nnunet['raw'] / NAME, 'test'):
        clean = StressProtocol().normalize(subject)
        expected[subject['subject_id']] = ours.for_subject(subject)(clean)
    assert all(labels.unique().numel() > 1 for labels in expected.values())

    # the model folder itself, and its export as a stock nnUNetTrainer model,
    # predicted by stock nnU-Net in an environment without torchio-ramp
    export = export_model(nnunet['model'], tmp_path / 'exported')
    assert export.folder.name == 'nnUNetTrainer__nnUNetPlans__3d_fullres'
    exported = load_checkpoint(export.folder / 'fold_0' / 'checkpoint_final.pth')
    assert exported['ramp_provenance']['trainer_name'] == TRAINER
    assert exported['ramp_provenance']['exported_from'] == nnunet['model'].name
    for results, trainer in (
        (nnunet['results'], TRAINER),
        (tmp_path / 'exported', 'nnUNetTrainer'),
    ):
        out = stock_predict(nnunet, tmp_path, results, trainer)
        stock = predictions(out)
        assert sorted(stock) == sorted(expected)
        for case, labels in expected.items():
            assert torch.equal(stock[case], labels), (trainer, case)


def test_predictor_mirroring_is_off_by_default_and_on_when_asked(nnunet):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from torchio_ramp.nnunet.predictor import NnunetPredictor
    from torchio_ramp.stress.protocol import StressProtocol

    raw = nnunet['raw'] / NAME
    subject = load_split(raw, 'test')[0]
    clean = StressProtocol().normalize(subject)
    path = raw / 'imagesTs' / f'{subject["subject_id"]}_0000.nii.gz'
    image, properties = SimpleITKIO().read_images([str(path)])
    ours = NnunetPredictor(nnunet['model'], 0, use_mirroring=True)
    assert ours.fingerprint()['mirroring'] is True
    assert NnunetPredictor(nnunet['model'], 0).fingerprint()['mirroring'] is False
    labels = ours.for_subject(subject)(clean)
    direct = nnUNetPredictor(
        device=torch.device('cpu'), allow_tqdm=False, perform_everything_on_device=False
    )
    direct.initialize_from_trained_model_folder(str(nnunet['model']), (0,))
    expected = direct.predict_single_npy_array(image, properties)
    assert direct.use_mirroring and direct.allowed_mirroring_axes == (0, 1, 2)
    assert torch.equal(labels, torch.from_numpy(expected.transpose(2, 1, 0)).long())


def test_a_crafted_checkpoint_never_runs_in_ramp_stress_run(nnunet, tmp_path):
    sentinel = tmp_path / 'sentinel'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {sentinel}',))

    folder = tmp_path / NAME / nnunet['model'].name
    (folder / 'fold_0').mkdir(parents=True)
    for name in ('plans.json', 'dataset.json'):
        shutil.copy(nnunet['model'] / name, folder / name)
    from torchio_ramp.nnunet.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(nnunet['model'] / 'fold_0' / 'checkpoint_final.pth')
    torch.save(
        {**checkpoint, 'optimizer_state': Payload()},
        folder / 'fold_0' / 'checkpoint_final.pth',
    )
    args = ['run', '--nnunet', str(folder), '--data', str(nnunet['raw'] / NAME),
            '--families', 'blur', '--levels', '0.1', '--no-progress']  # fmt: skip
    result = CliRunner().invoke(stress_main, [*args, '--out', str(tmp_path / 'o')])
    assert result.exit_code == 1, result.output
    assert (
        'Error:' in result.output
        and 'checkpoint_final.pth was refused' in result.output
    )
    assert not sentinel.exists()
    # a damaged copy of the real checkpoint is named too
    real = (nnunet['model'] / 'fold_0' / 'checkpoint_final.pth').read_bytes()
    (folder / 'fold_0' / 'checkpoint_final.pth').write_bytes(real[: len(real) // 2])
    result = CliRunner().invoke(stress_main, [*args, '--out', str(tmp_path / 'o2')])
    assert result.exit_code == 1 and 'is damaged or not a PyTorch checkpoint' in (
        result.output
    )


def schema(value):
    if isinstance(value, dict):
        return {k: schema(v) for k, v in value.items()}
    if isinstance(value, list):
        return [schema(value[0])] if value else []
    return 'number' if isinstance(value, int | float) else type(value).__name__


def test_stress_run_nnunet_same_summary_schema_as_torchscript(nnunet, tmp_path):
    data = nnunet['raw'] / NAME
    options = ['--data', str(data), '--families', 'blur', '--levels', '0.2']
    runner = CliRunner()
    result = runner.invoke(
        stress_main,
        ['run', '--nnunet', str(nnunet['model']), '--fold', '0', '--out',
         str(tmp_path / 'nn'), *options, '--no-progress'],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model = tmp_path / 'conv.pt'
    torch.jit.save(torch.jit.script(torch.nn.Conv3d(1, 6, 1)), str(model))
    model.with_suffix('.json').write_text('{"hu_range": [-200, 300], "patch_size": 16}')
    result = runner.invoke(
        stress_main,
        ['run', '--model', str(model), '--out', str(tmp_path / 'ts'), *options,
         '--no-progress'],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    nn = json.loads((tmp_path / 'nn' / 'summary.json').read_text())
    ts = json.loads((tmp_path / 'ts' / 'summary.json').read_text())
    assert schema(nn) == schema(ts)
    assert nn['model'] == TRAINER and nn['subjects'] == 2
    assert nn['robustness']['clean']['value'] > 0.0


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        (['--fold', '3'], 'has no fold_3 (found: fold_0)'),
        (['--checkpoint', 'checkpoint_x.pth'], 'checkpoint_x.pth: not found'),
        (['--model', 'x.pt'], 'either --model or --nnunet'),
        (['--patch-size', '16'], '--patch-size cannot be used with --nnunet'),
    ],
)
def test_stress_run_nnunet_errors(nnunet, tmp_path, change, message):
    data = nnunet['raw'] / NAME
    args = ['run', '--nnunet', str(nnunet['model']), '--data', str(data)]
    # one cheap setting, should a bad option ever be accepted
    args += ['--families', 'blur', '--levels', '0.1', '--no-progress']
    result = CliRunner().invoke(
        stress_main, [*args, '--out', str(tmp_path / 'o'), *change]
    )
    assert result.exit_code in (1, 2) and message in result.output, result.output


def test_stress_run_nnunet_folder_without_plans(nnunet, tmp_path):
    data = nnunet['raw'] / NAME
    args = ['run', '--nnunet', str(tmp_path), '--data', str(data)]
    result = CliRunner().invoke(stress_main, [*args, '--out', str(tmp_path / 'o')])
    assert result.exit_code == 1 and 'not an nnU-Net model folder' in result.output
