"""Structured artifacts: ghost copies and slice-wise stripes (banding)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import batched
from .base import rand
from .base import randint
from .base import random_axis
from .base import spatial_dim


def _randperm(n: int, generator: torch.Generator | None) -> torch.Tensor:
    device = 'cpu' if generator is None else generator.device
    return torch.randperm(n, generator=generator, device=device).cpu()


def add_ghosts(
    x: torch.Tensor,
    *,
    intensity: float,
    axis: int,
    shifts: Sequence[int],
) -> torch.Tensor:
    """Add copies of ``x`` circularly shifted by ``shifts`` voxels along ``axis``.

    ``y = clip(x + intensity * sum_s roll(x, s, axis))``; each copy is made of two
    slab additions, without materialising the rolled volume.

    Example:
        >>> x = torch.zeros(1, 1, 1, 8)
        >>> x[..., 0] = 1.0
        >>> add_ghosts(x, intensity=0.25, axis=2, shifts=[2, 5])[0, 0, 0]
        tensor([1.0000, 0.0000, 0.2500, 0.0000, 0.0000, 0.2500, 0.0000, 0.0000])
    """
    dim = spatial_dim(axis)
    size = x.shape[dim]
    out = x.clone()
    for shift in shifts:
        shift = int(shift) % size
        if shift == 0:
            out.add_(x, alpha=intensity)
            continue
        rest = size - shift
        out.narrow(dim, shift, rest).add_(x.narrow(dim, 0, rest), alpha=intensity)
        out.narrow(dim, 0, shift).add_(x.narrow(dim, rest, shift), alpha=intensity)
    return out.clamp_(0, 1)


@batched
def ghosting(
    x: torch.Tensor,
    *,
    intensity: float,
    num_ghosts: int | tuple[int, int] = (2, 4),
    axis: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ghosting-like artifact: shifted copies of the image along one axis.

    Args:
        x: Image ``(C, D, H, W)`` in ``[0, 1]``.
        intensity: Weight of each copy.
        num_ghosts: Number of copies, or an inclusive range to draw it from.
        axis: Spatial axis; drawn among axes longer than one voxel when ``None``.
        generator: Source of the axis, the number of copies and their shifts.

    The shifts are distinct, drawn uniformly from ``1 .. size - 1`` voxels (at
    most ``size - 1`` copies fit on an axis).

    Example:
        >>> x = torch.rand(1, 8, 8, 8)
        >>> y = ghosting(x, intensity=0.2, generator=torch.Generator().manual_seed(0))
        >>> bool((y >= x).all())
        True
    """
    if axis is None:
        axis = random_axis(x, generator)
    if axis < 0:
        return x.clone()
    if isinstance(num_ghosts, int):
        count = num_ghosts
    else:
        count = randint(generator, int(num_ghosts[0]), int(num_ghosts[1]))
    size = x.shape[spatial_dim(axis)]
    count = min(count, size - 1)
    shifts = (_randperm(size - 1, generator)[:count] + 1).tolist()
    return add_ghosts(x, intensity=intensity, axis=axis, shifts=shifts)


def add_slice_offsets(
    x: torch.Tensor,
    offsets: torch.Tensor,
    axis: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Add ``offsets[i]`` to every voxel of slice ``i`` along ``axis`` and clip.

    Example:
        >>> x = torch.full((1, 1, 1, 4), 0.5)
        >>> add_slice_offsets(x, torch.tensor([0.0, 0.2, 0.0, -0.6]), axis=2)
        tensor([[[[0.5000, 0.7000, 0.5000, 0.0000]]]])
    """
    dim = spatial_dim(axis)
    shape = [1] * x.ndim
    shape[dim] = x.shape[dim]
    offsets = offsets.to(device=x.device, dtype=x.dtype).reshape(shape)
    return torch.add(x, offsets, out=out).clamp_(0, 1)


@batched
def stripes(
    x: torch.Tensor,
    *,
    strength: float,
    fraction: float = 0.15,
    axis: int | None = None,
    generator: torch.Generator | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stripe / banding artifact: offsets on a random subset of slices.

    ``fraction * size`` distinct slices (rounded half up, at least one) along
    ``axis`` get an offset of random sign and magnitude uniform in
    ``[strength / 2, strength]``.

    Example:
        >>> x = torch.full((1, 20, 4, 4), 0.5)
        >>> y = stripes(x, strength=0.3, axis=0, generator=torch.Generator())
        >>> int((y != 0.5).flatten(2).any(-1).sum())
        3
    """
    if axis is None:
        axis = max(random_axis(x, generator), 0)
    size = x.shape[spatial_dim(axis)]
    count = max(1, int(fraction * size + 0.5))
    slices = _randperm(size, generator)[:count]
    reference = torch.empty((), dtype=x.dtype)
    magnitudes = rand(reference, generator, shape=(count,)).mul_(0.5).add_(0.5)
    signs = rand(reference, generator, shape=(count,)).lt(0.5).mul(2).sub(1)
    offsets = torch.zeros(size, dtype=x.dtype)
    offsets[slices] = strength * magnitudes * signs
    return add_slice_offsets(x, offsets, axis, out=out)
