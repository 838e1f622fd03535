"""Resolution degradation by down- and up-sampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import batched


def degraded_size(size: int, factor: float) -> int:
    """Length of an axis after downsampling by ``factor`` (at least 1 voxel)."""
    return max(1, int(size / factor + 0.5))


def upsample_trilinear(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Trilinear resize of ``(C, d, h, w)`` to ``(C, *size)``, for a larger grid.

    The same interpolation as ``F.interpolate(mode='trilinear',
    align_corners=False)``, computed as a bilinear pass over ``(h, w)`` with
    the ``d`` slices as channels, then a bilinear pass over ``(d, H * W)``
    whose second axis keeps its size (weights exactly 1 and 0). This nests
    the weights in the trilinear kernel's order, so the values agree to the
    last bit, or to float rounding (about 1e-7) on grids where PyTorch picks
    kernels of another vector width; on a 128^3 output it takes half the time
    on the CPU.

    Example:
        >>> x = torch.rand(2, 5, 6, 7)
        >>> y = upsample_trilinear(x, (9, 12, 14))
        >>> reference = F.interpolate(x[None], size=(9, 12, 14), mode='trilinear')
        >>> torch.allclose(y, reference[0], atol=1e-6)
        True
    """
    channels, depth, height, width = x.shape
    size_d, size_h, size_w = size
    planes = F.interpolate(
        x.reshape(1, channels * depth, height, width),
        size=(size_h, size_w),
        mode='bilinear',
        align_corners=False,
    )
    lines = F.interpolate(
        planes.view(channels, 1, depth, size_h * size_w),
        size=(size_d, size_h * size_w),
        mode='bilinear',
        align_corners=False,
    )
    return lines.view(channels, size_d, size_h, size_w)


@batched
def downsample(
    x: torch.Tensor,
    *,
    factor: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Downsample by ``factor`` and upsample back, both trilinear.

    The result keeps the input's shape (and hence its affine): it is a lower
    resolution image on the original grid. Interpolation uses half-voxel
    centres (``align_corners=False``); no anti-aliasing filter is applied, as
    in the paper. The way back runs through :func:`upsample_trilinear`.

    Example:
        >>> x = torch.rand(1, 12, 12, 12)
        >>> downsample(x, factor=2.0).shape
        torch.Size([1, 12, 12, 12])
    """
    spatial = tuple(x.shape[-3:])
    low = tuple(degraded_size(n, factor) for n in spatial)
    down = F.interpolate(x[None], size=low, mode='trilinear', align_corners=False)
    return upsample_trilinear(down[0], spatial).clamp_(0, 1)
