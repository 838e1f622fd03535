"""Separable linear resampling as one small matrix product per axis.

Linear interpolation along an axis is a sparse ``(size_out, size_in)`` matrix;
applying one per spatial axis with ``torch.matmul`` reproduces
``F.interpolate(mode='trilinear')`` up to float rounding and is several times
faster on the CPU at one thread. The same mechanism applies any separable
linear operator, such as valid Gaussian filtering of a coarse grid.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch


def interpolation_matrix(
    size_in: int,
    size_out: int,
    *,
    align_corners: bool = True,
    device: torch.device | str = 'cpu',
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(size_out, size_in)`` matrix of linear interpolation.

    With ``align_corners=True`` output sample ``i`` sits at
    ``i * (size_in - 1) / (size_out - 1)`` on the input grid (first and last
    samples coincide); with ``False`` at ``(i + 0.5) * size_in / size_out - 0.5``
    clamped to the grid (half-voxel centres), as in ``F.interpolate``.

    Example:
        >>> interpolation_matrix(2, 3)
        tensor([[1.0000, 0.0000],
                [0.5000, 0.5000],
                [0.0000, 1.0000]])
    """
    matrix = _interpolation_matrix64(size_in, size_out, align_corners)
    return matrix.to(device=device, dtype=dtype, copy=True)


@functools.lru_cache(maxsize=256)
def _interpolation_matrix64(
    size_in: int, size_out: int, align_corners: bool
) -> torch.Tensor:
    """The float64 CPU matrix, built once per geometry (never modified)."""
    if size_in == 1:
        return torch.ones(size_out, 1, dtype=torch.float64)
    index = torch.arange(size_out, dtype=torch.float64)
    if align_corners:
        position = index * ((size_in - 1) / max(size_out - 1, 1))
    else:
        position = ((index + 0.5) * (size_in / size_out) - 0.5).clamp_(0, size_in - 1)
    low = position.floor().clamp_(max=size_in - 2).long()
    weight = position - low
    rows = torch.arange(size_out)
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    matrix[rows, low] = 1 - weight
    matrix[rows, low + 1] += weight
    return matrix


def along_axes(x: torch.Tensor, matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply one matrix per spatial axis: ``y[..., i, j, k] = A_i B_j C_k x``.

    ``x`` is ``(..., d, h, w)`` and the matrices are ``(D, d)``, ``(H, h)`` and
    ``(W, w)``; the result is ``(..., D, H, W)``. Separable linear operators
    (interpolation, valid filtering) become three matrix products.
    """
    along_d, along_h, along_w = matrices
    *leading, d, h, w = x.shape
    depth, height, width = along_d.shape[0], along_h.shape[0], along_w.shape[0]
    out = torch.matmul(along_d, x.reshape(-1, d, h * w)).reshape(-1, depth, h, w)
    out = torch.matmul(along_h, out)
    out = torch.matmul(out, along_w.T)
    return out.reshape(*leading, depth, height, width)


def resize_linear(
    x: torch.Tensor,
    size: Sequence[int],
    *,
    align_corners: bool = True,
) -> torch.Tensor:
    """Trilinear resize of the last three dims of ``x`` to ``size``.

    Example:
        >>> x = torch.rand(2, 5, 6, 7)
        >>> import torch.nn.functional as F
        >>> reference = F.interpolate(x[None], size=(9, 4, 7), mode='trilinear')[0]
        >>> got = resize_linear(x, (9, 4, 7), align_corners=False)
        >>> torch.allclose(got, reference, atol=1e-6)
        True
    """
    options = {'align_corners': align_corners, 'device': x.device, 'dtype': x.dtype}
    matrices = [
        interpolation_matrix(n, int(m), **options)
        for n, m in zip(x.shape[-3:], size, strict=True)
    ]
    return along_axes(x, matrices)
