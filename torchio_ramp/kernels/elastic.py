"""Simard-style elastic deformation with a dense smooth displacement field."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .base import batched
from .fields import smooth_noise_field


def elastic_displacement(
    shape: Sequence[int],
    *,
    alpha: float,
    sigma: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = 'cpu',
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Displacement field ``alpha * G_sigma * U(-1, 1)`` in voxels, ``(3, *shape)``.

    This is Simard et al.'s (2003) elastic field: uniform white noise per voxel
    and axis, smoothed with a Gaussian of ``sigma`` voxels and scaled by
    ``alpha``. Channel ``i`` displaces along spatial axis ``i``. The field is
    generated on a coarse grid and upsampled (see
    :func:`~torchio_ramp.kernels.fields.smooth_noise_field`). Note that in 3-D
    the smoothing shrinks the noise a lot: ``alpha=80, sigma=10`` gives a
    displacement standard deviation of about 0.22 voxels, a mild deformation.

    Example:
        >>> d = elastic_displacement((32, 32, 32), alpha=80, sigma=10)
        >>> d.shape
        torch.Size([3, 32, 32, 32])
    """
    field = smooth_noise_field(
        shape,
        sigma=sigma,
        channels=3,
        generator=generator,
        device=device,
        dtype=dtype,
    )
    return field.mul_(alpha)


def warp(
    x: torch.Tensor,
    displacement: torch.Tensor,
    *,
    mode: str = 'bilinear',
) -> torch.Tensor:
    """Resample ``x`` (``(C, D, H, W)``) at ``identity + displacement``.

    Args:
        x: Image to warp; label maps of any dtype are warped with
            ``mode='nearest'`` and keep their dtype and value set.
        displacement: ``(3, D, H, W)`` displacement in voxels along each axis.
        mode: ``'bilinear'`` (trilinear for volumes) or ``'nearest'``.

    Samples outside the volume take the value of the nearest border voxel.

    Example:
        >>> x = torch.rand(1, 4, 4, 4)
        >>> torch.allclose(warp(x, torch.zeros(3, 4, 4, 4)), x, atol=1e-6)
        True
    """
    spatial = x.shape[-3:]
    if tuple(displacement.shape) != (3, *spatial):
        message = (
            f'displacement must have shape {(3, *spatial)}, '
            f'not {tuple(displacement.shape)}'
        )
        raise ValueError(message)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    displacement = displacement.to(device=x.device, dtype=dtype)
    # grid_sample wants (x, y, z) = (W, H, D) coordinates in [-1, 1]
    grid = torch.empty((1, *spatial, 3), device=x.device, dtype=dtype)
    for axis, size in enumerate(spatial):
        component = grid[0, ..., 2 - axis]
        if size == 1:
            component.zero_()
            continue
        scale = 2.0 / (size - 1)
        base_shape = [1, 1, 1]
        base_shape[axis] = size
        base = torch.linspace(-1, 1, size, device=x.device, dtype=dtype)
        torch.add(
            base.reshape(base_shape), displacement[axis], alpha=scale, out=component
        )
    source = x.unsqueeze(0) if x.is_floating_point() else x.unsqueeze(0).to(dtype)
    warped = F.grid_sample(
        source,
        grid,
        mode=mode,
        padding_mode='border',
        align_corners=True,
    )[0]
    return warped if x.is_floating_point() else warped.round_().to(x.dtype)


@batched
def elastic_deform(
    x: torch.Tensor,
    *,
    alpha: float,
    sigma: float,
    mode: str = 'bilinear',
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Warp ``x`` with a random :func:`elastic_displacement`.

    To deform an image and its label map identically, draw the displacement
    once and call :func:`warp` on each (``mode='nearest'`` for labels).

    Example:
        >>> x = torch.rand(1, 8, 8, 8)
        >>> elastic_deform(x, alpha=80, sigma=10).shape
        torch.Size([1, 8, 8, 8])
    """
    displacement = elastic_displacement(
        x.shape[-3:],
        alpha=alpha,
        sigma=sigma,
        generator=generator,
        device=x.device,
        dtype=x.dtype,
    )
    warped = warp(x, displacement, mode=mode)
    return warped if mode == 'nearest' else warped.clamp_(0, 1)
