"""Kernels against independent references: SciPy, NumPy re-implementations and
closed forms.

Every reference here is written from the paper (Tables 1-2) or from the
documented semantics of the operation, not from the kernel's code: SciPy's
``ndimage`` filters for the Gaussian smoothing, a NumPy linear interpolation with
half-voxel centres for the resolution degradation and the local contrast, NumPy
formulas for the intensity remappings, ``map_coordinates`` for the warp.
Kernels run in float64 where the comparison is exact up to rounding.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from tests.test_kernels_contract import one_thread  # noqa: F401
from torchio_ramp import kernels
from torchio_ramp.kernels.filters import TRUNCATE
from torchio_ramp.kernels.filters import filter1d
from torchio_ramp.kernels.filters import gaussian_filter
from torchio_ramp.kernels.filters import gaussian_weights
from torchio_ramp.kernels.intensity import polynomial_warp
from torchio_ramp.kernels.intensity import warp_coefficients

ATOL64 = 1e-12
"""Tolerance of float64 comparisons (rounding of a few dozen operations)."""

ATOL32 = 2e-6
"""Tolerance of float32 kernels against float64 references (values in [0, 1])."""


def image(shape=(1, 12, 10, 8), seed=0, dtype=torch.float64) -> torch.Tensor:
    """A random image in [0, 1] with some exact 0 and 1 voxels."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator, dtype=dtype)
    flat = x.view(-1)
    flat[:: max(1, flat.numel() // 7)] = 0.0
    flat[3 :: max(1, flat.numel() // 5)] = 1.0
    return x


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def scipy_blur(x: torch.Tensor, sigmas) -> np.ndarray:
    """SciPy Gaussian filter over the spatial axes of a (C, D, H, W) tensor."""
    return ndi.gaussian_filter(
        x.numpy(), (0, *sigmas), mode='nearest', truncate=TRUNCATE
    )


# Separable Gaussian filtering ----------------------------------------------------


@pytest.mark.parametrize('sigma', [0.3, 0.5, 1.0, 1.7, 2.5, 6.0])
@pytest.mark.parametrize('shape', [(2, 9, 16, 5), (1, 1, 12, 3), (1, 2, 1, 1)])
def test_gaussian_filter_matches_scipy(sigma, shape):
    # shapes include axes of length 1 and 2 and radii >= the axis length
    x = image(shape)
    expected = scipy_blur(x, (sigma, sigma, sigma))
    np.testing.assert_allclose(gaussian_filter(x, sigma).numpy(), expected, atol=1e-12)


def test_gaussian_filter_per_dim_sigmas_match_scipy():
    x = image((1, 10, 11, 12))
    sigmas = (0.0, 1.3, 4.5)
    got = gaussian_filter(x, sigmas)
    np.testing.assert_allclose(got.numpy(), scipy_blur(x, sigmas), atol=ATOL64)


def test_gaussian_filter_sigma_zero_is_a_copy():
    x = image()
    y = gaussian_filter(x, 0.0)
    assert torch.equal(y, x)
    assert y.data_ptr() != x.data_ptr()


def test_gaussian_filter_rejects_wrong_number_of_sigmas():
    with pytest.raises(ValueError, match='2 sigmas for 3 dims'):
        gaussian_filter(image(), (1.0, 2.0))


@pytest.mark.parametrize('sigma', [0.2, 0.5, 1.0, 2.5, 7.3])
def test_gaussian_weights_match_scipy_impulse_response(sigma):
    radius = int(TRUNCATE * sigma + 0.5)
    delta = np.zeros(4 * radius + 3)
    delta[2 * radius + 1] = 1.0
    response = ndi.gaussian_filter1d(delta, sigma, mode='constant', truncate=TRUNCATE)
    expected = response[radius + 1 : 3 * radius + 2]
    weights = gaussian_weights(sigma)
    assert len(weights) == 2 * radius + 1
    np.testing.assert_allclose(weights, expected, atol=1e-15)
    assert math.isclose(sum(weights), 1.0, abs_tol=1e-15)


@pytest.mark.parametrize('sigma', [0.0, -1.0, 0.1])
def test_gaussian_weights_degenerate_sigma_is_identity(sigma):
    # sigma <= 0 and radius int(3 * 0.1 + 0.5) = 0 both give the identity tap
    assert gaussian_weights(sigma) == [1.0]


@pytest.mark.parametrize('size', [1, 2, 3, 5, 11])
@pytest.mark.parametrize('radius', [0, 1, 2, 4, 12])
def test_filter1d_matches_scipy_correlate1d(size, radius):
    # radius >= size: every tap beyond the edge replicates the edge voxel
    generator = np.random.default_rng(size * 100 + radius)
    half = generator.random(radius + 1)
    weights = np.concatenate([half[:0:-1], half])  # symmetric, odd length
    x = torch.from_numpy(generator.random((3, size, 4)))
    got = filter1d(x, weights.tolist(), dim=1)
    expected = ndi.correlate1d(x.numpy(), weights, axis=1, mode='nearest')
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)
    assert got.data_ptr() != x.data_ptr()


# Isotropic, motion and unsharp-mask blurs ---------------------------------------


@pytest.mark.parametrize('sigma', [0.0, 0.5, 2.5, 5.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = image((2, 12, 10, 8))
    got = kernels.gaussian_blur(x, sigma=sigma)
    expected = np.clip(scipy_blur(x, (sigma, sigma, sigma)), 0, 1)
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)


def test_gaussian_blur_float32_matches_scipy():
    x = image((1, 16, 16, 16), dtype=torch.float32)
    got = kernels.gaussian_blur(x, sigma=1.5)
    expected = scipy_blur(x.double(), (1.5, 1.5, 1.5))
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL32)


def motion_references(x: torch.Tensor, sigma: float) -> list[np.ndarray]:
    """SciPy 1-D Gaussian smoothing along each spatial axis of (C, D, H, W)."""
    return [
        ndi.gaussian_filter1d(
            x.numpy(), sigma, axis=1 + axis, mode='nearest', truncate=TRUNCATE
        )
        for axis in range(3)
    ]


@pytest.mark.parametrize('axis', [0, 1, 2])
@pytest.mark.parametrize('sigma', [0.5, 3.0, 6.125])
def test_motion_blur_with_axis_matches_gaussian_filter1d(axis, sigma):
    x = image((2, 12, 10, 8))
    got = kernels.motion_blur(x, sigma=sigma, axis=axis)
    expected = motion_references(x, sigma)[axis]
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)


@pytest.mark.parametrize('shape', [(1, 12, 10, 8), (1, 1, 12, 10), (2, 9, 1, 1)])
def test_motion_blur_smooths_exactly_one_random_axis(shape):
    x = image(shape)
    long_axes = {axis for axis in range(3) if shape[1 + axis] > 1}
    chosen = set()
    for seed in range(24):
        got = kernels.motion_blur(x, sigma=2.0, generator=seeded(seed)).numpy()
        matches = [
            axis
            for axis, expected in enumerate(motion_references(x, 2.0))
            if axis in long_axes and np.allclose(got, expected, atol=ATOL64)
        ]
        assert len(matches) == 1, f'seed {seed}: smoothed axes {matches}'
        assert not np.allclose(got, x.numpy(), atol=1e-6)
        chosen.add(matches[0])
    # 24 draws from k axes miss one with probability < k (1 - 1/k)^24 < 1e-4
    assert chosen == long_axes


def test_motion_blur_of_a_single_voxel_image_is_identity():
    x = image((2, 1, 1, 1))
    assert torch.equal(kernels.motion_blur(x, sigma=3.0, generator=seeded(0)), x)


@pytest.mark.parametrize(('sigma', 'amount'), [(0.5, 0.2), (2.5, 1.5), (1.0, 3.0)])
def test_sharpen_is_scipy_unsharp_mask(sigma, amount):
    x = image((2, 12, 10, 8))
    blurred = scipy_blur(x, (sigma, sigma, sigma))
    expected = np.clip(x.numpy() + amount * (x.numpy() - blurred), 0, 1)
    got = kernels.sharpen(x, sigma=sigma, amount=amount)
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)


# Resolution degradation -----------------------------------------------------------


def resample_axis(a: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear resampling of ``a`` along ``axis`` to ``size`` samples.

    Samples are voxel centres covering the same extent (``align_corners=False``):
    output voxel ``i`` reads input coordinate ``(i + 0.5) n / size - 0.5``,
    clamped to ``[0, n - 1]`` (edge voxels are replicated).
    """
    n = a.shape[axis]
    source = (np.arange(size) + 0.5) * n / size - 0.5
    source = np.clip(source, 0, n - 1)
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, n - 1)
    weight = source - lower
    shape = [1] * a.ndim
    shape[axis] = size
    weight = weight.reshape(shape)
    return np.take(a, lower, axis) * (1 - weight) + np.take(a, upper, axis) * weight


def reference_downsample(x: np.ndarray, factor: float) -> np.ndarray:
    """Down to ``round(n / factor)`` voxels per axis (at least 1) and back up."""
    spatial = x.shape[-3:]
    low = [max(1, math.floor(n / factor + 0.5)) for n in spatial]
    out = x
    for axis, size in enumerate(low):
        out = resample_axis(out, x.ndim - 3 + axis, size)
    for axis, size in enumerate(spatial):
        out = resample_axis(out, x.ndim - 3 + axis, size)
    return out


@pytest.mark.parametrize('factor', [1.125, 1.5, 2.0, 2.25, 3.0, 4.875])
@pytest.mark.parametrize(
    'shape', [(1, 16, 16, 16), (2, 13, 7, 5), (1, 1, 2, 17), (1, 2, 1, 3)]
)
def test_downsample_matches_numpy_linear_resampling(factor, shape):
    x = image(shape)
    got = kernels.downsample(x, factor=factor)
    assert got.shape == x.shape
    expected = np.clip(reference_downsample(x.numpy(), factor), 0, 1)
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)


@pytest.mark.parametrize('sigma', [0.5, 1.5, (0.7, 1.2, 2.0)])
def test_gaussian_filter_overwriting_its_input_matches_scipy(sigma):
    from scipy.ndimage import gaussian_filter as scipy_filter

    from torchio_ramp.kernels.filters import TRUNCATE
    from torchio_ramp.kernels.filters import gaussian_filter

    x = image((1, 9, 7, 12))
    sigmas = (0, *sigma) if isinstance(sigma, tuple) else (0, sigma, sigma, sigma)
    expected = scipy_filter(x.numpy(), sigmas, mode='nearest', truncate=TRUNCATE)
    got = gaussian_filter(x.clone(), sigma, overwrite_input=True)
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)


def test_filter1d_refuses_weights_that_are_not_symmetric_and_odd():
    from torchio_ramp.kernels.filters import filter1d

    x = torch.rand(8)
    for weights in ([0.5, 0.5], [0.2, 0.5, 0.3]):
        with pytest.raises(ValueError, match='symmetric and of odd length'):
            filter1d(x, weights, dim=0)


def test_filtering_works_under_autograd_after_inference_mode():
    # edge weights cached inside inference_mode must not poison later graphs
    from torchio_ramp.kernels.filters import filter1d
    from torchio_ramp.kernels.filters import gaussian_weights

    weights = gaussian_weights(1.3)
    with torch.inference_mode():
        filter1d(torch.rand(5, 6), weights, 0)
    x = torch.rand(5, 6, requires_grad=True)
    filter1d(x, weights, 0).sum().backward()
    # every output sums its column's taps to 1: d(sum)/dx sums to the volume
    assert abs(float(x.grad.sum()) - x.numel()) < 1e-4


@pytest.mark.parametrize(
    ('shape', 'size'),
    [
        ((1, 64, 64, 64), (128, 128, 128)),
        ((2, 5, 6, 7), (9, 12, 14)),
        ((1, 1, 3, 3), (1, 8, 8)),
        ((1, 9, 1, 4), (17, 1, 9)),
        ((3, 7, 8, 9), (7, 8, 9)),
    ],
)
def test_upsample_trilinear_is_torch_trilinear(shape, size):
    from torchio_ramp.kernels.resolution import upsample_trilinear

    x = image(shape, dtype=torch.float32)
    got = upsample_trilinear(x, size)
    expected = F.interpolate(x[None], size=size, mode='trilinear')[0]
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_downsample_factor_one_is_identity():
    x = image(dtype=torch.float32)
    assert torch.equal(kernels.downsample(x, factor=1.0), x)


def test_downsample_loses_high_frequencies():
    # a voxel-wise checkerboard along W averages out to its mean at factor 2
    x = torch.zeros(1, 4, 4, 16, dtype=torch.float64)
    x[..., ::2] = 1.0
    y = kernels.downsample(x, factor=2.0)
    np.testing.assert_allclose(y.numpy(), 0.5, atol=ATOL64)


# CT intensity operations (Table 1) and global corruptions ------------------------


@pytest.mark.parametrize(('gamma1', 'gamma2'), [(0.6, 0.7), (1.6, 1.3), (0.6, 1.3)])
def test_gamma_is_two_sequential_powers(gamma1, gamma2):
    x = image()
    expected = (x.numpy() ** gamma1) ** gamma2
    got = kernels.gamma(x, gamma1=gamma1, gamma2=gamma2)
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)


@pytest.mark.parametrize(
    ('center_shift', 'width_scale'), [(-0.15, 0.7), (0.15, 1.3), (0.0, 1.0)]
)
def test_window_level_formula(center_shift, width_scale):
    x = image()
    center = 0.5 + center_shift
    expected = np.clip((x.numpy() - center) / width_scale + 0.5, 0, 1)
    got = kernels.window_level(x, center_shift=center_shift, width_scale=width_scale)
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)


@pytest.mark.parametrize('blend', [0.0, 0.1, 0.6, 1.0])
def test_contrast_reduction_keeps_mean_and_scales_deviations(blend):
    # values in [0.3, 0.7] never clip; channels have different means
    x = 0.3 + 0.4 * image((3, 8, 9, 10))
    x[1] = 0.3 + 0.2 * x[1]
    y = kernels.contrast_reduction(x, blend=blend)
    mean_x = x.mean(dim=(1, 2, 3), keepdim=True)
    mean_y = y.mean(dim=(1, 2, 3), keepdim=True)
    np.testing.assert_allclose(mean_y.numpy(), mean_x.numpy(), atol=ATOL64)
    np.testing.assert_allclose(
        (y - mean_y).numpy(), (1 - blend) * (x - mean_x).numpy(), atol=ATOL64
    )


@pytest.mark.parametrize('sign', [-1, 1])
def test_intensity_shift_with_sign(sign):
    x = image()
    got = kernels.intensity_shift(x, shift=0.3, sign=sign)
    np.testing.assert_allclose(
        got.numpy(), np.clip(x.numpy() + sign * 0.3, 0, 1), atol=ATOL64
    )


def test_intensity_shift_rejects_bad_sign():
    with pytest.raises(ValueError, match='sign must be -1 or 1, not 0'):
        kernels.intensity_shift(image(), shift=0.1, sign=0)


def test_sharpen_and_gamma_parameters_zero_are_identity():
    x = image()
    assert torch.equal(kernels.sharpen(x, sigma=0.0, amount=0.0), x)
    assert torch.equal(kernels.sharpen(x, sigma=2.0, amount=0.0), x)
    np.testing.assert_allclose(
        kernels.gamma(x, gamma1=1.0, gamma2=1.0).numpy(), x.numpy(), atol=0
    )


# Histogram polynomial warp --------------------------------------------------------


@pytest.mark.parametrize('degree', [1, 2, 3, 5, 8])
@pytest.mark.parametrize('coefficient_std', [0.2, 1.0, 3.0])
def test_warp_coefficients_positive_normalised(degree, coefficient_std):
    for seed in range(50):
        coefficients = warp_coefficients(degree, coefficient_std, seeded(seed))
        assert len(coefficients) == degree
        assert all(c > 0 for c in coefficients), coefficients
        assert math.isclose(sum(coefficients), 1.0, abs_tol=1e-6)


def test_warp_coefficients_without_noise_give_identity():
    assert warp_coefficients(3, 0.0, seeded(0)) == [1.0, 0.0, 0.0]


@pytest.mark.parametrize('degree', [1, 2, 3, 5])
@pytest.mark.parametrize('coefficient_std', [0.2, 1.0])
def test_histogram_warp_is_monotonic_and_fixes_0_and_1(degree, coefficient_std):
    x = torch.linspace(0, 1, 1001).reshape(1, 1, 1, -1)
    for seed in range(40):
        y = kernels.histogram_warp(
            x, degree=degree, coefficient_std=coefficient_std, generator=seeded(seed)
        )
        assert (y.diff() >= 0).all()
        assert float(y[..., 0]) == 0.0
        # f(1) = sum of coefficients = 1 up to float32 rounding (one ulp)
        assert abs(float(y[..., -1]) - 1.0) <= 1e-6


def test_histogram_warp_is_the_polynomial_of_its_coefficients():
    x = image()
    coefficients = warp_coefficients(3, 0.2, seeded(7))
    got = kernels.histogram_warp(x, degree=3, coefficient_std=0.2, generator=seeded(7))
    powers = np.stack([x.numpy() ** (i + 1) for i in range(3)])
    expected = np.tensordot(np.array(coefficients), powers, axes=1)
    np.testing.assert_allclose(got.numpy(), expected, atol=ATOL64)
    np.testing.assert_allclose(
        polynomial_warp(x, coefficients).numpy(), expected, atol=ATOL64
    )


# Adaptive local contrast ----------------------------------------------------------


def adaptive_extremes(a: np.ndarray, cells) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each adaptive-pooling cell of a (C, D, H, W) array.

    Cell ``i`` of ``c`` along an axis of ``n`` voxels spans
    ``floor(i n / c) .. ceil((i + 1) n / c)`` (adaptive pooling).
    """
    spans = [
        [(i * n // c, -(-(i + 1) * n // c)) for i in range(c)]
        for n, c in zip(a.shape[1:], cells, strict=True)
    ]
    low = np.empty((a.shape[0], *cells))
    high = np.empty_like(low)
    for i, (d0, d1) in enumerate(spans[0]):
        for j, (h0, h1) in enumerate(spans[1]):
            for k, (w0, w1) in enumerate(spans[2]):
                block = a[:, d0:d1, h0:h1, w0:w1]
                low[:, i, j, k] = block.min(axis=(1, 2, 3))
                high[:, i, j, k] = block.max(axis=(1, 2, 3))
    return low, high


def reference_local_contrast(x: np.ndarray, blend: float, grid) -> np.ndarray:
    """Patch min/max, interpolated between patch centres, stretch, blend."""
    cells = [min(g, n) for g, n in zip(grid, x.shape[1:], strict=True)]
    low, high = adaptive_extremes(x, cells)
    for axis, n in enumerate(x.shape[1:]):
        low = resample_axis(low, 1 + axis, n)
        high = resample_axis(high, 1 + axis, n)
    stretched = np.clip((x - low) / np.maximum(high - low, 1e-6), 0, 1)
    return np.clip((1 - blend) * x + blend * stretched, 0, 1)


@pytest.mark.parametrize('blend', [0.1, 0.35, 1.0])
@pytest.mark.parametrize(
    ('shape', 'grid'),
    [
        ((1, 16, 16, 16), (4, 4, 4)),
        ((2, 13, 9, 6), (4, 4, 4)),
        ((1, 1, 10, 7), (2, 3, 4)),
    ],
)
def test_local_contrast_matches_numpy_reference(blend, shape, grid):
    x = image(shape)
    got = kernels.local_contrast(x, blend=blend, grid=grid)
    expected = reference_local_contrast(x.numpy(), blend, grid)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)


def local_std(x: torch.Tensor, cells: int = 4) -> float:
    """Mean over the cells of a regular grid of each cell's standard deviation."""
    c, d, h, w = x.shape
    blocks = x.reshape(c, cells, d // cells, cells, h // cells, cells, w // cells)
    return float(blocks.std(dim=(2, 4, 6)).mean())


def test_local_contrast_blend_zero_is_identity_and_contrast_grows_with_blend():
    # a low-contrast image: smooth structure in [0.4, 0.6]
    x = 0.4 + 0.2 * kernels.gaussian_blur(image((1, 16, 16, 16)), sigma=1.0)
    assert torch.equal(kernels.local_contrast(x, blend=0.0), x)
    stds = [
        local_std(kernels.local_contrast(x, blend=blend))
        for blend in (0.0, 0.1, 0.2, 0.35, 0.7, 1.0)
    ]
    assert all(a < b for a, b in itertools.pairwise(stds)), stds
    assert stds[-1] > 2 * stds[0]


# Compound corruption --------------------------------------------------------------


@pytest.mark.parametrize('level', [0.03, 0.15, 0.25])
def test_compound_is_noise_then_blur_then_bias(level):
    x = image((2, 12, 10, 8), dtype=torch.float32)
    got = kernels.compound(x, level=level, generator=seeded(3))
    generator = seeded(3)
    expected = kernels.gaussian_noise(x, std=level, generator=generator)
    expected = kernels.gaussian_blur(expected, sigma=5 * level)
    expected = kernels.bias_field(expected, strength=3 * level, generator=generator)
    assert torch.equal(got, expected)


def test_compound_level_zero_is_identity():
    x = image(dtype=torch.float32)
    assert torch.equal(kernels.compound(x, level=0.0, generator=seeded(0)), x)


# Ghosting ---------------------------------------------------------------------------


def impulse(shape=(1, 16, 16, 16), at=(3, 5, 7)) -> torch.Tensor:
    x = torch.zeros(shape, dtype=torch.float64)
    x[(slice(None), *at)] = 1.0
    return x


@pytest.mark.parametrize('axis', [0, 1, 2])
@pytest.mark.parametrize('shifts', [[2, 5], [1], [15, 3, 8], [-2, 17, 0]])
def test_add_ghosts_places_circular_copies_at_the_shifts(axis, shifts):
    at = (3, 5, 7)
    x = impulse(at=at)
    got = kernels.add_ghosts(x, intensity=0.25, axis=axis, shifts=shifts)
    expected = x.clone()
    for shift in shifts:
        expected += 0.25 * torch.roll(x, shift, dims=1 + axis)
    np.testing.assert_allclose(got.numpy(), np.clip(expected.numpy(), 0, 1), atol=0)


def test_add_ghosts_equals_sum_of_rolls_on_an_image():
    x = image((2, 9, 8, 7))
    got = kernels.add_ghosts(x, intensity=0.3, axis=1, shifts=[1, 4, 6])
    expected = x + 0.3 * sum(torch.roll(x, s, dims=2) for s in (1, 4, 6))
    np.testing.assert_allclose(got.numpy(), expected.clamp(0, 1).numpy(), atol=ATOL64)


def ghost_copies(y: torch.Tensor, at) -> tuple[int, list[int]]:
    """Axis and signed circular shifts of the ghost copies of an impulse at ``at``."""
    positions = [tuple(p) for p in torch.nonzero(y[0]).tolist() if tuple(p) != at]
    axes = {a for p in positions for a in range(3) if p[a] != at[a]}
    assert len(axes) == 1, f'copies off a single axis: {positions}'
    axis = axes.pop()
    size = y.shape[1 + axis]
    return axis, sorted((p[axis] - at[axis]) % size for p in positions)


@pytest.mark.parametrize('num_ghosts', [(2, 4), (1, 1), 3])
def test_ghosting_copies_at_distinct_shifts_along_one_axis(num_ghosts):
    at = (3, 5, 7)
    x = impulse(at=at)
    low, high = (num_ghosts, num_ghosts) if isinstance(num_ghosts, int) else num_ghosts
    axes, counts = set(), set()
    for seed in range(40):
        y = kernels.ghosting(
            x, intensity=0.25, num_ghosts=num_ghosts, generator=seeded(seed)
        )
        assert float(y[(0, *at)]) == 1.0
        axis, shifts = ghost_copies(y, at)
        assert low <= len(shifts) <= high
        assert len(set(shifts)) == len(shifts)
        assert all(1 <= s <= 15 for s in shifts)
        copies = y[0][y[0] > 0]
        assert sorted(copies.tolist()) == [0.25] * len(shifts) + [1.0]
        axes.add(axis)
        counts.add(len(shifts))
    assert axes == {0, 1, 2}
    assert counts == set(range(low, high + 1))


def test_ghosting_on_a_short_axis_fits_at_most_size_minus_one_copies():
    x = impulse((1, 3, 8, 8), at=(0, 2, 2))
    for seed in range(10):
        y = kernels.ghosting(x, intensity=0.25, axis=0, generator=seeded(seed))
        _, shifts = ghost_copies(y, (0, 2, 2))
        assert shifts == [1, 2]


def test_ghosting_skips_single_voxel_axes():
    x = impulse((1, 1, 1, 9), at=(0, 0, 4))
    for seed in range(10):
        y = kernels.ghosting(x, intensity=0.25, generator=seeded(seed))
        axis, _ = ghost_copies(y, (0, 0, 4))
        assert axis == 2


# Stripes ----------------------------------------------------------------------------


def stripe_count(size: int, fraction: float = 0.15) -> int:
    """round(fraction * size), halves rounded up, at least one slice."""
    return max(1, math.floor(fraction * size + 0.5))


@pytest.mark.parametrize('axis', [0, 1, 2])
@pytest.mark.parametrize('strength', [0.1, 0.3, 0.5])
def test_stripes_offset_exactly_round_fraction_slices(axis, strength):
    shape = (2, 30, 20, 3)  # 0.15 n = 4.5, 3, 0.45: 5, 3 and 1 slices
    x = torch.full(shape, 0.5, dtype=torch.float64)
    expected_count = stripe_count(shape[1 + axis])
    signs = set()
    for seed in range(20):
        y = kernels.stripes(x, strength=strength, axis=axis, generator=seeded(seed))
        offsets = (y - x).movedim(1 + axis, 0).reshape(shape[1 + axis], -1)
        constant = (offsets == offsets[:, :1]).all(dim=1)
        assert constant.all(), 'offsets vary within a slice'
        per_slice = offsets[:, 0]
        striped = per_slice != 0
        assert int(striped.sum()) == expected_count
        magnitudes = per_slice[striped].abs()
        assert (magnitudes >= strength / 2 - 1e-7).all()
        assert (magnitudes <= strength + 1e-7).all()
        signs.update(torch.sign(per_slice[striped]).tolist())
    assert signs == {-1.0, 1.0}


def test_stripes_choose_one_random_axis():
    shape = (1, 20, 14, 9)
    x = torch.full(shape, 0.5, dtype=torch.float64)
    axes = set()
    for seed in range(30):
        y = kernels.stripes(x, strength=0.4, generator=seeded(seed))
        varying = [
            axis
            for axis in range(3)
            if not (y == y.narrow(1 + axis, 0, 1).expand_as(y)).all()
        ]
        assert len(varying) == 1, varying
        axis = varying[0]
        count = int(((y != x).movedim(1 + axis, 0).flatten(1).any(1)).sum())
        assert count == stripe_count(shape[1 + axis])
        axes.add(axis)
    assert axes == {0, 1, 2}


def test_stripes_fraction_option():
    x = torch.full((1, 40, 4, 4), 0.5, dtype=torch.float64)
    y = kernels.stripes(x, strength=0.2, fraction=0.5, axis=0, generator=seeded(0))
    assert int((y != x)[0].flatten(1).any(1).sum()) == 20


def test_add_slice_offsets_formula():
    x = image((2, 4, 5, 6))
    offsets = torch.tensor([0.0, 0.3, -0.2, 0.0, 0.9])
    got = kernels.add_slice_offsets(x, offsets, axis=1)
    expected = np.clip(x.numpy() + offsets.numpy()[None, None, :, None], 0, 1)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-7)


# Elastic warp -----------------------------------------------------------------------


def test_warp_zero_displacement_is_identity():
    x = image((2, 9, 8, 7), dtype=torch.float32)
    np.testing.assert_allclose(
        kernels.warp(x, torch.zeros(3, 9, 8, 7)).numpy(), x.numpy(), atol=1e-6
    )


@pytest.mark.parametrize('axis', [0, 1, 2])
@pytest.mark.parametrize('shift', [-3, 1, 2])
def test_warp_integer_displacement_is_a_shift(axis, shift):
    x = image((2, 9, 8, 7), dtype=torch.float32)
    displacement = torch.zeros(3, 9, 8, 7)
    displacement[axis] = shift
    got = kernels.warp(x, displacement)
    # y[i] = x[i + shift], the edge voxel beyond the border
    size = x.shape[1 + axis]
    index = torch.arange(size).add(shift).clamp(0, size - 1)
    expected = x.index_select(1 + axis, index)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


def smooth_displacement(shape, seed, alpha=300.0, sigma=3.0) -> torch.Tensor:
    return kernels.elastic_displacement(
        shape, alpha=alpha, sigma=sigma, generator=seeded(seed), dtype=torch.float64
    )


@pytest.mark.parametrize(('mode', 'order'), [('bilinear', 1), ('nearest', 0)])
def test_warp_matches_scipy_map_coordinates(mode, order):
    x = image((2, 10, 9, 8))
    displacement = smooth_displacement((10, 9, 8), seed=1)
    assert displacement.abs().max() > 1  # large enough to move voxels
    grid = np.meshgrid(*(np.arange(n) for n in (10, 9, 8)), indexing='ij')
    coordinates = np.stack(grid) + displacement.numpy()
    expected = np.stack(
        [
            ndi.map_coordinates(channel, coordinates, order=order, mode='nearest')
            for channel in x.numpy()
        ]
    )
    got = kernels.warp(x, displacement, mode=mode)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)


def test_warp_nearest_keeps_label_values_and_dtype():
    generator = seeded(0)
    label = torch.tensor([0, 2, 5], dtype=torch.uint8)[
        torch.randint(0, 3, (1, 10, 9, 8), generator=generator)
    ]
    displacement = smooth_displacement((10, 9, 8), seed=2)
    got = kernels.warp(label, displacement, mode='nearest')
    assert got.dtype == torch.uint8
    assert set(got.unique().tolist()) <= {0, 2, 5}
    assert not torch.equal(got, label)
    image_like = kernels.warp(label.double(), displacement, mode='nearest')
    assert torch.equal(got, image_like.to(torch.uint8))


def test_warp_rejects_displacement_of_wrong_shape():
    with pytest.raises(
        ValueError, match=r'displacement must have shape \(3, 4, 4, 4\)'
    ):
        kernels.warp(torch.zeros(1, 4, 4, 4), torch.zeros(3, 4, 4, 5))


def test_elastic_deform_is_warp_by_elastic_displacement():
    x = image((2, 12, 10, 8), dtype=torch.float32)
    displacement = kernels.elastic_displacement(
        (12, 10, 8), alpha=300.0, sigma=4.0, generator=seeded(5)
    )
    expected = kernels.warp(x, displacement)
    got = kernels.elastic_deform(x, alpha=300.0, sigma=4.0, generator=seeded(5))
    # the grid is built on the coarse field (ramp and scale before upsampling):
    # the same sampling positions up to float rounding
    torch.testing.assert_close(got, expected.clamp(0, 1), rtol=0, atol=1e-5)
    coarse = kernels.elastic_grid(
        (12, 10, 8), alpha=300.0, sigma=4.0, generator=seeded(5)
    )
    grid = kernels.fields.upsample_linear(coarse, (12, 10, 8))
    from_displacement = kernels.elastic.displacement_to_grid(displacement)
    torch.testing.assert_close(grid, from_displacement, rtol=0, atol=1e-6)


def test_sample_upsamples_a_coarse_grid_slab_by_slab(monkeypatch):
    x = image((1, 40, 12, 10), dtype=torch.float32)
    coarse = kernels.elastic_grid(
        (40, 12, 10), alpha=2000.0, sigma=9.0, generator=seeded(1)
    )
    assert coarse.shape[1] < 40  # coarse: sample must interpolate it
    dense = kernels.fields.upsample_linear(coarse, (40, 12, 10))
    expected = kernels.sample(x, dense)
    # force several slabs of 7 slices (the last one shorter)
    monkeypatch.setattr(kernels.elastic, 'SLAB_VOXELS', 7 * 12 * 10)
    got = kernels.sample(x, coarse)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize('low, high', [(0.0, 1.0), (-1000.0, 3000.0)])
def test_linear_samples_never_leave_the_input_range(low, high):
    # saturated voxels (exactly 0 or 1) interpolated with weights that sum to
    # 1 + eps used to come out as 1.0000001: outside the documented [0, 1]
    x = image((1, 40, 40, 24), dtype=torch.float32)
    x[x > 0.5] = 1.0
    x[x < 0.2] = 0.0
    x = low + (high - low) * x
    for seed in range(5):
        grid = kernels.elastic_grid(
            (40, 40, 24), alpha=80.0, sigma=10.0, generator=seeded(seed)
        )
        out = kernels.sample(x, grid)
        assert float(out.min()) >= low
        assert float(out.max()) <= high


@pytest.mark.parametrize('transposed', [False, True])
@pytest.mark.parametrize(
    'shape', [(2, 16, 16, 16), (1, 12, 8, 20), (1, 13, 7, 5), (1, 3, 2, 1)]
)
def test_patch_extremes_equal_adaptive_pooling(shape, transposed):
    # equal patches (16, 12 x 8 x 20) take the strided path, others the loop
    x = image(shape, dtype=torch.float32)
    if transposed:  # the same values in a non-contiguous layout
        x = x.transpose(1, 3).contiguous().transpose(1, 3)
    cells = tuple(min(4, n) for n in shape[1:])
    low, high = kernels.intensity.patch_extremes(x, cells)
    batch = x.unsqueeze(0)
    assert torch.equal(high, torch.nn.functional.adaptive_max_pool3d(batch, cells)[0])
    assert torch.equal(low, -torch.nn.functional.adaptive_max_pool3d(-batch, cells)[0])


def test_integer_label_maps_are_sampled_by_nearest_neighbour_by_default():
    label = torch.zeros(1, 1, 1, 8, dtype=torch.uint8)
    label[..., 4:] = 5
    displacement = torch.zeros(3, 1, 1, 8)
    displacement[2] = 0.5
    warped = kernels.warp(label, displacement)
    assert warped.dtype == torch.uint8
    assert set(warped.unique().tolist()) <= {0, 5}
    with pytest.raises(ValueError, match='mode="nearest"'):
        kernels.warp(label, displacement, mode='bilinear')
