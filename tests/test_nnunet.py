"""nnU-Net v2 as a client: export, planning, fold 0, RAMP trainers, predictor.

Runs the real nnunetv2 (``nnUNetv2_plan_and_preprocess``, ``nnUNetv2_train
-device cpu``, ``nnUNetPredictor``) on seven 32^3 phantoms, once per module:
a tiny configuration of the end-to-end path a user follows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
TINY = {
    'RAMP_NNUNET_TINY_EPOCHS': '1',
    'RAMP_NNUNET_TINY_ITERATIONS': '2',
    'RAMP_NNUNET_TINY_VAL_ITERATIONS': '1',
}
BIN = Path(sys.executable).parent


def run(args, env):
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope='module')
def nnunet(tmp_path_factory):
    """Export, plan and preprocess, install the trainers, train RAMP (tiny)."""
    base = tmp_path_factory.mktemp('nnunet')
    folders = {k: base / k for k in ('raw', 'preprocessed', 'results')}
    env_vars = {
        'nnUNet_raw': str(folders['raw']),
        'nnUNet_preprocessed': str(folders['preprocessed']),
        'nnUNet_results': str(folders['results']),
        'nnUNet_def_n_proc': '1',
        **TINY,
    }
    # data augmentation in the main process (planning needs it positive)
    training_env = {'nnUNet_n_proc_DA': '0'}
    saved = {k: os.environ.get(k) for k in [*env_vars, *training_env]}
    os.environ.update(env_vars)
    env = dict(os.environ)
    shim = trainer_folder() / SHIM_NAME
    had_shim = shim.is_file()
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
        run([sys.executable, '-m', 'torchio_ramp.nnunet', 'install'], env)
        os.environ.update(training_env)
        env.update(training_env)
        training = run(
            [
                BIN / 'nnUNetv2_train',
                str(DATASET_ID),
                '3d_fullres',
                '0',
                '-tr',
                'nnUNetTrainerRAMP_Tiny',
                '-device',
                'cpu',
            ],
            env,
        )
        yield {
            **folders,
            'ids': ids,
            'planning': planning,
            'training': training,
            'model': folders['results']
            / NAME
            / 'nnUNetTrainerRAMP_Tiny__nnUNetPlans__3d_fullres',
        }
    finally:
        if not had_shim and shim.is_file():
            shim.unlink()
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


def test_nnunet_splits_errors_name_the_problem(nnunet, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(prep_main, ['nnunet-splits', '986'])
    assert result.exit_code == 1 and 'dataset 986 not found in' in result.output
    monkeypatch.delenv('nnUNet_preprocessed')
    result = runner.invoke(prep_main, ['nnunet-splits', str(DATASET_ID)])
    assert result.exit_code == 1
    assert 'nnUNet_preprocessed is not set' in result.output


def test_install_is_idempotent_and_nnunet_finds_the_trainers(nnunet):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from torchio_ramp.nnunet.install import install
    from torchio_ramp.nnunet.trainers import nnUNetTrainerRAMP

    path, written = install()
    assert not written and path.name == SHIM_NAME
    found = recursive_find_trainer_class_by_name('nnUNetTrainerRAMP')
    assert found is nnUNetTrainerRAMP
    assert (nnunet['model'] / 'fold_0' / 'checkpoint_final.pth').is_file()


def make_trainer(nnunet, name):
    from nnunetv2.run.run_training import get_trainer_from_args

    trainer = get_trainer_from_args(
        str(DATASET_ID), '3d_fullres', 0, name, device=torch.device('cpu')
    )
    trainer.initialize()
    return trainer


def test_ramp_batches_in_nnunet_domain_corrupted_labels_untouched(nnunet):
    from torchio_ramp.batch import BatchRampCorrupt
    from torchio_ramp.nnunet.augment import TorchIOStage

    trainer = make_trainer(nnunet, 'nnUNetTrainerRAMP')
    train_loader, _ = trainer.get_dataloaders()
    loader = train_loader.data_loader
    pipeline = loader.transforms
    samples = []

    def recording(**sample):
        samples.append({k: v.clone() for k, v in sample.items()})
        return pipeline(**sample)

    loader.transforms = recording
    batch = next(train_loader)
    assert len(samples) == batch['data'].shape[0] == trainer.batch_size
    assert [type(t) for t in pipeline.transforms].count(TorchIOStage) == 2
    steps = pipeline.transforms

    def compose(keep):
        return type(pipeline)([t for t in steps if keep(t)])

    def spatial_stage(t):
        return isinstance(t, TorchIOStage) and t.domain is None

    def intensity_stage(t):
        return isinstance(t, TorchIOStage) and t.domain is not None

    nnunet_only = compose(lambda t: not isinstance(t, TorchIOStage))
    with_intensity = compose(lambda t: not spatial_stage(t))
    domain = trainer.ramp_domain
    below = domain.from_window(torch.zeros(())).item()
    changed = 0
    for index, sample in enumerate(samples):
        torch.manual_seed(index)
        plain = nnunet_only(**{k: v.clone() for k, v in sample.items()})
        augmented = with_intensity(**{k: v.clone() for k, v in sample.items()})
        # label maps (all deep-supervision scales) are what nnU-Net alone makes
        for ours, theirs in zip(
            augmented['segmentation'], plain['segmentation'], strict=True
        ):
            assert torch.equal(ours, theirs)
        image, reference = augmented['image'], plain['image']
        assert image.shape == reference.shape
        # still nnU-Net's domain: air (below the window) stays far below it
        air = reference < below
        assert air.float().mean() > 0.05
        assert (image[air] < below).float().mean() > 0.9
        changed += int(not torch.equal(image, reference))
    assert changed > 0  # RampIntensity altered at least one of the samples

    # the corruption stage, forced on, on the collated batch (training device)
    trainer._ramp_corrupt = BatchRampCorrupt(p=1.0, generator_device='input')
    data = batch['data']
    corrupted = trainer.corrupt_batch(data)
    assert corrupted.shape == data.shape and corrupted.dtype == data.dtype
    inside = (domain.to_window(data) > 0) & (domain.to_window(data) < 1)
    for b in range(data.shape[0]):
        difference = (corrupted[b] - data[b])[inside[b]]
        assert difference.abs().mean() > 1e-3  # visible in every sample
    assert not torch.allclose(corrupted.std(), data.std(), rtol=1e-3)
    round_trip = domain.from_window(domain.to_window(data))
    assert torch.allclose(round_trip[inside], data[inside], atol=1e-5)

    # a real training step sees the corrupted batch and the untouched targets
    seen = {}
    network_forward = trainer.network.forward

    def forward(x):
        seen['data'] = x.detach().clone()
        return network_forward(x)

    trainer.network.forward = forward
    targets = [t.clone() for t in batch['target']]
    loss = trainer.train_step(batch)['loss']
    assert float(loss) == float(loss)  # finite
    assert not torch.equal(seen['data'], data)
    assert all(torch.equal(a, b) for a, b in zip(batch['target'], targets, strict=True))


def test_predictor_matches_nnunet_predictor_on_the_clean_volume(nnunet):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from torchio_ramp.nnunet.predictor import NnunetPredictor
    from torchio_ramp.stress.protocol import StressProtocol

    raw = nnunet['raw'] / NAME
    subject = load_split(raw, 'test')[0]
    ours = NnunetPredictor(nnunet['model'], 0)
    clean = StressProtocol().normalize(subject)
    labels = ours.for_subject(subject)(clean)

    direct = nnUNetPredictor(device=torch.device('cpu'), allow_tqdm=False)
    direct.initialize_from_trained_model_folder(str(nnunet['model']), (0,))
    path = raw / 'imagesTs' / f'{subject["subject_id"]}_0000.nii.gz'
    image, properties = SimpleITKIO().read_images([str(path)])
    expected = direct.predict_single_npy_array(image, properties)
    assert labels.shape == subject.label.shape[1:]
    assert torch.equal(labels, torch.from_numpy(expected.transpose(2, 1, 0)).long())
    assert labels.unique().numel() > 1  # not a trivially empty prediction


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
    assert nn['model'] == 'nnUNetTrainerRAMP_Tiny' and nn['subjects'] == 2
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
