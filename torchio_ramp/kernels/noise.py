"""Voxel-wise random noise: additive, Rician-like, multiplicative, impulse."""

from __future__ import annotations

import math

import torch

from .base import batched
from .base import rand
from .base import randn


@batched
def gaussian_noise(
    x: torch.Tensor,
    *,
    std: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add zero-mean Gaussian noise: ``clip(x + std * n)``, ``n ~ N(0, 1)``.

    Example:
        >>> x = torch.full((1, 8, 8, 8), 0.5)
        >>> y = gaussian_noise(x, std=0.1, generator=torch.Generator().manual_seed(0))
        >>> y.shape, bool(((y >= 0) & (y <= 1)).all())
        (torch.Size([1, 8, 8, 8]), True)
    """
    noise = randn(x, generator)
    return noise.mul_(std).add_(x).clamp_(0, 1)


@batched
def rician_noise(
    x: torch.Tensor,
    *,
    std: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rician-like noise: ``clip(sqrt((x + std n1)^2 + (std n2)^2))``.

    ``n1`` and ``n2`` are independent standard normal fields (real and imaginary
    channels of a magnitude image), so the result is Rice-distributed with
    ``nu = x``: ``E[y^2] = x^2 + 2 std^2`` before clipping.

    Example:
        >>> x = torch.zeros(1, 4, 4, 4)
        >>> y = rician_noise(x, std=0.1, generator=torch.Generator().manual_seed(0))
        >>> bool((y > 0).all())
        True
    """
    real = randn(x, generator).mul_(std).add_(x).square_()
    imaginary = randn(x, generator).mul_(std).square_()
    return real.add_(imaginary).sqrt_().clamp_(0, 1)


@batched
def speckle_noise(
    x: torch.Tensor,
    *,
    std: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Multiplicative noise ``clip(x (1 + std n))``, ``n ~ N(0, 1)``.

    Example:
        >>> x = torch.zeros(1, 4, 4, 4)
        >>> y = speckle_noise(x, std=0.2, generator=torch.Generator().manual_seed(0))
        >>> bool((y == 0).all())
        True
    """
    noise = randn(x, generator)
    return noise.mul_(std).add_(1).mul_(x).clamp_(0, 1)


@batched
def salt_pepper(
    x: torch.Tensor,
    *,
    prob: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Set each voxel to 0 or 1 (equal probability) with probability ``prob``.

    Rather than one uniform number per voxel, ``M = -N log(1 - prob)`` voxel
    indices are drawn uniformly with replacement (``N`` voxels), each with a
    random 0/1 value (a voxel hit several times keeps its last hit's value). A
    voxel is then hit at least once with probability ``1 - (1 - 1/N)^M = prob``
    up to ``O(1/N)``, and its value is 0 or 1 with probability 1/2; drawing
    ``M`` numbers instead of ``N`` makes the kernel several times faster.

    Example:
        >>> x = torch.full((1, 20, 20, 20), 0.5)
        >>> g = torch.Generator().manual_seed(0)
        >>> y = salt_pepper(x, prob=0.1, generator=g)
        >>> round(float((y != 0.5).float().mean()), 2)
        0.1
    """
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    flat = out.view(-1)
    size = flat.numel()
    if prob >= 1:
        flat.copy_(rand(flat, generator).lt_(0.5))
        return out
    hits = round(-size * math.log1p(-prob))
    device = x.device if generator is None else generator.device
    index = torch.randint(size, (hits,), generator=generator, device=device)
    values = torch.randint(2, (hits,), generator=generator, device=device)
    index, values = index.to(x.device), values.to(x.device, x.dtype)
    # A voxel hit several times keeps its last hit's value. Writing duplicates
    # directly is order-dependent (CUDA, threads), so first record each voxel's
    # last hit, in the output's own memory while it is still scratch space.
    if out.element_size() >= 4:
        last_hit = flat.view(torch.int32)[:size]
    else:
        last_hit = torch.empty(size, dtype=torch.int32, device=x.device)
    last_hit.index_fill_(0, index, -1)  # only hit voxels are read back
    order = torch.arange(hits, dtype=torch.int32, device=x.device)
    last_hit.scatter_reduce_(0, index, order, reduce='amax')
    winners = values.index_select(0, last_hit.index_select(0, index).long())
    out.copy_(x)
    flat.scatter_(0, index, winners)
    return out
