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
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Add zero-mean Gaussian noise: ``clip(x + std * n)``, ``n ~ N(0, 1)``.

    Example:
        >>> x = torch.full((1, 8, 8, 8), 0.5)
        >>> y = gaussian_noise(x, std=0.1, generator=torch.Generator().manual_seed(0))
        >>> y.shape, bool(((y >= 0) & (y <= 1)).all())
        (torch.Size([1, 8, 8, 8]), True)
    """
    noise = randn(x, generator)
    # x + std * n in one pass (into the noise buffer by default), then the clamp
    return torch.add(x, noise, alpha=std, out=noise if out is None else out).clamp_(
        0, 1
    )


@batched
def rician_noise(
    x: torch.Tensor,
    *,
    std: float,
    generator: torch.Generator | None = None,
    out: torch.Tensor | None = None,
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
    real = randn(x, generator)
    # into out (which may be x) when given: the first field is freed before
    # the second is drawn
    real = torch.add(x, real, alpha=std, out=real if out is None else out).square_()
    imaginary = randn(x, generator)
    # (x + std n1)^2 + std^2 n2^2 without scaling n2 in a pass of its own
    return real.addcmul_(imaginary, imaginary, value=std * std).sqrt_().clamp_(0, 1)


@batched
def speckle_noise(
    x: torch.Tensor,
    *,
    std: float,
    generator: torch.Generator | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multiplicative noise ``clip(x (1 + std n))``, ``n ~ N(0, 1)``.

    Example:
        >>> x = torch.zeros(1, 4, 4, 4)
        >>> y = speckle_noise(x, std=0.2, generator=torch.Generator().manual_seed(0))
        >>> bool((y == 0).all())
        True
    """
    noise = randn(x, generator)
    # x (1 + std n) = x + std x n: one pass, then the clamp
    target = noise if out is None else out
    return torch.addcmul(x, x, noise, value=std, out=target).clamp_(0, 1)


@batched
def salt_pepper(
    x: torch.Tensor,
    *,
    prob: float,
    generator: torch.Generator | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Set each voxel to 0 or 1 (equal probability) with probability ``prob``.

    Rather than one uniform number per voxel, ``M = -N log(1 - prob)`` voxel
    indices are drawn uniformly with replacement (``N`` voxels). A voxel is
    then hit at least once with probability ``1 - (1 - 1/N)^M = prob`` up to
    ``O(1/N)``; drawing ``M`` numbers instead of ``N`` makes the kernel several
    times faster. A hit voxel's value is one bit of :func:`index_hash` of its
    index and a random key drawn per call: 0 or 1 with probability 1/2,
    independent between voxels, and the same for every hit of a voxel, so
    repeated hits give the same result whichever write lands last (on any
    device and thread count).

    Example:
        >>> x = torch.full((1, 20, 20, 20), 0.5)
        >>> g = torch.Generator().manual_seed(0)
        >>> y = salt_pepper(x, prob=0.1, generator=g)
        >>> round(float((y != 0.5).float().mean()), 2)
        0.1
    """
    if out is not None and out.is_contiguous():
        work = out if out is x else out.copy_(x)
    else:
        work = x.clone(memory_format=torch.contiguous_format)
    flat = work.view(-1)
    size = flat.numel()
    if prob >= 1:
        flat.copy_(rand(flat, generator).lt_(0.5))
        return _deliver(work, out)
    hits = round(-size * math.log1p(-prob))
    device = x.device if generator is None else generator.device
    # The key first: with the same generator state, a higher prob keeps the
    # hits (and values) of a lower one and adds more (paired severity draws).
    key = torch.randint(2**62, (1,), generator=generator, device=device)
    index = torch.randint(size, (hits,), generator=generator, device=device)
    index, key = index.to(x.device), key.to(x.device)
    values = index_hash(index, key).bitwise_right_shift_(32).bitwise_and_(1)
    flat.index_put_((index,), values.to(x.dtype))
    return _deliver(work, out)


def _deliver(work: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """``work``, copied into ``out`` when that is another tensor."""
    if out is None or out is work:
        return work
    return out.copy_(work)


_MASK_34 = (1 << 34) - 1
_MASK_37 = (1 << 37) - 1
_MASK_33 = (1 << 33) - 1
_SPLITMIX = (-7046029254386353131, -4658895280553007687, -7723592293110705685)


def index_hash(index: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """SplitMix64-style mix of ``index + key`` (int64, wrapping): 64 mixed bits.

    Logical right shifts are written as arithmetic shifts with a mask, as
    torch has no unsigned 64-bit shift.

    Example:
        >>> index = torch.arange(4)
        >>> key = torch.tensor([7])
        >>> torch.equal(index_hash(index, key), index_hash(index, key))
        True
    """
    golden, first, second = _SPLITMIX
    h = (index + key).mul_(golden)
    h.bitwise_xor_(h.bitwise_right_shift(30).bitwise_and_(_MASK_34)).mul_(first)
    h.bitwise_xor_(h.bitwise_right_shift(27).bitwise_and_(_MASK_37)).mul_(second)
    return h.bitwise_xor_(h.bitwise_right_shift(31).bitwise_and_(_MASK_33))
