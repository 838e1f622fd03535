"""Separable Gaussian filtering by shift-add.

Each tap of a 1-D filter is one fused multiply-add over a shifted view of the
volume, with replicate ("nearest") boundary handling, so a 3-D blur runs close to
the memory bandwidth floor on any device and stays fast at one thread, where
``conv3d`` with 1-D kernels falls to a slow path. The result matches
``scipy.ndimage.gaussian_filter(..., mode='nearest', truncate=TRUNCATE)``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

TRUNCATE = 3.0
"""Gaussian kernels are cut at ``TRUNCATE`` standard deviations (scipy's rule)."""


def gaussian_weights(sigma: float, truncate: float = TRUNCATE) -> list[float]:
    """Normalised taps of a sampled 1-D Gaussian (``2 r + 1`` values).

    The radius is ``r = int(truncate * sigma + 0.5)``, as in SciPy; ``sigma <= 0``
    or a radius of 0 gives the identity ``[1.0]``.

    Example:
        >>> [round(w, 3) for w in gaussian_weights(1.0, truncate=1.0)]
        [0.274, 0.452, 0.274]
    """
    if sigma <= 0:
        return [1.0]
    radius = int(truncate * sigma + 0.5)
    taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = sum(taps)
    return [tap / total for tap in taps]


def filter1d(
    x: torch.Tensor,
    weights: Sequence[float],
    dim: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Correlate ``x`` with symmetric odd-length ``weights`` along ``dim``.

    Boundaries replicate the edge values. The result goes to ``out`` (a buffer
    shaped like ``x`` that does not overlap it) or to a new tensor.

    Example:
        >>> x = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])
        >>> filter1d(x, [0.25, 0.5, 0.25], dim=0)
        tensor([0.0000, 0.2500, 0.5000, 0.2500, 0.0000])
    """
    if len(weights) % 2 == 0 or any(
        not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
        for a, b in zip(weights, reversed(weights), strict=True)
    ):
        raise ValueError(f'weights must be symmetric and of odd length, not {weights}')
    radius = (len(weights) - 1) // 2
    out = torch.mul(x, weights[radius], out=out)
    size = x.shape[dim]
    for offset in range(1, min(radius, size - 1) + 1):
        weight = weights[radius + offset]
        inner = size - offset
        # out[i] += w * x[i - offset] and w * x[i + offset], inside the volume
        out.narrow(dim, offset, inner).add_(x.narrow(dim, 0, inner), alpha=weight)
        out.narrow(dim, 0, inner).add_(x.narrow(dim, offset, inner), alpha=weight)
    # replicate padding: output i < radius reads the edge value once per tap
    # beyond the edge (taps 0 .. radius - i - 1), so it takes the edge value
    # times their summed weight: one broadcast product per edge instead of one
    # addition per tap (the weights are symmetric: the same sums serve the end)
    edge = min(radius, size)
    if edge:
        shape = [1] * x.ndim
        shape[dim] = edge
        sums = [sum(weights[: radius - i]) for i in range(edge)]
        beyond = torch.tensor(sums, dtype=x.dtype, device=x.device).view(shape)
        first = x.narrow(dim, 0, 1)
        last = x.narrow(dim, size - 1, 1)
        out.narrow(dim, 0, edge).addcmul_(first, beyond)
        out.narrow(dim, size - edge, edge).addcmul_(last, beyond.flip(dim))
    return out


SLAB_VALUES = 2**20
"""Values per slab for the passes after the first one (4 MiB of float32)."""


def gaussian_filter(
    x: torch.Tensor,
    sigma: float | Sequence[float],
    dims: Sequence[int] = (-3, -2, -1),
    truncate: float = TRUNCATE,
    *,
    overwrite_input: bool = False,
) -> torch.Tensor:
    """Separable Gaussian smoothing of ``x`` along ``dims`` (sigma in voxels).

    The first pass writes a new volume; when the other passes run along later
    dimensions (the default order), they run slab by slab of the first
    dimension through a small buffer, so smoothing needs one volume besides
    ``x`` plus a slab of at most :data:`SLAB_VALUES` values. With
    ``overwrite_input`` the passes alternate between the new volume and ``x``
    instead, and nothing else is allocated.

    Args:
        x: Tensor of any shape.
        sigma: One standard deviation for all ``dims`` or one per dim.
        dims: Dimensions to smooth.
        truncate: Kernel radius in standard deviations.
        overwrite_input: Allow ``x``'s memory to be reused (its content is
            then undefined); for temporaries owned by the caller.

    Returns:
        A new tensor (a copy when every sigma is 0); with
        ``overwrite_input``, possibly ``x`` itself, overwritten.

    Example:
        >>> x = torch.zeros(1, 9, 9, 9)
        >>> x[0, 4, 4, 4] = 1
        >>> y = gaussian_filter(x, 1.0)
        >>> round(float(y.sum()), 5)
        1.0
    """
    sigmas = [float(sigma)] * len(dims) if _is_number(sigma) else list(sigma)
    if len(sigmas) != len(dims):
        raise ValueError(f'Got {len(sigmas)} sigmas for {len(dims)} dims')
    passes = [
        (dim % x.ndim, weights)
        for dim, value in zip(dims, sigmas, strict=True)
        if len(weights := gaussian_weights(value, truncate)) > 1
    ]
    if not passes:
        return x.clone()
    (first, weights), rest = passes[0], passes[1:]
    slabs_apply = rest and all(dim > first for dim, _ in rest)
    if slabs_apply and not overwrite_input:
        return _filter_in_slabs(filter1d(x, weights, first), first, rest)
    # passes alternate between two volumes; with overwrite_input the second
    # one is x (no slab buffer is allocated, which keeps the allocator from
    # returning and re-faulting memory between calls)
    out, spare = x, None
    for dim, weights in passes:
        result = filter1d(out, weights, dim, out=spare)
        spare = out if (out is not x or overwrite_input) else None
        out = result
    return out


def _filter_in_slabs(
    out: torch.Tensor,
    lead: int,
    passes: Sequence[tuple[int, Sequence[float]]],
) -> torch.Tensor:
    """Run ``passes`` (along dims after ``lead``) on slabs of ``out``, in place."""
    size = out.shape[lead]
    rows = max(1, SLAB_VALUES // max(1, out.numel() // max(1, size)))
    buffer = None
    for start in range(0, size, rows):
        slab = out.narrow(lead, start, min(rows, size - start))
        if buffer is None or buffer.shape != slab.shape:
            buffer = torch.empty(slab.shape, dtype=out.dtype, device=out.device)
        source, target = slab, buffer
        for dim, weights in passes:
            filter1d(source, weights, dim, out=target)
            source, target = target, source
        if source is not slab:
            slab.copy_(source)
    return out


def _is_number(value: object) -> bool:
    is_scalar_tensor = isinstance(value, torch.Tensor) and value.ndim == 0
    return isinstance(value, numbers.Real) or is_scalar_tensor


def gaussian_matrix(
    size: int,
    sigma: float,
    truncate: float = TRUNCATE,
    *,
    device: torch.device | str = 'cpu',
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(size, size + 2 r)`` matrix of 'valid' Gaussian filtering.

    Output sample ``i`` is ``sum_k w_k x[i + r + k]`` for an input extended by the
    kernel radius ``r`` on both sides, so no boundary rule is involved. For the
    small grids of smooth random fields a matrix product is much faster than
    shift-add filtering.

    Example:
        >>> gaussian_matrix(2, 1.0, truncate=1.0)
        tensor([[0.2741, 0.4519, 0.2741, 0.0000],
                [0.0000, 0.2741, 0.4519, 0.2741]])
    """
    weights = torch.tensor(gaussian_weights(sigma, truncate), dtype=torch.float64)
    taps = len(weights)
    matrix = torch.zeros(size, size + taps - 1, dtype=torch.float64)
    for row in range(size):
        matrix[row, row : row + taps] = weights
    return matrix.to(device=device, dtype=dtype)
