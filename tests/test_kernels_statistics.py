"""Random kernels against closed-form distributions.

Every tolerance is ``Z`` standard errors of the statistic's sampling
distribution (``Z = 5``: a correct kernel fails with probability below 1e-6 per
check), computed from the closed-form moments, plus, for the smooth fields, the
documented accuracy of the coarse-grid approximation. Moments are taken on
constant images with parameters for which clipping to [0, 1] has a negligible
probability (stated per test), so the unclipped closed forms apply.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.special as special
import scipy.stats as stats
import torch

from tests.test_kernels_contract import one_thread  # noqa: F401
from torchio_ramp import kernels
from torchio_ramp.kernels.fields import BIAS_CONTROL_POINTS
from torchio_ramp.kernels.filters import TRUNCATE

Z = 5.0
"""Standard errors allowed between a sample statistic and its expectation."""

SHAPE = (4, 64, 64, 64)
"""2**20 voxels: standard errors of about 1e-3 of the noise standard deviation."""

N = math.prod(SHAPE)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def constant(value: float, shape=SHAPE) -> torch.Tensor:
    return torch.full(shape, value, dtype=torch.float32)


def sample(kernel, value: float, seed: int = 0, **parameters) -> np.ndarray:
    """Kernel output on a constant image, as float64 for accurate sums."""
    y = kernel(constant(value), generator=seeded(seed), **parameters)
    return y.double().numpy().ravel()


def assert_close_in_se(estimate: float, expected: float, se: float, what: str):
    assert abs(estimate - expected) <= Z * se, (
        f'{what}: {estimate:.6g} vs {expected:.6g} (tolerance {Z} x SE {se:.3g})'
    )


def assert_variance(values: np.ndarray, expected: float, what: str):
    """Sample variance of Gaussian data: SE = var sqrt(2 / (n - 1))."""
    se = expected * math.sqrt(2 / (values.size - 1))
    assert_close_in_se(values.var(ddof=1), expected, se, f'{what} variance')


# Additive, multiplicative and Rician noise ---------------------------------------


@pytest.mark.parametrize(('value', 'std'), [(0.5, 0.08), (0.5, 0.02), (0.3, 0.04)])
def test_gaussian_noise_mean_and_std(value, std):
    # clipping needs |n| > 6 std: probability < 2e-9 per voxel
    assert stats.norm.sf(min(value, 1 - value) / std) < 1e-9
    y = sample(kernels.gaussian_noise, value, std=std)
    assert_close_in_se(y.mean(), value, std / math.sqrt(N), 'mean')
    assert_variance(y, std**2, 'Gaussian noise')


def test_gaussian_noise_is_white():
    y = kernels.gaussian_noise(constant(0.5), std=0.05, generator=seeded(1)) - 0.5
    y = y.double()
    for dim in (0, 1, 2, 3):
        a, b = y.narrow(dim, 0, y.shape[dim] - 1), y.narrow(dim, 1, y.shape[dim] - 1)
        correlation = float((a * b).mean() / (y * y).mean())
        assert abs(correlation) <= Z / math.sqrt(a.numel()), (dim, correlation)


def rice_mean(nu: float, sigma: float) -> float:
    """E[R] = sigma sqrt(pi / 2) L_{1/2}(-nu^2 / (2 sigma^2)).

    With ``x = -nu^2 / (2 sigma^2) <= 0`` and ``t = -x / 2``,
    ``L_{1/2}(x) = exp(x / 2) [(1 - x) I0(-x / 2) - x I1(-x / 2)]``
    ``= (1 - x) ive(0, t) - x ive(1, t)`` (scaled Bessel functions, stable).
    """
    x = -(nu**2) / (2 * sigma**2)
    t = -x / 2
    laguerre = (1 - x) * special.ive(0, t) - x * special.ive(1, t)
    return sigma * math.sqrt(math.pi / 2) * laguerre


@pytest.mark.parametrize(('nu', 'std'), [(0.0, 0.1), (0.1, 0.1), (0.5, 0.08)])
def test_rician_noise_moments(nu, std):
    # R >= 0 is never clipped below; P(R > 1) < 1e-9 for these (nu, std)
    assert stats.rice.sf(1.0, nu / std, scale=std) < 1e-9
    mean = rice_mean(nu, std)
    assert math.isclose(mean, stats.rice.mean(nu / std, scale=std), rel_tol=1e-12)
    second = nu**2 + 2 * std**2
    # Var(R^2) = E[R^4] - E[R^2]^2 = 4 std^2 (nu^2 + std^2)
    fourth_central = 4 * std**2 * (nu**2 + std**2)
    y = sample(kernels.rician_noise, nu, std=std)
    assert_close_in_se((y**2).mean(), second, math.sqrt(fourth_central / N), 'E[R^2]')
    assert_close_in_se(y.mean(), mean, math.sqrt((second - mean**2) / N), 'E[R]')


def test_rician_noise_of_zero_std_is_identity():
    x = torch.rand(2, 8, 8, 8, generator=seeded(0))
    y = kernels.rician_noise(x, std=0.0, generator=seeded(1))
    torch.testing.assert_close(y, x, rtol=0, atol=1e-7)


@pytest.mark.parametrize(('value', 'std'), [(0.4, 0.15), (0.5, 0.08), (0.2, 0.15)])
def test_speckle_noise_mean_and_variance(value, std):
    # y = x (1 + std n) leaves [0, 1] only if |n| > 1 / std - 1 or so: < 1e-9
    low = stats.norm.cdf(-1 / std)
    high = stats.norm.sf((1 / value - 1) / std)
    assert low + high < 1e-9
    y = sample(kernels.speckle_noise, value, std=std)
    assert_close_in_se(y.mean(), value, value * std / math.sqrt(N), 'mean')
    assert_variance(y, (value * std) ** 2, 'speckle')


def test_speckle_noise_is_multiplicative():
    # the relative deviation y / x - 1 has the same law at every intensity
    x = torch.linspace(0.05, 0.6, 64).reshape(1, 64, 1, 1).expand(16, 64, 64, 64)
    y = kernels.speckle_noise(x.contiguous(), std=0.1, generator=seeded(2))
    relative = (y / x - 1).double().movedim(1, 0).reshape(64, -1)
    per_intensity_std = relative.std(dim=1).numpy()
    n = relative.shape[1]
    assert np.abs(per_intensity_std - 0.1).max() <= Z * 0.1 / math.sqrt(2 * n)


# Salt and pepper --------------------------------------------------------------------


@pytest.mark.parametrize('prob', [0.02, 0.2, 0.425])
def test_salt_pepper_fraction_balance_and_untouched_voxels(prob):
    x = 0.1 + 0.8 * torch.rand(SHAPE, generator=seeded(9))
    y = kernels.salt_pepper(x, prob=prob, generator=seeded(10))
    changed = y != x
    count = int(changed.sum())
    assert_close_in_se(
        count / N, prob, math.sqrt(prob * (1 - prob) / N), 'changed fraction'
    )
    salt = int((y[changed] == 1).sum())
    pepper = int((y[changed] == 0).sum())
    assert salt + pepper == count  # changed voxels are exactly 0 or 1
    assert_close_in_se(salt / count, 0.5, math.sqrt(0.25 / count), 'salt share')
    assert torch.equal(y[~changed], x[~changed])


def test_salt_pepper_values_are_independent_of_neighbours_and_of_calls():
    # a hit voxel's 0/1 is a hash of its index and a per-call key: it must
    # look like a fair coin for neighbouring voxels and across calls
    x = torch.full(SHAPE, 0.5)
    first = kernels.salt_pepper(x, prob=0.425, generator=seeded(3))[0]
    second = kernels.salt_pepper(x, prob=0.425, generator=seeded(4))[0]
    for axis in range(3):
        a, b = (
            first.narrow(axis, 0, first.shape[axis] - 1),
            first.narrow(axis, 1, first.shape[axis] - 1),
        )
        both = (a != 0.5) & (b != 0.5)
        same = float((a[both] == b[both]).float().mean())
        count = int(both.sum())
        assert_close_in_se(same, 0.5, math.sqrt(0.25 / count), f'axis {axis}')
    both = (first != 0.5) & (second != 0.5)
    same = float((first[both] == second[both]).float().mean())
    count = int(both.sum())
    assert_close_in_se(same, 0.5, math.sqrt(0.25 / count), 'two calls')


def test_salt_pepper_hash_equals_unsigned_64_bit_arithmetic():
    def splitmix(z):  # SplitMix64 mixing of z * golden, on Python integers
        mask = (1 << 64) - 1
        z = (z * 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    key = 4_611_686_018_427_387_000  # near the largest key drawn (2**62)
    index = torch.tensor([0, 1, 2, 12345, 2**31 - 1, 2**40])
    got = kernels.noise.index_hash(index, torch.tensor([key]))
    expected = [splitmix(i + key) for i in index.tolist()]
    assert [value & ((1 << 64) - 1) for value in got.tolist()] == expected


@pytest.mark.parametrize(('prob', 'expected'), [(0.0, 0.0), (1.0, 1.0)])
def test_salt_pepper_extreme_probabilities(prob, expected):
    x = 0.1 + 0.8 * torch.rand(2, 8, 8, 8, generator=seeded(0))
    y = kernels.salt_pepper(x, prob=prob, generator=seeded(1))
    assert float((y != x).float().mean()) == expected


# Global intensity shift -----------------------------------------------------------


def test_intensity_shift_sign_is_equiprobable_over_seeds():
    x = constant(0.5, (1, 2, 2, 2))
    seeds = 2000
    signs = []
    for seed in range(seeds):
        y = kernels.intensity_shift(x, shift=0.25, generator=seeded(seed))
        offsets = (y - x).unique()
        assert offsets.numel() == 1 and abs(abs(float(offsets)) - 0.25) < 1e-7
        signs.append(float(offsets) > 0)
    assert_close_in_se(sum(signs) / seeds, 0.5, math.sqrt(0.25 / seeds), 'P(+)')


# Bias field -------------------------------------------------------------------------


@pytest.mark.parametrize('strength', [0.1, 0.6, 1.225])
@pytest.mark.parametrize('shape', [(32, 32, 32), (17, 9, 3), (1, 24, 24)])
def test_bias_field_map_bounds_and_smoothness(strength, shape):
    # exp(strength b) with b in [-1, 1] on the coarse grid, interpolated linearly:
    # between control points (spacing (n - 1) / (m - 1) voxels) the log-field
    # moves by at most 2 strength per spacing along each axis.
    for seed in range(5):
        field = kernels.bias_field_map(shape, strength=strength, generator=seeded(seed))
        assert field.shape == shape and field.dtype == torch.float32
        assert (field > 0).all()
        log = field.double().log()
        assert float(log.min()) >= -strength - 1e-6
        assert float(log.max()) <= strength + 1e-6
        for axis, n in enumerate(shape):
            if n == 1:
                continue
            control = min(n, BIAS_CONTROL_POINTS)
            spacing = (n - 1) / (control - 1)
            steps = log.diff(dim=axis).abs().max()
            assert float(steps) <= 2 * strength / spacing + 1e-6


def test_bias_field_is_much_smoother_than_white_noise():
    field = kernels.bias_field_map((32, 32, 32), strength=0.6, generator=seeded(0))
    log = field.double().log()
    white = 2 * torch.rand(32, 32, 32, generator=seeded(1), dtype=torch.float64) - 1
    white *= 0.6
    for axis in range(3):
        smooth_step = log.diff(dim=axis).abs().mean()
        rough_step = white.diff(dim=axis).abs().mean()
        assert smooth_step < rough_step / 10


@pytest.mark.parametrize('strength', [0.1, 0.45])
def test_bias_field_log_is_zero_mean_with_peak_strength_on_control_grid(strength):
    # 17 voxels = 4 spacings of 4: the 5 control points fall on voxels 0, 4, ...
    control = slice(0, 17, 4)
    for seed in range(10):
        field = kernels.bias_field_map(
            (17, 17, 17), strength=strength, generator=seeded(seed), dtype=torch.float64
        )
        log = field.log()[control, control, control]
        assert log.shape == (BIAS_CONTROL_POINTS,) * 3
        assert abs(float(log.mean())) < 1e-12
        assert math.isclose(float(log.abs().max()), strength, rel_tol=1e-12)


def test_bias_field_kernel_multiplies_every_channel_by_one_field():
    x = 0.2 + 0.3 * torch.rand(3, 16, 12, 8, generator=seeded(0), dtype=torch.float64)
    y = kernels.bias_field(x, strength=0.3, generator=seeded(4))
    field = kernels.bias_field_map(
        (16, 12, 8), strength=0.3, generator=seeded(4), dtype=torch.float64
    )
    np.testing.assert_allclose((y / x).numpy(), field.expand(3, -1, -1, -1).numpy())


def test_bias_field_strength_zero_is_identity():
    x = torch.rand(2, 8, 8, 8, generator=seeded(0))
    assert torch.equal(kernels.bias_field(x, strength=0.0, generator=seeded(1)), x)


# Smooth noise fields (elastic displacement) -----------------------------------------

SMOOTHING_ACCURACY = 0.02
"""Documented accuracy of the coarse-grid fields (``fields.coarse_step``): linear
interpolation between samples a third of a sigma apart loses about 2% of the
dense field's standard deviation. The same 0.02 is allowed on correlations."""


def dense_covariance(n: int, sigma: float) -> np.ndarray:
    """Covariance along one axis of a stationary dense field ``G_sigma * U(-1, 1)``.

    The reference is SciPy's ``gaussian_filter1d`` of white noise on a grid
    padded by the kernel radius on both sides, cropped back to ``n`` voxels (so
    no voxel sees the boundary rule). Column ``k`` of ``M`` is SciPy's response
    to a unit impulse at padded voxel ``k``: the field is ``M u`` and its
    covariance ``M M^T Var(u)``, with Var(u) = 1/3.
    """
    if n == 1:
        return np.full((1, 1), 1 / 3)
    pad = int(TRUNCATE * sigma + 0.5)
    m = ndi.gaussian_filter1d(
        np.eye(n + 2 * pad), sigma, axis=0, mode='nearest', truncate=TRUNCATE
    )[pad : pad + n]
    return m @ m.T / 3


def batch_standard_error(per_channel: np.ndarray, groups: int = 20) -> float:
    """Standard error of the mean of ``per_channel`` by batch means."""
    means = np.array([part.mean() for part in np.array_split(per_channel, groups)])
    return float(means.std(ddof=1) / math.sqrt(groups))


@pytest.mark.parametrize(
    ('axis', 'sigma', 'size'),
    [(0, 3.0, 40), (1, 6.0, 48), (2, 10.0, 64), (0, 16.0, 96)],
)
def test_smooth_noise_field_matches_dense_scipy_field_along_an_axis(axis, sigma, size):
    # 1-D fields (other axes of one voxel) let 20000 independent channels pin
    # the std at every voxel, borders included (the field is stationary), and
    # the autocorrelation. sigma 3, 6, 10, 16: coarse steps of 1, 2, 3, 5 voxels.
    channels = 20000
    shape = [1, 1, 1]
    shape[axis] = size
    field = kernels.smooth_noise_field(
        shape, sigma=sigma, channels=channels, generator=seeded(axis)
    )
    assert field.shape == (channels, *shape)
    f = field.double().reshape(channels, size).numpy()
    covariance = dense_covariance(size, sigma)
    reference_std = np.sqrt(np.diag(covariance))
    # relative SE of a sample std of Gaussian data: 1 / sqrt(2 n)
    tolerance = SMOOTHING_ACCURACY + Z / math.sqrt(2 * channels)
    np.testing.assert_allclose(f.std(axis=0) / reference_std, 1.0, atol=tolerance)
    assert abs(f.mean()) < Z * reference_std.max() / math.sqrt(channels)
    for lag in (1, int(sigma), int(2 * sigma)):
        a, b = f[:, : size - lag], f[:, lag:]
        per_channel = (a * b).mean(axis=1) / np.sqrt((a * a).mean() * (b * b).mean())
        rows = np.arange(size - lag)
        reference = np.mean(
            covariance[rows, rows + lag]
            / np.sqrt(covariance[rows, rows] * covariance[rows + lag, rows + lag])
        )
        error = abs(per_channel.mean() - reference)
        se = batch_standard_error(per_channel)
        assert error <= SMOOTHING_ACCURACY + Z * se, (
            lag,
            per_channel.mean(),
            reference,
        )


def test_smooth_noise_field_2d_variance_is_the_dense_one():
    # the gains of both axes combine: pooled variance within the smoothing
    # accuracy (twice: two axes) plus Z batch-means standard errors
    sigma, size, channels = 6.0, 32, 1000
    field = kernels.smooth_noise_field(
        (size, 1, size), sigma=sigma, channels=channels, generator=seeded(3)
    )
    per_channel = (field.double().numpy() ** 2).reshape(channels, -1).mean(axis=1)
    diagonal = np.diag(dense_covariance(size, sigma))
    # Var = Var(u) prod_axes sum_k M[i, k]^2 and diagonal = sum_k M[i, k]^2 / 3
    reference = 3 * np.mean(np.outer(diagonal, diagonal))
    ratio = math.sqrt(per_channel.mean() / reference)
    se = batch_standard_error(per_channel) / (2 * per_channel.mean())
    assert abs(ratio - 1) <= 2 * SMOOTHING_ACCURACY + Z * se, ratio


def test_smooth_noise_field_channels_are_independent():
    field = kernels.smooth_noise_field(
        (40, 1, 1), sigma=4.0, channels=20000, generator=seeded(0)
    )
    f = field.double().reshape(10000, 2, 40)[..., 20]
    correlation = np.corrcoef(f[:, 0], f[:, 1])[0, 1]
    assert abs(correlation) <= Z / math.sqrt(10000)


def test_elastic_displacement_is_alpha_times_a_three_channel_smooth_field():
    shape = (12, 10, 8)
    displacement = kernels.elastic_displacement(
        shape, alpha=80.0, sigma=10.0, generator=seeded(6)
    )
    field = kernels.smooth_noise_field(
        shape, sigma=10.0, channels=3, generator=seeded(6)
    )
    assert displacement.shape == (3, *shape)
    torch.testing.assert_close(displacement, 80.0 * field, rtol=1e-6, atol=0)
    assert len({float(c.std()) for c in displacement}) == 3  # independent channels
