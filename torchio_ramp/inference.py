"""Whole-volume inference by sliding windows with TorchIO's grid sampler.

Used by validation during training, by the stress test and by the examples. A
*predictor* is any callable ``image (C, D, H, W) float tensor in [0, 1] ->
label map (D, H, W)``; :class:`SlidingWindowPredictor` builds one from a
segmentation network, with the defaults every tool shares
(:func:`default_overlap`: half the patch; :func:`make_predictor`).

The network's side of the contract is checked here too: :func:`check_output`
probes a network once with a blank patch (its number of classes), and
:class:`OutputContract` checks every batch of logits during a run (shape,
channels, finite values), raising :class:`ModelOutputError`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torchio as tio

from .arguments import parse_size

Predictor = Callable[[torch.Tensor], torch.Tensor]
"""``image (C, D, H, W) float in [0, 1] -> label map (D, H, W), integer``."""


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


def default_overlap(patch_size: Sequence[int]) -> tuple[int, int, int]:
    """Half the patch per axis, rounded down to an even number.

    The overlap of validation during training and of ``ramp-stress run``.

    Example:
        >>> default_overlap((96, 96, 25))
        (48, 48, 12)
    """
    values = [(p // 2) // 2 * 2 for p in patch_size]
    return (values[0], values[1], values[2])


def make_predictor(
    module: torch.nn.Module,
    patch_size: int | Sequence[int],
    *,
    overlap: int | Sequence[int] | None = None,
    batch_size: int = 2,
    device: str | torch.device | None = None,
    amp: bool = False,
    aggregation_device: str | torch.device = 'cpu',
) -> SlidingWindowPredictor:
    """Sliding-window predictor over ``module`` with the shared defaults.

    Args:
        module: Network mapping ``(B, 1, *patch)`` to logits.
        patch_size: Patch size in voxels (one int or three).
        overlap: Overlap in voxels (default: :func:`default_overlap`).
        batch_size: Patches per forward pass.
        device: Device of the forward pass (default: the module's).
        amp: bfloat16 automatic mixed precision (CUDA only).
        aggregation_device: Device of the blended output volume (default: the
            CPU, so a GPU holds only a batch of patches).

    Example:
        >>> predict = make_predictor(torch.nn.Conv3d(1, 6, 1), (8, 8, 8))
        >>> predict(torch.rand(1, 10, 9, 8)).shape
        torch.Size([10, 9, 8])
    """
    patch_size = parse_size(patch_size, 'patch_size')
    if overlap is None:
        overlap = default_overlap(patch_size)
    return SlidingWindowPredictor(
        module,
        patch_size=patch_size,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        amp=amp,
        aggregation_device=aggregation_device,
    )


def check_output(
    module: torch.nn.Module,
    patch_size: Sequence[int],
    *,
    in_channels: int = 1,
    num_classes: int | None = None,
    device: str | torch.device = 'cpu',
    name: str = 'the model',
) -> int:
    """Run one blank patch through ``module`` and return its number of classes.

    Raises:
        ValueError: If the forward pass fails, the output is not
            ``(1, K, *patch_size)`` logits, or ``K`` differs from
            ``num_classes``; the message names ``name``.

    Example:
        >>> check_output(torch.nn.Conv3d(1, 6, 1), (8, 8, 8))
        6
    """
    patch = torch.zeros(1, in_channels, *patch_size, device=device)
    try:
        with torch.no_grad():
            output = module(patch)
    except Exception as error:  # any failure of user code: say where it happened
        message = (
            f'{name} failed on a blank (1, {in_channels}, {", ".join(map(str, patch_size))})'  # noqa: E501
            f' patch: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'  # noqa: E501
        )
        raise ValueError(message) from error
    if not isinstance(output, torch.Tensor):
        raise ValueError(f'{name} returned {type(output).__name__}, not a tensor')
    shape = tuple(output.shape)
    if len(shape) != 5 or shape[0] != 1 or shape[2:] != tuple(patch_size):
        message = (
            f'{name} maps a (1, {in_channels}, *{tuple(patch_size)}) patch to shape'
            f' {shape}; expected logits (1, K, *{tuple(patch_size)})'
        )
        raise ValueError(message)
    if num_classes is not None and shape[1] != num_classes:
        message = (
            f'{name} outputs {shape[1]} channels but its sidecar says num_classes'
            f' = {num_classes}'
        )
        raise ValueError(message)
    return shape[1]


class ModelOutputError(ValueError):
    """The model's output breaks the contract (shape, channels, finite logits)."""


class OutputContract(torch.nn.Module):
    """Wrap a network so every forward pass checks its logits.

    The output must be a ``(B, K, *patch)`` tensor with ``K == num_classes``
    and only finite values (one :func:`torch.aminmax` reduction per batch of
    patches). NaN logits would otherwise be argmaxed to background and
    scored as a real, low Dice.

    Args:
        module: The network.
        num_classes: Output channels expected (background included).

    Example:
        >>> net = OutputContract(torch.nn.Conv3d(1, 6, 1), num_classes=6)
        >>> net(torch.zeros(1, 1, 4, 4, 4)).shape
        torch.Size([1, 6, 4, 4, 4])
        >>> OutputContract(torch.nn.Conv3d(1, 3, 1), 6)(torch.zeros(1, 1, 4, 4, 4))
        Traceback (most recent call last):
        ...
        torchio_ramp.inference.ModelOutputError: the model returned 3 channels but the dataset has 6 classes (background included)
    """  # noqa: E501

    def __init__(self, module: torch.nn.Module, num_classes: int):
        super().__init__()
        self.module = module
        self.num_classes = int(num_classes)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        output = self.module(patches)
        if not isinstance(output, torch.Tensor):
            message = f'the model returned {type(output).__name__}, not a tensor'
            raise ModelOutputError(message)
        shape = tuple(output.shape)
        if len(shape) != 5 or shape[0] != patches.shape[0]:
            message = (
                f'the model returned shape {shape} for patches of shape'
                f' {tuple(patches.shape)}; expected logits (B, K, D, H, W)'
            )
            raise ModelOutputError(message)
        if shape[1] != self.num_classes:
            message = (
                f'the model returned {shape[1]} channels but the dataset has'
                f' {self.num_classes} classes (background included)'
            )
            raise ModelOutputError(message)
        low, high = torch.aminmax(output.detach())
        if not bool(torch.isfinite(low) & torch.isfinite(high)):
            bad = int((~torch.isfinite(output.detach())).sum())
            message = (
                f'the model returned non-finite logits (NaN or Inf in {bad} of'
                f' {output.numel()} values)'
            )
            raise ModelOutputError(message)
        return output
