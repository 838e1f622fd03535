"""Whole-volume inference by sliding windows with TorchIO's grid sampler.

Used by validation during training and by the stress test. A predictor is any
callable ``image (C, D, H, W) float tensor in [0, 1] -> label map (D, H, W)``;
:class:`SlidingWindowPredictor` builds one from a segmentation network.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torchio as tio

from .arguments import parse_size


def hann_window(patch_size: Sequence[int]) -> torch.Tensor:
    """Separable Hann window ``(D, H, W)`` of a patch, strictly positive.

    The same weights as TorchIO's ``GridAggregator(overlap_mode='hann')``: a
    symmetric window of ``n + 2`` points per axis without its two zero ends.

    Example:
        >>> hann_window((3, 1, 1)).flatten()
        tensor([0.5000, 1.0000, 0.5000])
    """
    window = torch.ones(1, 1, 1)
    for axis, size in enumerate(patch_size):
        shape = [1, 1, 1]
        shape[axis] = size
        line = torch.hann_window(size + 2, periodic=False)[1:-1]
        window = window * line.view(shape)
    return window


class SlidingWindowPredictor:
    """Predict a label map for a whole volume with overlapping patches.

    Patches are cut with :class:`torchio.inference.GridSampler` and run through
    ``model`` in batches; their logits are blended with a Hann window (as
    TorchIO's ``GridAggregator(overlap_mode='hann')``, with equal results)
    before the arg-max. Axes shorter than a patch are zero-padded, then cropped
    back.

    Memory: the blended logits ``(K, D, H, W)`` and a one-channel weight map
    ``(D, H, W)`` live on ``aggregation_device``, and the final division is in
    place, so the peak is about ``K + 1`` float32 volumes (TorchIO's
    aggregator keeps ``K`` channels of weights and divides into a new tensor:
    ``3 K``). With a model on a GPU, ``aggregation_device='cpu'`` (the
    default) keeps only a batch of patches on the GPU; ``'cuda'`` aggregates
    there, faster when the volume fits.

    Args:
        model: Module mapping ``(B, C, *patch_size)`` to logits
            ``(B, K, *patch_size)``.
        patch_size: Patch size in voxels (one int or three).
        overlap: Overlap between patches in voxels (one int or three, even).
        batch_size: Patches per forward pass.
        device: Device for the forward pass (default: the model's).
        amp: Use bfloat16 automatic mixed precision on CUDA (as training does).
        aggregation_device: Device holding the blended output volume
            (default: the CPU).

    Example:
        >>> import torch
        >>> from torchio_ramp.inference import SlidingWindowPredictor
        >>> model = torch.nn.Conv3d(1, 3, 1)
        >>> predict = SlidingWindowPredictor(model, patch_size=8, overlap=2)
        >>> predict(torch.rand(1, 12, 10, 5)).shape
        torch.Size([12, 10, 5])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        patch_size: int | Sequence[int],
        overlap: int | Sequence[int] = 0,
        batch_size: int = 2,
        device: torch.device | str | None = None,
        amp: bool = False,
        aggregation_device: torch.device | str = 'cpu',
    ):
        self.model = model
        self.patch_size = parse_size(patch_size, 'patch_size')
        self.overlap = parse_size(overlap, 'overlap', allow_zero=True)
        if any(o % 2 for o in self.overlap):
            raise ValueError(f'overlap must be even, not {overlap!r}')
        if any(o >= p for o, p in zip(self.overlap, self.patch_size, strict=True)):
            raise ValueError(f'overlap {overlap!r} must be smaller than patch_size')
        if batch_size < 1:
            raise ValueError(f'batch_size must be positive, not {batch_size}')
        self.batch_size = batch_size
        if device is None:
            parameter = next(model.parameters(), None)
            device = parameter.device if parameter is not None else 'cpu'
        self.device = torch.device(device)
        self.amp = amp
        try:
            self.aggregation_device = torch.device(aggregation_device)
        except (RuntimeError, TypeError) as error:
            message = f'aggregation_device: not a device: {aggregation_device!r}'
            raise ValueError(message) from error

    @torch.no_grad()
    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """Blended logits ``(K, D, H, W)`` (float32, on ``aggregation_device``)."""
        spatial = image.shape[-3:]
        # Axes shorter than a patch are zero-padded at the end, then cropped back
        padding = [max(0, p - n) for p, n in zip(self.patch_size, spatial, strict=True)]
        padded = image.float().cpu()
        if any(padding):
            pairs = [v for amount in reversed(padding) for v in (0, amount)]
            padded = torch.nn.functional.pad(padded, pairs)
        subject = tio.Subject(image=tio.ScalarImage(tensor=padded))
        sampler = tio.inference.GridSampler(subject, self.patch_size, self.overlap)
        loader = torch.utils.data.DataLoader(sampler, batch_size=self.batch_size)
        window = hann_window(self.patch_size).to(self.device)
        # One weight channel: every logit channel of a voxel has the same weight
        weights = torch.zeros(padded.shape[1:], device=self.aggregation_device)
        patch_weights = window.to(self.aggregation_device)
        output: torch.Tensor | None = None
        was_training = self.model.training
        self.model.eval()
        use_amp = self.amp and self.device.type == 'cuda'
        # bfloat16, as in training: float16 can overflow activations to inf
        autocast = (
            torch.autocast('cuda', dtype=torch.bfloat16) if use_amp else nullcontext()
        )
        try:
            for batch in loader:
                patches = batch['image'][tio.DATA].to(self.device)
                with autocast:
                    logits = self._forward(patches).float()
                # In place: the batch's logits are the largest temporary
                weighted = logits.mul_(window).to(self.aggregation_device)
                if output is None:
                    output = weighted.new_zeros(weighted.shape[1], *weights.shape)
                for patch, location in zip(weighted, batch[tio.LOCATION], strict=True):
                    i0, j0, k0, i1, j1, k1 = location.tolist()
                    output[:, i0:i1, j0:j1, k0:k1] += patch
                    weights[i0:i1, j0:j1, k0:k1] += patch_weights
                # Free this batch before the next forward pass allocates its own
                del batch, patches, logits, weighted, patch
        finally:
            self.model.train(was_training)
        assert output is not None  # the grid has at least one patch
        output /= weights
        return output[:, : spatial[0], : spatial[1], : spatial[2]]

    def _forward(self, patches: torch.Tensor) -> torch.Tensor:
        # On the CPU, PyTorch runs 3-D convolutions of a single sample through a
        # slow path (about 3x slower than a batch of two at one thread): pad a
        # lone patch, e.g. the last batch of a grid, to a batch of two.
        if len(patches) == 1 and self.device.type == 'cpu':
            return self.model(patches.expand(2, *patches.shape[1:]))[:1]
        return self.model(patches)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Label map ``(D, H, W)`` (int64, on the CPU) of ``image`` ``(C, D, H, W)``."""
        if image.ndim != 4:
            message = f'image must have shape (C, D, H, W), not {tuple(image.shape)}'
            raise ValueError(message)
        return self.logits(image).argmax(dim=0).cpu()
