"""Sliding-window inference: Hann blending into one weight channel."""

from __future__ import annotations

import pytest
import torch
import torchio as tio
from click.testing import CliRunner
from torch.utils._python_dispatch import TorchDispatchMode

from torchio_ramp.inference import SlidingWindowPredictor
from torchio_ramp.inference import hann_window
from torchio_ramp.stress.cli import main as stress_main


def _torchio_hann_logits(model, image, patch_size, overlap, batch_size):
    """The full-channel formula: TorchIO's ``GridAggregator(overlap_mode='hann')``."""
    spatial = image.shape[-3:]
    padding = [max(0, p - n) for p, n in zip(patch_size, spatial, strict=True)]
    padded = torch.nn.functional.pad(
        image, [v for amount in reversed(padding) for v in (0, amount)]
    )
    subject = tio.Subject(image=tio.ScalarImage(tensor=padded))
    sampler = tio.inference.GridSampler(subject, patch_size, overlap)
    aggregator = tio.inference.GridAggregator(sampler, overlap_mode='hann')
    for batch in torch.utils.data.DataLoader(sampler, batch_size=batch_size):
        with torch.no_grad():
            output = model(batch['image'][tio.DATA])
        aggregator.add_batch(output.float(), batch[tio.LOCATION])
    output = aggregator.get_output_tensor()
    return output[:, : spatial[0], : spatial[1], : spatial[2]]


def _model(classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    # A 3x3x3 kernel: patches see different borders, so blending matters
    return torch.nn.Conv3d(1, classes, 3, padding=1).eval()


@pytest.mark.parametrize(
    ('shape', 'patch', 'overlap', 'batch_size'),
    [
        ((20, 18, 14), (8, 8, 8), (4, 4, 4), 3),
        ((17, 6, 11), (8, 8, 8), (2, 2, 6), 2),  # one axis shorter than a patch
        ((12, 12, 12), (12, 12, 12), (0, 0, 0), 1),  # a single patch
    ],
)
def test_logits_equal_the_full_channel_formula(shape, patch, overlap, batch_size):
    model = _model()
    image = torch.rand(1, *shape, generator=torch.Generator().manual_seed(1))
    predict = SlidingWindowPredictor(model, patch, overlap, batch_size=batch_size)
    logits = predict.logits(image)
    expected = _torchio_hann_logits(model, image, patch, overlap, batch_size)
    assert logits.shape == (4, *shape)
    assert torch.equal(logits, expected)  # bit for bit, not merely close
    assert torch.equal(predict(image), expected.argmax(0))


def test_hann_window_is_torchio_s():
    expected = tio.inference.GridAggregator._get_hann_window((6, 5, 4))
    assert torch.equal(hann_window((6, 5, 4)), expected)
    assert hann_window((6, 5, 4)).min() > 0


class _VolumeAllocations(TorchDispatchMode):
    """Bytes of every new tensor whose spatial shape is the volume's."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        inputs = {
            item.untyped_storage().data_ptr()
            for item in [*args, *(kwargs or {}).values()]
            if isinstance(item, torch.Tensor)
        }
        outputs = result if isinstance(result, (tuple, list)) else [result]
        for item in outputs:
            if not isinstance(item, torch.Tensor):
                continue
            storage = item.untyped_storage()
            new = storage.data_ptr() not in inputs
            if new and tuple(item.shape[-3:]) == self.shape:
                self.total += storage.nbytes()
        return result


def test_blending_allocates_one_weight_channel_not_one_per_class():
    classes, shape = 8, (24, 24, 24)
    volume = 4 * 24**3  # bytes of one float32 channel
    model = torch.nn.Conv3d(1, classes, 1)
    image = torch.rand(1, *shape)
    predict = SlidingWindowPredictor(model, 16, 8, batch_size=2)
    with _VolumeAllocations(shape) as watch:
        predict.logits(image)
    # K channels of logits + 1 of weights (+ the padded input); the full-channel
    # formula needs K of weights and K more for its division
    assert watch.total <= (classes + 2) * volume
    with _VolumeAllocations(shape) as watch:
        _torchio_hann_logits(model, image, (16, 16, 16), (8, 8, 8), 2)
    assert watch.total >= 3 * classes * volume


def test_aggregation_device_is_checked():
    with pytest.raises(ValueError, match='aggregation_device'):
        SlidingWindowPredictor(_model(), 8, aggregation_device='gpu0')
    predict = SlidingWindowPredictor(_model(), 8, aggregation_device='cpu')
    assert predict.logits(torch.rand(1, 8, 8, 8)).device.type == 'cpu'


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_patches_on_the_gpu_volume_on_the_cpu():
    model = _model().cuda()
    image = torch.rand(1, 30, 20, 12)
    on_cpu = SlidingWindowPredictor(model, 8, 4, aggregation_device='cpu')
    on_gpu = SlidingWindowPredictor(model, 8, 4, aggregation_device='cuda')
    logits = on_cpu.logits(image)
    assert logits.device.type == 'cpu'
    torch.testing.assert_close(logits, on_gpu.logits(image).cpu())
    assert on_gpu(image).device.type == 'cpu'


def test_stress_cli_refuses_a_bad_aggregation_device(tmp_path):
    arguments = ['run', '--model', 'm.pt', '--data', str(tmp_path), '--out']
    arguments += [str(tmp_path / 'out'), '--aggregation-device', 'gpu0']
    result = CliRunner().invoke(stress_main, arguments)
    assert result.exit_code == 2
    assert "Invalid value for '--aggregation-device'" in result.output
    assert 'gpu0' in result.output
