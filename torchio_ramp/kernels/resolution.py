"""Resolution degradation by down- and up-sampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import batched


def degraded_size(size: int, factor: float) -> int:
    """Length of an axis after downsampling by ``factor`` (at least 1 voxel)."""
    return max(1, int(size / factor + 0.5))


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
    in the paper.

    Example:
        >>> x = torch.rand(1, 12, 12, 12)
        >>> downsample(x, factor=2.0).shape
        torch.Size([1, 12, 12, 12])
    """
    spatial = x.shape[-3:]
    low = tuple(degraded_size(n, factor) for n in spatial)
    batch = x.unsqueeze(0)
    down = F.interpolate(batch, size=low, mode='trilinear', align_corners=False)
    up = F.interpolate(down, size=spatial, mode='trilinear', align_corners=False)
    return up[0].clamp_(0, 1)
