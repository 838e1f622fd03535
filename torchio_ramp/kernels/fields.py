"""Smooth random fields, generated on a coarse grid and upsampled.

A Gaussian-smoothed white-noise field has almost no energy above the spatial
frequency ``1 / sigma``, so it can be drawn on a grid ``step`` times coarser,
smoothed there with ``sigma / step`` and interpolated linearly back to full
resolution at a fraction of the cost of smoothing a full-resolution field. The
coarse noise is rescaled so that the field has the variance of the dense one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import batched
from .base import randn
from .filters import TRUNCATE
from .filters import gaussian_filter
from .filters import gaussian_matrix
from .filters import gaussian_weights
from .resample import along_axes
from .resample import interpolation_matrix
from .resample import resize_linear

BIAS_CONTROL_POINTS = 5
"""Control points per axis of the bias field's coarse grid."""

BIAS_SMOOTHING = 1.0
"""Gaussian sigma of the bias field on its coarse grid, in control points."""


def upsample_linear(field: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Interpolate the last three dims of ``field`` to ``size`` (corner-aligned).

    Corner alignment maps the first and last coarse samples onto the first and
    last voxels, so the extremes of the coarse field are preserved exactly.
    """
    return resize_linear(field, size, align_corners=True)


def bias_field_map(
    shape: Sequence[int],
    *,
    strength: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = 'cpu',
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Multiplicative bias field ``exp(strength * b)`` of spatial ``shape``.

    ``b`` is standard normal noise on a ``5 x 5 x 5`` control grid (fewer points
    on shorter axes), smoothed with a Gaussian of one control point, normalised
    to zero mean and maximum absolute value 1 on the grid, and upsampled
    trilinearly. Hence ``exp(-strength) <= field <= exp(strength)``.

    Example:
        >>> field = bias_field_map((16, 16, 8), strength=0.5)
        >>> bool(field.min() >= 0.6065) and bool(field.max() <= 1.6488)
        True
    """
    exponent = _bias_log2(shape, strength, generator, device, dtype)
    return upsample_linear(exponent, shape).exp2_()


def _bias_log2(
    shape: Sequence[int],
    strength: float,
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``strength * b / ln 2`` on the coarse control grid: the field in base 2.

    The field is ``exp(strength * b) = 2 ** (strength * b / ln 2)``: callers
    exponentiate with ``exp2``, 4x faster than ``exp`` on the CPU (the
    interpolation in between is linear, so the scale applies on the coarse
    grid). See :func:`bias_field_map`.
    """
    coarse_shape = [min(n, BIAS_CONTROL_POINTS) for n in shape]
    reference = torch.empty((), device=device, dtype=dtype)
    coarse = randn(reference, generator, shape=coarse_shape)
    coarse = gaussian_filter(coarse, BIAS_SMOOTHING)
    coarse -= coarse.mean()
    peak = coarse.abs().max()
    if peak > 0:
        coarse *= strength / peak
    return coarse.mul_(1 / math.log(2))


@batched
def bias_field(
    x: torch.Tensor,
    *,
    strength: float,
    generator: torch.Generator | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multiply ``x`` by a smooth random field ``exp(strength * b)``.

    All channels share the field (it is a property of the scanner, not of the
    channel). See :func:`bias_field_map`.

    Example:
        >>> x = torch.full((1, 8, 8, 8), 0.5)
        >>> y = bias_field(x, strength=0.3, generator=torch.Generator().manual_seed(1))
        >>> bool(y.min() >= 0.5 * 0.7408) and bool(y.max() <= 0.5 * 1.3499)
        True
    """
    target = torch.empty_like(x) if out is None else out
    return _multiply_by_bias(x, strength, generator, out=target)


BIAS_SLAB_VALUES = 2**18
"""Voxels per slab of the upsampled bias field (1 MiB of float32)."""


def _multiply_by_bias(
    x: torch.Tensor,
    strength: float,
    generator: torch.Generator | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x`` times a :func:`bias_field_map`, clipped, into ``out`` (default: x).

    The field is upsampled and multiplied one slab at a time, so it never
    occupies a whole volume; the values equal ``x * bias_field_map(...)``.
    """
    out = x if out is None else out
    spatial = x.shape[-3:]
    coarse = _bias_log2(spatial, strength, generator, x.device, x.dtype)
    options = {'align_corners': True, 'device': x.device, 'dtype': x.dtype}
    along_d, along_h, along_w = (
        interpolation_matrix(m, n, **options)
        for m, n in zip(coarse.shape, spatial, strict=True)
    )
    rows = max(1, BIAS_SLAB_VALUES // (spatial[1] * spatial[2]))
    for start in range(0, spatial[0], rows):
        stop = min(start + rows, spatial[0])
        field = along_axes(coarse, (along_d[start:stop], along_h, along_w)).exp2_()
        rows_of = (..., slice(start, stop), slice(None), slice(None))
        torch.mul(x[rows_of], field, out=out[rows_of]).clamp_(0, 1)
    return out


MAX_NOISE_VALUES = 2**28
"""Most random numbers a smooth field may draw (1 GiB of float32); a larger
need means a sigma far beyond the image size."""


def coarse_step(sigma: float) -> int:
    """Grid step (voxels) at which a field smoothed by ``sigma`` is generated.

    A third of a standard deviation: linear interpolation between coarse samples
    then loses about 2% of the dense field's standard deviation (half a sigma
    loses about 10%).
    """
    return max(1, int(sigma / 3))


def coarse_noise_field(
    shape: Sequence[int],
    *,
    sigma: float,
    channels: int = 1,
    generator: torch.Generator | None = None,
    device: torch.device | str = 'cpu',
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The coarse samples of :func:`smooth_noise_field`, before upsampling.

    ``upsample_linear(coarse_noise_field(shape, ...), shape)`` is the field.
    Linear operations (scaling, adding a ramp) are cheaper here than at full
    resolution and commute with the upsampling.

    Example:
        >>> coarse_noise_field((64, 64, 1), sigma=9.0).shape
        torch.Size([1, 22, 22, 1])
    """
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f'sigma must be a finite non-negative number, not {sigma!r}')
    step = coarse_step(sigma)
    coarse_shape = [1 if n == 1 else math.ceil((n - 1) / step) + 1 for n in shape]
    # Corner-aligned upsampling spaces coarse samples (n - 1) / (m - 1) <= step
    # voxels apart; smooth each axis with sigma expressed in that spacing.
    spacings = [
        (n - 1) / (m - 1) if m > 1 else 1.0
        for n, m in zip(shape, coarse_shape, strict=True)
    ]
    coarse_sigmas = [
        sigma / s if n > 1 else 0.0 for n, s in zip(shape, spacings, strict=True)
    ]
    dense_sigmas = [sigma if n > 1 else 0.0 for n in shape]
    # Noise is drawn a kernel radius beyond every edge and smoothed with 'valid'
    # filtering, so the field is stationary: no boundary effects.
    # Refuse before building anything: a sigma far beyond the image gives
    # kernels and noise buffers of astronomical size.
    padded = [
        m + 2 * int(TRUNCATE * s + 0.5)
        for m, s in zip(coarse_shape, coarse_sigmas, strict=True)
    ]
    values = channels * math.prod(padded)
    if values > MAX_NOISE_VALUES:
        message = (
            f'sigma={sigma:g} voxels is too large for a field of shape'
            f' {tuple(shape)}: it needs {values:.3g} random numbers (at most'
            f' {MAX_NOISE_VALUES:.3g}); use a sigma of the order of the image size'
            ' or less'
        )
        raise ValueError(message)
    options = {'device': device, 'dtype': dtype}
    smoothing = [
        gaussian_matrix(m, s, **options)
        for m, s in zip(coarse_shape, coarse_sigmas, strict=True)
    ]
    padded_shape = [matrix.shape[1] for matrix in smoothing]
    reference = torch.empty((), **options)
    noise = randn(reference, generator, shape=(channels, *padded_shape))
    # U(-1, 1) has variance 1/3 and smoothing scales the variance by the sum of
    # the squared taps on each axis: give the coarse field the dense variance.
    dense_gain = math.prod(_squared_tap_sum(s) for s in dense_sigmas)
    coarse_gain = math.prod(_squared_tap_sum(s) for s in coarse_sigmas)
    noise *= math.sqrt(dense_gain / (3 * coarse_gain))
    return along_axes(noise, smoothing)


def smooth_noise_field(
    shape: Sequence[int],
    *,
    sigma: float,
    channels: int = 1,
    generator: torch.Generator | None = None,
    device: torch.device | str = 'cpu',
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform ``U(-1, 1)`` white noise smoothed by a Gaussian of ``sigma`` voxels.

    Statistically equivalent to ``scipy.ndimage.gaussian_filter`` of a dense
    ``U(-1, 1)`` field away from its borders (same marginal variance, same
    correlation length), but generated on a grid :func:`coarse_step` times
    coarser and upsampled linearly. The field is stationary: unlike a filter
    with boundary padding, its variance does not change near the edges.
    Returns ``(channels, *shape)``.

    Example:
        >>> field = smooth_noise_field((64, 64, 64), sigma=8.0)
        >>> field.shape
        torch.Size([1, 64, 64, 64])
    """
    coarse = coarse_noise_field(
        shape,
        sigma=sigma,
        channels=channels,
        generator=generator,
        device=device,
        dtype=dtype,
    )
    return upsample_linear(coarse, shape)


def _squared_tap_sum(sigma: float) -> float:
    return sum(w * w for w in gaussian_weights(sigma, TRUNCATE))
