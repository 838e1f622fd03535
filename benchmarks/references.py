"""Plain-torch reference implementations of every RAMP operator.

Each reference computes the same math as the torchio-ramp kernel of the same
name, written the straightforward way a competent engineer would write it in
torch (no NumPy, float32, in-place where it is obvious), and independently of
``torchio_ramp``: nothing here imports the library. They are the speed bar
(each kernel within 1.5x of its reference, same run) and, because they
draw their random numbers from the generator in the same order as the kernels,
a check that the kernels compute what they claim: ``benchmarks/run.py`` reports
the largest difference between kernel and reference for the same seed.

Signature: ``reference(x, *, generator, **parameters)`` with ``x`` one image
``(C, D, H, W)`` in ``[0, 1]``; the result is a new tensor clipped to
``[0, 1]``. Random numbers are drawn on the generator's device (the CPU in the
benchmarks) and moved to ``x.device``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
TRUNCATE = 3.0


# Random numbers -------------------------------------------------------------


def _device(generator: torch.Generator | None) -> torch.device:
    return torch.device('cpu') if generator is None else generator.device


def _randn(shape, x: Tensor, generator: torch.Generator | None) -> Tensor:
    values = torch.randn(
        shape, generator=generator, dtype=x.dtype, device=_device(generator)
    )
    return values.to(x.device)


def _rand(shape, x: Tensor, generator: torch.Generator | None) -> Tensor:
    values = torch.rand(
        shape, generator=generator, dtype=x.dtype, device=_device(generator)
    )
    return values.to(x.device)


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """An integer in ``[low, high]``, both included."""
    return int(torch.randint(low, high + 1, (), generator=generator).item())


def _randperm(n: int, generator: torch.Generator | None) -> Tensor:
    return torch.randperm(n, generator=generator, device=_device(generator)).cpu()


def _random_axis(x: Tensor, generator: torch.Generator | None) -> int:
    """A spatial axis (0, 1, 2) among those longer than one voxel; -1 if none."""
    candidates = [axis for axis in range(3) if x.shape[1 + axis] > 1]
    if not candidates:
        return -1
    return candidates[_randint(0, len(candidates) - 1, generator)]


# Separable Gaussian smoothing -----------------------------------------------


def gaussian_taps(sigma: float, truncate: float = TRUNCATE) -> list[float]:
    """Normalised taps of a sampled Gaussian, radius ``int(truncate sigma + 0.5)``.

    Example:
        >>> len(gaussian_taps(1.5)), round(sum(gaussian_taps(1.5)), 6)
        (11, 1.0)
    """
    radius = int(truncate * sigma + 0.5) if sigma > 0 else 0
    if radius == 0:
        return [1.0]
    taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = sum(taps)
    return [tap / total for tap in taps]


def smooth_axis(x: Tensor, taps: Sequence[float], dim: int) -> Tensor:
    """Correlate with ``taps`` along ``dim`` (one of the last three dims).

    Pads the axis with ``F.pad(mode='replicate')`` and sums shifted slices of
    the padded tensor, one multiply-add pass per tap.
    """
    radius = (len(taps) - 1) // 2
    if radius == 0:
        return x.clone()
    dim = dim - x.ndim if dim >= 0 else dim
    if dim not in (-3, -2, -1):
        raise ValueError(f'dim must be one of the last three, not {dim}')
    pad = [0] * 6
    pad[2 * (-1 - dim)] = pad[2 * (-1 - dim) + 1] = radius
    volume = x.reshape(-1, 1, *x.shape[-3:])
    padded = F.pad(volume, pad, mode='replicate')
    padded = padded.reshape(*x.shape[:-3], *padded.shape[-3:])
    size = x.shape[dim]
    out = padded.narrow(dim, 0, size) * taps[0]
    for index in range(1, len(taps)):
        out.add_(padded.narrow(dim, index, size), alpha=taps[index])
    return out


def gaussian_smooth(
    x: Tensor,
    sigmas: Sequence[float],
    dims: Sequence[int] = (-3, -2, -1),
) -> Tensor:
    """Separable Gaussian smoothing, one sigma (voxels) per dim."""
    out = x
    for dim, sigma in zip(dims, sigmas, strict=True):
        taps = gaussian_taps(sigma)
        if len(taps) > 1:
            out = smooth_axis(out, taps, dim)
    return out if out is not x else x.clone()


# Corruption families (paper Table 2) ----------------------------------------


def gaussian_noise(x: Tensor, *, std: float, generator=None) -> Tensor:
    """``clip(x + std n)``, ``n ~ N(0, 1)`` per voxel."""
    noise = _randn(x.shape, x, generator)
    return (noise * std + x).clamp_(0, 1)


def rician_noise(x: Tensor, *, std: float, generator=None) -> Tensor:
    """``clip(sqrt((x + std n1)^2 + (std n2)^2))``."""
    real = _randn(x.shape, x, generator) * std + x
    imaginary = _randn(x.shape, x, generator) * std
    return torch.sqrt(real * real + imaginary * imaginary).clamp_(0, 1)


def speckle_noise(x: Tensor, *, std: float, generator=None) -> Tensor:
    """``clip(x (1 + std n))``."""
    noise = _randn(x.shape, x, generator)
    return ((noise * std + 1) * x).clamp_(0, 1)


def salt_pepper(x: Tensor, *, prob: float, generator=None) -> Tensor:
    """Set ``M = round(-N log(1 - prob))`` random voxels to 0 or 1 (of ``N``).

    The voxels are drawn uniformly with replacement: a voxel is hit with
    probability ``prob`` up to ``O(1 / N)``. Its value is bit 32 of SplitMix64
    (multiplicative variant) of ``index + key`` for one random key per call,
    so repeated hits of a voxel write the same value. The key is drawn before
    the voxels, so with the same generator state a higher ``prob`` keeps the
    hits of a lower one (paired severity draws).
    """
    out = x.clone()
    flat = out.view(-1)
    size = flat.numel()
    if prob >= 1:
        flat.copy_(_rand(flat.shape, x, generator) < 0.5)
        return out
    hits = round(-size * math.log1p(-prob))
    device = _device(generator)
    key = torch.randint(2**62, (1,), generator=generator, device=device)
    index = torch.randint(size, (hits,), generator=generator, device=device)
    z = (index + key) * -7046029254386353131  # 0x9E3779B97F4A7C15
    z = (z ^ ((z >> 30) & (2**34 - 1))) * -4658895280553007687
    z = (z ^ ((z >> 27) & (2**37 - 1))) * -7723592293110705685
    z = z ^ ((z >> 31) & (2**33 - 1))
    flat[index.to(x.device)] = ((z >> 32) & 1).to(x.device, x.dtype)
    return out


def blur(x: Tensor, *, sigma: float, generator=None) -> Tensor:
    """Isotropic Gaussian blur (replicate borders)."""
    return gaussian_smooth(x, [sigma] * 3).clamp_(0, 1)


def motion_blur(
    x: Tensor, *, sigma: float, axis: int | None = None, generator=None
) -> Tensor:
    """Gaussian blur along one (random) spatial axis."""
    if axis is None:
        axis = _random_axis(x, generator)
    if axis < 0:
        return x.clone()
    return smooth_axis(x, gaussian_taps(sigma), axis - 3).clamp_(0, 1)


def _upsample(field: Tensor, size: Sequence[int]) -> Tensor:
    """Trilinear, corner-aligned interpolation of ``(N, d, h, w)`` to ``size``."""
    up = F.interpolate(
        field[:, None], size=tuple(size), mode='trilinear', align_corners=True
    )
    return up[:, 0]


def bias_field(x: Tensor, *, strength: float, generator=None) -> Tensor:
    """Multiply by ``exp(b)``, ``b`` smooth from a 5^3 normal control grid.

    The grid is smoothed by a Gaussian of one control point, centred, scaled to
    a maximum absolute value of ``strength`` and upsampled trilinearly.
    """
    spatial = x.shape[1:]
    coarse = _randn([min(n, 5) for n in spatial], x, generator)
    coarse = gaussian_smooth(coarse, [1.0] * 3)
    coarse -= coarse.mean()
    peak = coarse.abs().max()
    if peak > 0:
        coarse *= strength / peak
    field = _upsample(coarse[None], spatial).exp_()
    return (x * field).clamp_(0, 1)


def ghosting(
    x: Tensor,
    *,
    intensity: float,
    num_ghosts: int | tuple[int, int] = (2, 4),
    axis: int | None = None,
    generator=None,
) -> Tensor:
    """``clip(x + intensity * sum_s roll(x, s))`` along one (random) axis."""
    if axis is None:
        axis = _random_axis(x, generator)
    if axis < 0:
        return x.clone()
    if isinstance(num_ghosts, int):
        count = num_ghosts
    else:
        count = _randint(num_ghosts[0], num_ghosts[1], generator)
    dim = axis - 3
    size = x.shape[dim]
    count = min(count, size - 1)
    shifts = (_randperm(size - 1, generator)[:count] + 1).tolist()
    out = x.clone()
    for shift in shifts:
        out.add_(torch.roll(x, shift, dims=dim), alpha=intensity)
    return out.clamp_(0, 1)


def intensity_shift(
    x: Tensor, *, shift: float, sign: int | None = None, generator=None
) -> Tensor:
    """Add ``+shift`` or ``-shift`` (a fair coin when ``sign`` is None)."""
    if sign is None:
        u = torch.rand((), generator=generator, device=_device(generator)).item()
        sign = -1 if u < 0.5 else 1
    return (x + sign * shift).clamp_(0, 1)


def contrast_reduction(x: Tensor, *, blend: float, generator=None) -> Tensor:
    """``(1 - blend) x + blend mean(x)`` per channel."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x * (1 - blend) + mean * blend).clamp_(0, 1)


def downsample(x: Tensor, *, factor: float, generator=None) -> Tensor:
    """Trilinear down- then up-sampling to the original shape."""
    spatial = x.shape[1:]
    low = [max(1, int(n / factor + 0.5)) for n in spatial]
    down = F.interpolate(x[None], size=low, mode='trilinear', align_corners=False)
    up = F.interpolate(down, size=spatial, mode='trilinear', align_corners=False)
    return up[0].clamp_(0, 1)


def stripe(
    x: Tensor,
    *,
    strength: float,
    fraction: float = 0.15,
    axis: int | None = None,
    generator=None,
) -> Tensor:
    """Random offsets in ``+-[strength / 2, strength]`` on a fraction of slices."""
    if axis is None:
        axis = max(_random_axis(x, generator), 0)
    dim = axis - 3
    size = x.shape[dim]
    count = max(1, int(fraction * size + 0.5))
    slices = _randperm(size, generator)[:count]
    magnitudes = torch.rand((count,), generator=generator, dtype=x.dtype) * 0.5 + 0.5
    signs = torch.where(torch.rand((count,), generator=generator) < 0.5, 1.0, -1.0)
    offsets = torch.zeros(size, dtype=x.dtype)
    offsets[slices] = strength * magnitudes * signs.to(x.dtype)
    shape = [1, 1, 1, 1]
    shape[dim] = size
    return (x + offsets.to(x.device).reshape(shape)).clamp_(0, 1)


def compound(x: Tensor, *, level: float, generator=None) -> Tensor:
    """Noise (std = level), blur (sigma = 5 level), bias (strength = 3 level)."""
    out = gaussian_noise(x, std=level, generator=generator)
    out = blur(out, sigma=5 * level)
    return bias_field(out, strength=3 * level, generator=generator)


# CT intensity operations (paper Table 1) ------------------------------------


def gamma(x: Tensor, *, gamma1: float, gamma2: float, generator=None) -> Tensor:
    """``(x ** gamma1) ** gamma2``, one power on ``[0, 1]``."""
    return x.pow(gamma1 * gamma2).clamp_(0, 1)


def window_level(
    x: Tensor, *, center_shift: float, width_scale: float, generator=None
) -> Tensor:
    """Window of centre ``0.5 + center_shift`` and width ``width_scale``."""
    return ((x - (0.5 + center_shift)) / width_scale + 0.5).clamp_(0, 1)


def histogram_warp(
    x: Tensor,
    *,
    coefficient_std: float = 0.2,
    degree: int = 3,
    generator=None,
) -> Tensor:
    """``sum_i a_i x^i`` with ``a = |e_1 + std n|`` normalised to sum 1."""
    coefficients = _randn((degree,), torch.empty(()), generator) * coefficient_std
    coefficients[0] += 1
    coefficients = coefficients.abs()
    total = float(coefficients.sum())
    values = (coefficients / total).tolist() if total else [1.0] + [0.0] * (degree - 1)
    out = x * values[-1]
    for value in reversed(values[:-1]):
        out.add_(value).mul_(x)
    return out.clamp_(0, 1)


def local_contrast(
    x: Tensor,
    *,
    blend: float,
    grid: tuple[int, int, int] = (4, 4, 4),
    generator=None,
) -> Tensor:
    """Blend with a min-max stretch over a ``grid`` of patches, interpolated."""
    spatial = x.shape[1:]
    cells = [min(g, n) for g, n in zip(grid, spatial, strict=True)]
    high = F.adaptive_max_pool3d(x[None], cells)
    low = -F.adaptive_max_pool3d(-x[None], cells)
    high = F.interpolate(high, size=spatial, mode='trilinear', align_corners=False)[0]
    low = F.interpolate(low, size=spatial, mode='trilinear', align_corners=False)[0]
    stretched = ((x - low) / (high - low).clamp_min(1e-6)).clamp_(0, 1)
    return (x + blend * (stretched - x)).clamp_(0, 1)


def sharpen(x: Tensor, *, sigma: float, amount: float, generator=None) -> Tensor:
    """Unsharp masking ``clip(x + amount (x - G_sigma x))``."""
    blurred = gaussian_smooth(x, [sigma] * 3)
    return (x + amount * (x - blurred)).clamp_(0, 1)


# Spatial operations ---------------------------------------------------------


def elastic_field(
    spatial: Sequence[int],
    *,
    alpha: float,
    sigma: float,
    generator=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``alpha G_sigma U(-1, 1)`` per axis (voxels), on a coarse grid.

    Noise is drawn on a grid ``max(1, int(sigma / 3))`` times coarser (plus a
    kernel radius of margin), scaled to the variance of the dense field,
    smoothed there and interpolated trilinearly (corner-aligned) to full size.
    """
    step = max(1, int(sigma / 3))
    coarse = [1 if n == 1 else math.ceil((n - 1) / step) + 1 for n in spatial]
    sigmas = [
        sigma * (m - 1) / (n - 1) if m > 1 else 0.0
        for n, m in zip(spatial, coarse, strict=True)
    ]
    margins = [int(TRUNCATE * s + 0.5) if s > 0 else 0 for s in sigmas]
    padded = [m + 2 * r for m, r in zip(coarse, margins, strict=True)]
    reference = torch.empty((), dtype=dtype)
    noise = _randn((3, *padded), reference, generator)

    def gain(s: float) -> float:
        return sum(tap * tap for tap in gaussian_taps(s))

    dense = math.prod(gain(sigma if n > 1 else 0.0) for n in spatial)
    coarse_gain = math.prod(gain(s) for s in sigmas)
    noise *= math.sqrt(dense / (3 * coarse_gain))
    smooth = gaussian_smooth(noise, sigmas)
    (r0, r1, r2), (m0, m1, m2) = margins, coarse
    interior = smooth[:, r0 : r0 + m0, r1 : r1 + m1, r2 : r2 + m2]
    return _upsample(interior, spatial).mul_(alpha)


def elastic(x: Tensor, *, alpha: float, sigma: float, generator=None) -> Tensor:
    """Warp ``x`` with :func:`elastic_field` by trilinear ``grid_sample``."""
    spatial = x.shape[1:]
    displacement = elastic_field(
        spatial, alpha=alpha, sigma=sigma, generator=generator, dtype=x.dtype
    ).to(x.device)
    axes = [torch.linspace(-1, 1, n, device=x.device, dtype=x.dtype) for n in spatial]
    identity = torch.meshgrid(*axes, indexing='ij')
    components = [
        identity[i] + displacement[i] * (2 / (n - 1) if n > 1 else 0.0)
        for i, n in enumerate(spatial)
    ]
    # grid_sample wants the last dimension as (x, y, z) = (W, H, D)
    grid = torch.stack(components[::-1], dim=-1)[None]
    warped = F.grid_sample(
        x[None], grid, mode='bilinear', padding_mode='border', align_corners=True
    )
    return warped[0].clamp_(0, 1)


def flip(x: Tensor, *, axes: Sequence[int] = (0,), generator=None) -> Tensor:
    """Reverse the given spatial axes."""
    return torch.flip(x, dims=[axis - 3 for axis in axes])


REFERENCES: dict[str, Callable[..., Tensor]] = {
    'gaussian_noise': gaussian_noise,
    'blur': blur,
    'rician_noise': rician_noise,
    'motion_blur': motion_blur,
    'salt_pepper': salt_pepper,
    'speckle_noise': speckle_noise,
    'bias_field': bias_field,
    'ghosting': ghosting,
    'intensity_shift': intensity_shift,
    'contrast_reduction': contrast_reduction,
    'downsample': downsample,
    'stripe': stripe,
    'compound': compound,
    'gamma': gamma,
    'window_level': window_level,
    'histogram_warp': histogram_warp,
    'local_contrast': local_contrast,
    'sharpen': sharpen,
    'elastic': elastic,
    'flip': flip,
}
"""Operator name -> plain-torch reference."""
