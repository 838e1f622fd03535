"""Simard-style elastic deformation with a dense smooth displacement field."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .base import batched
from .fields import coarse_noise_field
from .fields import smooth_noise_field
from .resample import along_axes
from .resample import interpolation_matrix


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


def elastic_grid(
    shape: Sequence[int],
    *,
    alpha: float,
    sigma: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = 'cpu',
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The sampling grid of an elastic deformation, at coarse resolution.

    ``upsample_linear(elastic_grid(shape, ...), shape)`` equals
    ``displacement_to_grid(elastic_displacement(shape, ...))`` with the same
    generator up to float rounding: the identity ramp and the scaling to
    grid_sample's ``[-1, 1]`` coordinates are applied to the coarse field,
    before the (linear) upsampling. :func:`sample` takes this coarse grid and
    upsamples it one slab at a time, so the full-resolution grid (three volumes)
    is never held in memory. Returns ``(3, d, h, w)``, components in
    grid_sample's order (W, H, D).

    Example:
        >>> from torchio_ramp.kernels.fields import upsample_linear
        >>> grid = elastic_grid((8, 8, 8), alpha=0.0, sigma=4.0)
        >>> upsample_linear(grid, (8, 8, 8))[2, :, 0, 0]
        tensor([-1.0000, -0.7143, -0.4286, -0.1429,  0.1429,  0.4286,  0.7143,  1.0000])
    """
    coarse = coarse_noise_field(
        shape, sigma=sigma, channels=3, generator=generator, device=device, dtype=dtype
    )
    return _to_grid(coarse, alpha, shape)


def displacement_to_grid(displacement: torch.Tensor) -> torch.Tensor:
    """Convert a ``(3, D, H, W)`` displacement in voxels to a sampling grid.

    The grid holds grid_sample's normalised coordinates (``align_corners=True``)
    of ``identity + displacement``, components in its order (W, H, D).
    """
    return _to_grid(displacement, 1.0, displacement.shape[-3:])


def _to_grid(field: torch.Tensor, scale: float, shape: Sequence[int]) -> torch.Tensor:
    # field samples the volume with corner alignment: its ramp along each axis
    # maps to the voxel ramp of the full volume
    grid = torch.empty_like(field)
    for axis, size in enumerate(shape):
        component = grid[2 - axis]
        if size == 1:
            component.zero_()
            continue
        samples = field.shape[1 + axis]
        ramp_shape = [1, 1, 1]
        ramp_shape[axis] = samples
        ramp = torch.linspace(-1, 1, samples, device=field.device, dtype=field.dtype)
        alpha = 2.0 * scale / (size - 1)
        torch.add(ramp.reshape(ramp_shape), field[axis], alpha=alpha, out=component)
    return grid


SLAB_VOXELS = 2**19
"""Voxels per slab when :func:`sample` upsamples a coarse grid (128^3: four).

Small enough that the slab's grid, indices and samples stay a fraction of a
large volume (peak memory), large enough to keep the per-slab overhead low."""


def sample(
    x: torch.Tensor,
    grid: torch.Tensor,
    *,
    mode: str | None = None,
) -> torch.Tensor:
    """Resample ``x`` (``(C, D, H, W)``) at a ``(3, d, h, w)`` sampling grid.

    A grid coarser than ``x`` (as from :func:`elastic_grid`) is interpolated
    linearly, corner-aligned, to ``x``'s shape one slab of about
    :data:`SLAB_VOXELS` voxels at a time. ``mode`` is ``'bilinear'``
    (trilinear) or ``'nearest'``; by default, floating images are interpolated
    and integer images (label maps) take the nearest voxel, keeping their dtype
    and value set. Samples outside the volume repeat the border voxel.
    Interpolated samples are convex combinations of input voxels, so they are
    bounded to the input's range (which float rounding can otherwise exceed by
    an ulp, e.g. ``1.0000001`` from an image in ``[0, 1]``).

    Example:
        >>> x = torch.rand(1, 6, 5, 4)
        >>> identity = elastic_grid((6, 5, 4), alpha=0.0, sigma=2.0)
        >>> torch.allclose(sample(x, identity), x, atol=1e-5)
        True
    """
    return sample_many([x], grid, modes=[mode])[0]


def sample_many(
    images: Sequence[torch.Tensor],
    grid: torch.Tensor,
    *,
    modes: Sequence[str | None] | None = None,
) -> list[torch.Tensor]:
    """:func:`sample` several images of the same shape at one grid.

    The coarse grid is upsampled once per slab for all the images (an image
    and its label map), instead of once per image.

    Example:
        >>> ct = torch.rand(1, 6, 5, 4)
        >>> seg = (ct > 0.5).to(torch.uint8)
        >>> grid = elastic_grid((6, 5, 4), alpha=40.0, sigma=2.0)
        >>> warped_ct, warped_seg = sample_many([ct, seg], grid)
        >>> torch.equal(warped_seg, sample(seg, grid)), warped_seg.dtype
        (True, torch.uint8)
    """
    if not images:
        return []
    modes = list(modes) if modes is not None else [None] * len(images)
    if len(modes) != len(images):
        raise ValueError(f'got {len(modes)} modes for {len(images)} images')
    spatial = images[0].shape[-3:]
    for x in images[1:]:
        if x.shape[-3:] != spatial:
            message = (
                f'images to sample at one grid must have the same spatial shape,'
                f' not {tuple(spatial)} and {tuple(x.shape[-3:])}'
            )
            raise ValueError(message)
    device = images[0].device
    modes = [_check_mode(x, mode) for x, mode in zip(images, modes, strict=True)]
    # integer images (label maps) are read by index, in their own dtype
    gathered = [not x.is_floating_point() for x in images]
    sources = [
        x if by_index else x.unsqueeze(0)
        for x, by_index in zip(images, gathered, strict=True)
    ]
    outs = [torch.empty(x.shape, device=device, dtype=x.dtype) for x in images]
    floating = [x.dtype for x in images if x.is_floating_point()]
    grid_dtype = floating[0] if floating else torch.float32
    grid = grid.to(device=device, dtype=grid_dtype)
    options = {'device': device, 'dtype': grid_dtype}
    along_d, along_h, along_w = (
        interpolation_matrix(m, n, **options)
        for m, n in zip(grid.shape[1:], spatial, strict=True)
    )
    rows = max(1, SLAB_VOXELS // (spatial[1] * spatial[2]))
    bounds = [
        torch.aminmax(x) if mode == 'bilinear' else None
        for x, mode in zip(images, modes, strict=True)
    ]
    for start in range(0, spatial[0], rows):
        stop = min(start + rows, spatial[0])
        if tuple(grid.shape[1:]) == tuple(spatial):
            slab = grid[:, start:stop]
        else:
            slab = along_axes(grid, (along_d[start:stop], along_h, along_w))
        # grid_sample reads the channel-last view through its strides, no copy
        coordinates = slab.permute(1, 2, 3, 0).unsqueeze(0)
        for source, out, mode, by_index in zip(
            sources, outs, modes, gathered, strict=True
        ):
            if by_index:
                out[:, start:stop] = _nearest_by_index(source, slab)
                continue
            out[:, start:stop] = F.grid_sample(
                source,
                coordinates.to(source.dtype),
                mode=mode,
                padding_mode='border',
                align_corners=True,
            )[0]
    for out, bound in zip(outs, bounds, strict=True):
        if bound is not None:
            out.clamp_(bound.min, bound.max)
    return outs


def _nearest_by_index(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``grid_sample(mode='nearest', padding_mode='border', align_corners=True)``.

    Computed by indexing, so an integer ``x`` (``(C, D, H, W)``) keeps its dtype
    and needs no floating copy. ``grid`` is ``(3, d, h, w)`` in grid_sample's
    component order (W, H, D). The coordinate arithmetic is grid_sample's, in
    the grid's dtype: unnormalise, clip to the volume, round half to even.
    """
    index = None
    for component, size in zip(grid.flip(0), x.shape[-3:], strict=True):
        position = component.add(1).div_(2).mul_(size - 1)
        position = position.clamp_(0, size - 1).round_().long()
        index = position if index is None else index.mul_(size).add_(position)
    flat = x.reshape(x.shape[0], -1)
    return flat[:, index.reshape(-1)].reshape(x.shape[0], *grid.shape[1:])


def _check_mode(x: torch.Tensor, mode: str | None) -> str:
    if mode is None:
        return 'bilinear' if x.is_floating_point() else 'nearest'
    if mode not in ('bilinear', 'nearest'):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', not {mode!r}")
    if mode == 'bilinear' and not x.is_floating_point():
        message = (
            f'mode="bilinear" would blend the values of a {x.dtype} label map into'
            ' other labels; use mode="nearest"'
        )
        raise ValueError(message)
    return mode


def warp(
    x: torch.Tensor,
    displacement: torch.Tensor,
    *,
    mode: str | None = None,
) -> torch.Tensor:
    """Resample ``x`` (``(C, D, H, W)``) at ``identity + displacement``.

    Args:
        x: Image to warp.
        displacement: ``(3, D, H, W)`` displacement in voxels along each axis.
        mode: ``'bilinear'`` (trilinear for volumes) or ``'nearest'``; by
            default bilinear for floating images and nearest for integer ones
            (label maps keep their dtype and value set).

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
    return sample(x, displacement_to_grid(displacement), mode=mode)


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

    To deform an image and its label map identically, draw the grid once with
    :func:`elastic_grid` and call :func:`sample` on each (``mode='nearest'``
    for labels).

    Example:
        >>> x = torch.rand(1, 8, 8, 8)
        >>> elastic_deform(x, alpha=80, sigma=10).shape
        torch.Size([1, 8, 8, 8])
    """
    grid = elastic_grid(
        x.shape[-3:],
        alpha=alpha,
        sigma=sigma,
        generator=generator,
        device=x.device,
        dtype=x.dtype,
    )
    return sample(x, grid, mode=mode)
