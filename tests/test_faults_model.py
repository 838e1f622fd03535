"""Fault injection on the model side: ramp-stress never scores a broken model.

Wrong channel counts, NaN/Inf logits (all or some), models that raise, labels
out of range, hostile factories, missing GPUs and damaged results files end
in an error naming the subject/setting/option/file, exit 1 (runtime) or 2
(usage), no traceback, and no summary.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from tests.prep_fixtures import invoke_cli
from tests.prep_fixtures import prepare_phantoms
from torchio_ramp.inference import OutputContract
from torchio_ramp.inference import make_predictor
from torchio_ramp.model_files import load_model
from torchio_ramp.stress.cli import main
from torchio_ramp.stress.protocol import StressProtocol
from torchio_ramp.stress.runner import ModelError
from torchio_ramp.stress.runner import run_stress_test

pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')

PROTOCOL = StressProtocol(families=['gaussian_noise', 'blur'], levels=[0.05, 0.25])
GRID = ['--families', 'gaussian_noise,blur', '--levels', '0.05,0.25']
SETTINGS = [s.name for s in PROTOCOL.settings]


def invoke(arguments, code: int):
    return invoke_cli(main, arguments, code)


@pytest.fixture(scope='module')
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('faults-model')
    return prepare_phantoms(root, 3, '16,16,16')


class Scaled(torch.nn.Module):
    """``channels`` logits; NaN/Inf from the ``bad_from``-th forward pass on."""

    def __init__(self, channels: int = 6, bad_from: int | None = None, fill=None):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, channels, 1)
        self.bad_from = bad_from
        self.fill = float('nan') if fill is None else fill
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.conv(x)
        if self.bad_from is not None and self.calls >= self.bad_from:
            out = out.clone()
            out[:, :, 0, 0, 0] = self.fill  # one voxel per patch is enough
        return out


class NaNLogits(torch.nn.Module):
    """A scriptable model whose logits are all NaN."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * float('nan')


class Raises(torch.nn.Module):
    def __init__(self, after: int):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 6, 1)
        self.after = after
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError('CUDA out of memory (simulated)')
        return self.conv(x)


def scripted(folder: Path, name: str, module, sidecar: dict | None = None) -> Path:
    path = folder / f'{name}.pt'
    torch.jit.save(torch.jit.script(module), path)
    sidecar = {'hu_range': [-200, 300], 'patch_size': 16, **(sidecar or {})}
    path.with_suffix('.json').write_text(json.dumps(sidecar))
    return path


def predictor(module) -> callable:
    return make_predictor(OutputContract(module, 6), (16, 16, 16), batch_size=2)


def nothing_scored(out: Path) -> bool:
    return not (out / 'summary.json').exists()


# Channels ---------------------------------------------------------------------------


@pytest.mark.parametrize('channels', [1, 3, 5, 7, 10])
@pytest.mark.parametrize('declared', [False, True])
def test_channel_count_must_match_the_dataset(prepared, tmp_path, channels, declared):
    sidecar = {'num_classes': channels} if declared else {}
    model = scripted(tmp_path, 'm', torch.nn.Conv3d(1, channels, 1), sidecar)
    out = tmp_path / 'out'
    result = invoke(['run', '--model', model, '--data', prepared, '--out', out,
                     *GRID, '--no-progress'], 1)  # fmt: skip
    if channels == 1 and declared:  # the sidecar itself is refused
        assert 'm.json: num_classes must be an integer >= 2, not 1' in result.output
    else:
        assert f'outputs {channels} channels' in result.output
        assert 'has 6 classes' in result.output and 'dataset.json' in result.output
    assert nothing_scored(out) and not (out / 'results.csv').exists()


def test_the_contract_checks_channels_on_every_forward_pass(prepared, tmp_path):
    wrong = make_predictor(OutputContract(Scaled(3), 6), (16, 16, 16))
    with pytest.raises(ModelError, match=r"subject '.*', setting clean: .*3 channels"):
        run_stress_test(wrong, prepared, tmp_path, protocol=PROTOCOL)
    assert nothing_scored(tmp_path)


# Non-finite logits ------------------------------------------------------------------


@pytest.mark.parametrize('fill', [float('nan'), float('inf'), -float('inf')])
@pytest.mark.parametrize('bad_from', [1, 2, 4])
def test_non_finite_logits_name_subject_and_setting(prepared, tmp_path, fill, bad_from):
    # 16^3 volumes in 16^3 patches: one forward pass per setting, in order
    module = Scaled(6, bad_from=bad_from, fill=fill)
    with pytest.raises(ModelError) as caught:
        run_stress_test(predictor(module), prepared, tmp_path, protocol=PROTOCOL)
    message = str(caught.value)
    subject = json.loads((prepared / 'splits.json').read_text())['test'][0]
    assert f"subject '{subject}', setting {SETTINGS[bad_from - 1]}:" in message
    assert 'non-finite logits (NaN or Inf in 12 of' in message
    assert nothing_scored(tmp_path)
    results = tmp_path / 'results.csv'
    assert not results.exists() or subject not in results.read_text()


def test_all_nan_model_through_the_cli(prepared, tmp_path):
    model = scripted(tmp_path, 'nan', NaNLogits())
    out = tmp_path / 'out'
    result = invoke(['run', '--model', model, '--data', prepared, '--out', out,
                     *GRID, '--no-progress'], 1)  # fmt: skip
    assert 'setting clean: the model returned non-finite logits' in result.output
    assert 'Dice' not in result.output and nothing_scored(out)


# Exceptions and bad labels -------------------------------------------------------


@pytest.mark.parametrize('after', [0, 1, 3, 5])
def test_a_model_that_raises_is_reported_with_subject_setting_message(
    prepared, tmp_path, after
):
    with pytest.raises(ModelError) as caught:
        run_stress_test(predictor(Raises(after)), prepared, tmp_path, protocol=PROTOCOL)
    message = str(caught.value)
    assert message.startswith('the model failed on subject ')
    assert f'setting {SETTINGS[after % len(SETTINGS)]}:' in message
    assert message.endswith('RuntimeError: CUDA out of memory (simulated)')
    assert nothing_scored(tmp_path)


def test_a_factory_model_that_raises_through_the_cli(prepared, tmp_path, monkeypatch):
    package = tmp_path / 'pkg'
    package.mkdir()
    (package / 'flaky_model.py').write_text(
        'import torch\n'
        'class Net(torch.nn.Module):\n'
        '    def __init__(self):\n'
        '        super().__init__()\n'
        '        self.conv = torch.nn.Conv3d(1, 6, 1)\n'
        '        self.calls = 0\n'
        '    def forward(self, x):\n'
        '        self.calls += 1\n'
        '        if self.calls > 2:\n'
        "            raise ValueError('shape mismatch in decoder')\n"
        '        return self.conv(x)\n'
        'def build():\n'
        '    return Net()\n'
    )
    monkeypatch.syspath_prepend(str(package))
    weights = tmp_path / 'weights.pt'
    torch.save({'conv.weight': torch.zeros(6, 1, 1, 1, 1),
                'conv.bias': torch.zeros(6)}, weights)  # fmt: skip
    out = tmp_path / 'out'
    result = invoke(['run', '--model', 'flaky_model:build', '--weights', weights,
                     '--data', prepared, '--out', out, '--hu-range', -200, 300,
                     '--patch-size', 16, *GRID, '--no-progress'], 1)  # fmt: skip
    # the blank check patch is call 1, the clean volume call 2
    assert 'the model failed on subject' in result.output
    assert f'setting {SETTINGS[1]}: ValueError: shape mismatch in decoder' in (
        result.output
    )
    assert nothing_scored(out)
    sys.modules.pop('flaky_model', None)


@pytest.mark.parametrize('value', [-1, 6, 255])
def test_labels_outside_the_dataset_are_refused(prepared, tmp_path, value):
    def predict(image):
        labels = torch.zeros(image.shape[1:], dtype=torch.long)
        labels[0, 0, 0] = value
        return labels

    with pytest.raises(ModelError, match=rf'labels in \[.*{value}.*\].*0\.\.5'):
        run_stress_test(predict, prepared, tmp_path, protocol=PROTOCOL)


# Options and files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ('device', 'needle'),
    [
        ('bogus', "'bogus' is not a device name"),
        ('cuda:x', 'is not a device name'),
        ('meta', "unsupported device type 'meta'"),
    ],
)
def test_bad_devices_are_usage_errors(prepared, tmp_path, device, needle):
    model = scripted(tmp_path, 'm', torch.nn.Conv3d(1, 6, 1))
    result = invoke(['run', '--model', model, '--data', prepared, '--out', tmp_path,
                     '--device', device], 2)  # fmt: skip
    assert "Invalid value for '--device'" in result.output and needle in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_missing_gpu_is_not_called_a_bad_model_file(prepared, tmp_path):
    model = scripted(tmp_path, 'm', torch.nn.Conv3d(1, 6, 1))
    result = invoke(['run', '--model', model, '--data', prepared, '--out', tmp_path,
                     '--device', 'cuda'], 2)  # fmt: skip
    assert 'CUDA is not available' in result.output
    assert 'TorchScript' not in result.output
    with pytest.raises(ValueError, match='CUDA is not available') as caught:
        load_model(model, device='cuda')
    assert 'TorchScript' not in str(caught.value)


@pytest.mark.parametrize(
    ('spec', 'needle'),
    [
        ('os:system', '--model os:system: calling system() failed: TypeError'),
        ('os:getcwd', 'the factory returned str, not a torch.nn.Module'),
        ('no_such_module_xyz:build', "cannot import 'no_such_module_xyz'"),
        ('json:nothing_here', "'json' has no 'nothing_here'"),
    ],
)
def test_hostile_or_wrong_factories_name_the_option(prepared, tmp_path, spec, needle):
    weights = tmp_path / 'w.pt'
    torch.save({}, weights)
    result = invoke(['run', '--model', spec, '--weights', weights, '--data', prepared,
                     '--out', tmp_path / 'out'], 1)  # fmt: skip
    assert needle in result.output


def test_seed_out_of_range_names_the_option(prepared, tmp_path):
    model = scripted(tmp_path, 'm', torch.nn.Conv3d(1, 6, 1))
    result = invoke(['run', '--model', model, '--data', prepared, '--out', tmp_path,
                     '--seed', -1], 2)  # fmt: skip
    assert "Invalid value for '--seed'" in result.output


def test_a_damaged_line_in_results_csv_is_named(prepared, tmp_path):
    model = scripted(tmp_path, 'm', torch.nn.Conv3d(1, 6, 1))
    out = tmp_path / 'out'
    run = ['run', '--model', model, '--data', prepared, '--out', out,
           '--families', 'blur', '--levels', 0.1, '--no-progress']  # fmt: skip
    invoke(run, 0)
    results = out / 'results.csv'
    data = bytearray(results.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = b'\xff\xfe\xfd\xfc'
    results.write_bytes(bytes(data))
    result = invoke(run, 1)
    assert 'results' in result.output and 'damaged' in result.output
    assert 'codec' not in result.output.split('Error: ')[-1][:40]
    result = invoke(['report', out, '--out', tmp_path / 'report'], 1)
    assert f'{results} is damaged' in result.output


def test_a_results_file_that_is_a_device_is_an_error(prepared, tmp_path):
    if not Path('/dev/full').exists():
        pytest.skip('needs /dev/full')
    model = scripted(tmp_path, 'm', torch.nn.Conv3d(1, 6, 1))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'results.csv').symlink_to('/dev/full')
    result = invoke(['run', '--model', model, '--data', prepared, '--out', out,
                     '--families', 'blur', '--levels', 0.1, '--no-progress'],
                    1)  # fmt: skip
    assert 'Error: ' in result.output
    assert nothing_scored(out)
    shutil.rmtree(out)
