"""Gaussian smoothing operators: isotropic blur, motion blur, unsharp masking."""

from __future__ import annotations

import torch

from .base import batched
from .base import random_axis
from .base import spatial_dim
from .filters import gaussian_filter


@batched
def gaussian_blur(
    x: torch.Tensor,
    *,
    sigma: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Isotropic Gaussian smoothing with standard deviation ``sigma`` voxels.

    Example:
        >>> x = torch.rand(1, 8, 8, 8)
        >>> y = gaussian_blur(x, sigma=1.0)
        >>> bool(y.std() < x.std())
        True
    """
    return gaussian_filter(x, sigma).clamp_(0, 1)


@batched
def motion_blur(
    x: torch.Tensor,
    *,
    sigma: float,
    axis: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """1-D Gaussian smoothing along one spatial axis (directional motion blur).

    Args:
        x: Image ``(C, D, H, W)`` in ``[0, 1]``.
        sigma: Standard deviation in voxels.
        axis: Spatial axis 0, 1 or 2; drawn from ``generator`` among the axes
            longer than one voxel when ``None``.
        generator: Source of the random axis.

    Example:
        >>> x = torch.rand(1, 8, 1, 1).expand(1, 8, 8, 8).contiguous()
        >>> torch.allclose(motion_blur(x, sigma=2.0, axis=2), x)  # constant along W
        True
        >>> torch.allclose(motion_blur(x, sigma=2.0, axis=0), x)
        False
    """
    if axis is None:
        axis = random_axis(x, generator)
    if axis < 0:
        return x.clone()
    return gaussian_filter(x, sigma, dims=(spatial_dim(axis),)).clamp_(0, 1)


@batched
def sharpen(
    x: torch.Tensor,
    *,
    sigma: float,
    amount: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Unsharp masking: ``clip(x + amount * (x - G_sigma * x))``.

    Example:
        >>> x = torch.zeros(1, 1, 1, 9)
        >>> x[..., 4:] = 0.5
        >>> y = sharpen(x, sigma=1.0, amount=1.0)
        >>> bool(y[..., 4] > 0.5) and bool(y[..., 3] < 1e-6)
        True
    """
    blurred = gaussian_filter(x, sigma)
    # x + amount (x - blurred) = lerp(x, blurred, -amount), in one pass
    return torch.lerp(x, blurred, -amount, out=blurred).clamp_(0, 1)
