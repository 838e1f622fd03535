"""Our coarse-grid elastic field versus the dense Gaussian-smoothed field.

Simard's elastic displacement is ``alpha * G_sigma * U(-1, 1)`` per voxel and
axis. ``torchio_ramp.kernels.elastic_displacement`` draws the noise on a grid
``int(sigma / 3)`` times coarser, smooths it there and interpolates linearly.
This script compares it with the dense definition computed directly:
``U(-1, 1)`` noise at every voxel (plus a ``4 sigma`` margin, cropped, so that
the field has no border effects), ``scipy.ndimage.gaussian_filter`` with
SciPy's default truncation (4 sigma), times ``alpha``. For several seeds it
reports, with the standard error over seeds:

- the standard deviation of the displacement (voxels);
- the autocorrelation at lags ``sigma / 2``, ``sigma`` and ``2 sigma`` along
  each axis (for Gaussian-smoothed white noise, ``exp(-lag^2 / (4 sigma^2))``:
  0.94, 0.78 and 0.37);
- the radially averaged power spectrum (Hann-windowed), as the fraction of the
  total power in bands of ``f * sigma`` (``f`` in cycles per voxel); for
  Gaussian-smoothed noise about 0.14, 0.48, 0.31, 0.065 and 0.005 in the five
  bands, blurred by the finite volume and the window.

Usage::

    python benchmarks/elastic_equivalence.py             # 128^3, sigma 10, 4 seeds
    python benchmarks/elastic_equivalence.py --size 64 --sigma 6 --seeds 8
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from torchio_ramp.kernels import elastic_displacement

BANDS = (0.0, 0.1, 0.2, 0.3, 0.4, math.inf)
"""Edges of the spectral bands in units of ``f * sigma``."""


def dense_displacement(
    shape: Sequence[int],
    *,
    alpha: float,
    sigma: float,
    generator: torch.Generator,
) -> np.ndarray:
    """The dense reference: ``alpha * gaussian_filter(U(-1, 1))``, ``(3, *shape)``."""
    from scipy.ndimage import gaussian_filter

    margin = int(4 * sigma + 0.5)
    padded = [n + 2 * margin for n in shape]
    noise = torch.rand((3, *padded), generator=generator, dtype=torch.float64)
    noise = noise.mul_(2).sub_(1).numpy()
    crop = tuple(slice(margin, margin + n) for n in shape)
    fields = [gaussian_filter(channel, sigma, truncate=4.0)[crop] for channel in noise]
    return alpha * np.stack(fields)


def autocorrelation(field: np.ndarray, lag: int) -> float:
    """Mean correlation of ``field[c]`` with itself shifted by ``lag`` voxels.

    Averaged over the three channels and the three axes.
    """
    values = []
    for channel in field:
        centred = channel - channel.mean()
        variance = float((centred * centred).mean())
        for axis in range(3):
            size = centred.shape[axis]
            head = np.take(centred, range(size - lag), axis=axis)
            tail = np.take(centred, range(lag, size), axis=axis)
            values.append(float((head * tail).mean()) / variance)
    return statistics.fmean(values)


def band_power(field: np.ndarray, sigma: float) -> list[float]:
    """Fraction of the power of ``field`` in each band of :data:`BANDS`.

    Each channel is multiplied by a 3-D Hann window before the FFT, so the
    discontinuity between opposite faces of a non-periodic field does not
    leak power into high frequencies.
    """
    shape = field.shape[1:]
    frequencies = np.meshgrid(*(np.fft.fftfreq(n) for n in shape), indexing='ij')
    radius = np.sqrt(sum(f * f for f in frequencies)) * sigma
    hann = [np.hanning(n) for n in shape]
    window = hann[0][:, None, None] * hann[1][None, :, None] * hann[2][None, None, :]
    power = np.zeros(radius.shape)
    for channel in field:
        spectrum = np.fft.fftn((channel - channel.mean()) * window)
        power += np.abs(spectrum) ** 2
    total = power.sum()
    fractions = []
    for low, high in itertools.pairwise(BANDS):
        inside = (radius >= low) & (radius < high)
        fractions.append(float(power[inside].sum() / total))
    return fractions


@dataclass(frozen=True)
class Statistic:
    """One statistic over seeds for the dense reference and for ours."""

    name: str
    dense: list[float]
    ours: list[float]


def _describe(field: np.ndarray, sigma: float) -> dict[str, float]:
    values = {'displacement std (voxels)': float(field.std())}
    for factor, label in ((0.5, 'sigma/2'), (1.0, 'sigma'), (2.0, '2 sigma')):
        lag = max(1, round(factor * sigma))
        values[f'autocorrelation at {label} ({lag} voxels)'] = autocorrelation(
            field, lag
        )
    for (low, high), fraction in zip(
        itertools.pairwise(BANDS),
        band_power(field, sigma),
        strict=True,
    ):
        upper = f'{high:.2f})' if math.isfinite(high) else 'inf)'
        values[f'power fraction, f*sigma in [{low:.2f}, {upper}'] = fraction
    return values


def compare(
    size: int = 128,
    alpha: float = 80.0,
    sigma: float = 10.0,
    seeds: int = 4,
) -> list[Statistic]:
    """Statistics of ``seeds`` dense and coarse-grid fields of ``size^3``.

    Example:
        >>> stats = compare(size=16, sigma=3.0, seeds=1)
        >>> stats[0].name
        'displacement std (voxels)'
    """
    shape = (size, size, size)
    collected: dict[str, tuple[list[float], list[float]]] = {}
    for seed in range(seeds):
        dense = dense_displacement(
            shape,
            alpha=alpha,
            sigma=sigma,
            generator=torch.Generator().manual_seed(10_000 + seed),
        )
        ours = elastic_displacement(
            shape,
            alpha=alpha,
            sigma=sigma,
            generator=torch.Generator().manual_seed(seed),
        ).numpy()
        dense_values = _describe(dense, sigma)
        ours_values = _describe(ours.astype(np.float64), sigma)
        for name in dense_values:
            pair = collected.setdefault(name, ([], []))
            pair[0].append(dense_values[name])
            pair[1].append(ours_values[name])
    return [Statistic(name, d, o) for name, (d, o) in collected.items()]


def _mean_and_error(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f'{mean:.4g}'
    error = statistics.stdev(values) / math.sqrt(len(values))
    return f'{mean:.4g} ± {error:.2g}'


def table(statistics_: Sequence[Statistic]) -> str:
    """Markdown: statistic, dense, ours (mean ± standard error), ratio."""
    from harness import markdown_table

    rows = []
    for statistic in statistics_:
        dense = statistics.fmean(statistic.dense)
        ours = statistics.fmean(statistic.ours)
        ratio = f'{ours / dense:.3f}' if dense > 1e-12 else '-'
        rows.append(
            [
                statistic.name,
                _mean_and_error(statistic.dense),
                _mean_and_error(statistic.ours),
                ratio,
            ]
        )
    return markdown_table(
        ['statistic', 'dense (scipy)', 'ours (coarse grid)', 'ours / dense'], rows
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--alpha', type=float, default=80.0)
    parser.add_argument('--sigma', type=float, default=10.0)
    parser.add_argument('--seeds', type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    stats = compare(args.size, args.alpha, args.sigma, args.seeds)
    print(
        f'Elastic field alpha={args.alpha:g}, sigma={args.sigma:g} on'
        f' {args.size}^3, {args.seeds} seeds (mean ± standard error):\n'
    )
    print(table(stats))


if __name__ == '__main__':
    main()
