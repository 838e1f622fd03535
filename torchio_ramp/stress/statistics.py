"""Statistics over a test set: the robustness numbers and their uncertainty.

Every number the stress test computes over subjects is defined once, here (the
stress-testing guide repeats these definitions); the per-volume metrics they
aggregate (Dice per class with its conventions, subject Dice, volumes) are
defined in :mod:`torchio_ramp.metrics`. A *setting* is the clean volume or one
``(family, level)`` corruption.

Over a test set (``S`` subjects, ``T`` corrupted settings):

* **Clean Dice**: mean over subjects of the subject Dice on clean volumes.
* **Mean corrupted Dice**: mean of the subject Dice over all subject x
  corrupted-setting pairs (``S x T`` values; NaN values are left out).
* **Robustness gap**: clean Dice - mean corrupted Dice (paper eq. 3).
* **Worst-case Dice**: for each subject, the minimum subject Dice over the
  corrupted settings; then the mean over subjects (paper section 3.5).
* **Per family / per level / per setting Dice**: the mean corrupted Dice
  restricted to the settings of one family (over its levels, Tables 7-8, Fig.
  4), of one level (over the families, Fig. 5), or to one setting.
* **Per organ** (Table 10): the four numbers above computed from the Dice of
  one class instead of the subject Dice.
* **95% confidence interval**: percentile bootstrap over subjects (resampled
  with replacement, same resamples for every number of a model, seeded).
* **mCE** (Hendrycks & Dietterich, 2019, adapted from error to ``1 - Dice``):
  for each family ``f``, ``CE_f = sum_l (1 - D_model(f, l)) / sum_l (1 -
  D_baseline(f, l))`` with ``D(f, l)`` the mean subject Dice at setting
  ``(f, l)``; mCE is the mean of ``CE_f`` over families (< 1: fewer errors
  than the baseline). **Relative mCE** uses ``D(clean) - D(f, l)`` instead
  of ``1 - D(f, l)``: the degradation relative to each model's own clean
  Dice. A family whose baseline denominator is not positive has no CE (NaN)
  and is left out of the mean.
* **Paired test**: two-sided sign-flip permutation test of the mean
  per-subject difference between two models (exact when there are at most
  :data:`EXACT_MAX_SUBJECTS` subjects, otherwise Monte Carlo).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EXACT_MAX_SUBJECTS = 16
"""Largest number of subjects for which the paired test enumerates all sign
flips (``2 ** 16`` of them); above it, :data:`PERMUTATIONS` random flips."""

PERMUTATIONS = 20_000
"""Random sign flips of the Monte Carlo paired test."""

BOOTSTRAP_RESAMPLES = 2000
"""Default number of bootstrap resamples of the confidence intervals."""

CONFIDENCE = 0.95
"""Default two-sided level of the bootstrap confidence intervals."""


def nanmean(values: np.ndarray, axis: int | tuple[int, ...] | None = None):
    """Mean over the finite entries along ``axis`` (NaN where there are none).

    Example:
        >>> nanmean(np.array([[1.0, np.nan], [np.nan, np.nan]]), axis=1).tolist()
        [1.0, nan]
    """
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    count = finite.sum(axis=axis)
    with np.errstate(invalid='ignore', divide='ignore'):
        return total / count


def nanmin(values: np.ndarray, axis: int) -> np.ndarray:
    """Minimum over the finite entries along ``axis`` (NaN where there are none).

    Example:
        >>> nanmin(np.array([[0.2, np.nan], [np.nan, np.nan]]), axis=1).tolist()
        [0.2, nan]
    """
    finite = np.isfinite(values)
    low = np.where(finite, values, np.inf).min(axis=axis)
    return np.where(finite.any(axis=axis), low, np.nan)


# Over a test set ----------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% bootstrap confidence interval.

    Attributes:
        value: The estimate on all subjects.
        low: 2.5th percentile of the bootstrap distribution.
        high: 97.5th percentile.
        n: Number of subjects that contribute.

    Example:
        >>> Estimate(0.8, 0.7, 0.9, 12).high
        0.9
    """

    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-friendly form.

        Example:
            >>> Estimate(0.5, 0.4, 0.6, 10).to_dict()
            {'value': 0.5, 'low': 0.4, 'high': 0.6, 'n': 10}
        """
        return {'value': self.value, 'low': self.low, 'high': self.high, 'n': self.n}


def bootstrap_indices(
    num_subjects: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Subject indices of ``resamples`` bootstrap resamples, ``(B, S)``.

    Example:
        >>> bootstrap_indices(3, resamples=2, seed=0).shape
        (2, 3)
    """
    if resamples < 1:
        raise ValueError(f'resamples must be positive, not {resamples}')
    rng = np.random.default_rng(seed)
    return rng.integers(0, max(num_subjects, 1), size=(resamples, num_subjects))


def _ratio(
    sums: np.ndarray,
    counts: np.ndarray,
    indices: np.ndarray,
) -> tuple[float, np.ndarray]:
    total, count = sums.sum(), counts.sum()
    value = float(total / count) if count else math.nan
    boot_count = counts[indices].sum(axis=1)
    with np.errstate(invalid='ignore', divide='ignore'):
        boot = sums[indices].sum(axis=1) / boot_count
    return value, boot


def check_confidence(confidence: float) -> float:
    """A two-sided confidence level in ``(0, 1)``, as a float.

    Example:
        >>> check_confidence(0.9)
        0.9
    """
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        raise ValueError(f'confidence must be a number in (0, 1), not {confidence!r}')
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), not {confidence}')
    return float(confidence)


def _interval(
    value: float,
    boot: np.ndarray,
    n: int,
    confidence: float = CONFIDENCE,
) -> Estimate:
    finite = boot[np.isfinite(boot)]
    if math.isnan(value) or finite.size == 0:
        return Estimate(value, math.nan, math.nan, n)
    tail = 50 * (1 - confidence)
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Estimate(value, float(low), float(high), n)


def _sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    finite = np.isfinite(values)
    return np.where(finite, values, 0.0).sum(axis=1), finite.sum(axis=1)


def pooled_mean(
    values: np.ndarray,
    indices: np.ndarray,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """Mean of the finite entries of ``values`` (subjects x settings), with CI.

    The interval resamples rows (subjects); within a resample the mean is
    again over all finite entries, so it is the same statistic.

    Args:
        values: ``(S, T)`` array, NaN where a value is excluded.
        indices: Bootstrap resamples from :func:`bootstrap_indices`.
        confidence: Two-sided level of the interval (0.95: the 2.5th and
            97.5th percentiles).

    Example:
        >>> values = np.array([[1.0, 0.0], [0.5, np.nan]])
        >>> pooled_mean(values, bootstrap_indices(2, 100)).value
        0.5
    """
    sums, counts = _sums(values)
    value, boot = _ratio(sums, counts, indices)
    return _interval(value, boot, int((counts > 0).sum()), confidence)


@dataclass(frozen=True)
class Robustness:
    """The four headline numbers of Table 5 (or Table 10 for one organ).

    Attributes:
        clean: Clean Dice.
        corrupted: Mean corrupted Dice.
        gap: Robustness gap (clean - corrupted).
        worst_case: Worst-case Dice (per-subject minimum, then mean).

    Example:
        >>> values = np.array([[0.9, 0.5, 0.7], [0.8, 0.6, 0.4]])
        >>> round(robustness(values, bootstrap_indices(2, 10)).worst_case.value, 3)
        0.45
    """

    clean: Estimate
    corrupted: Estimate
    gap: Estimate
    worst_case: Estimate

    def to_dict(self) -> dict[str, dict[str, float | int]]:
        """JSON-friendly form (keys ``clean``, ``corrupted``, ``gap``, ``worst_case``).

        Example:
            >>> values = np.array([[1.0, 0.5, 0.7]])
            >>> sorted(robustness(values, bootstrap_indices(1, 10)).to_dict())
            ['clean', 'corrupted', 'gap', 'worst_case']
        """
        return {
            'clean': self.clean.to_dict(),
            'corrupted': self.corrupted.to_dict(),
            'gap': self.gap.to_dict(),
            'worst_case': self.worst_case.to_dict(),
        }


def robustness(
    values: np.ndarray,
    indices: np.ndarray,
    confidence: float = CONFIDENCE,
) -> Robustness:
    """Clean, mean corrupted, gap and worst-case Dice with bootstrap CIs.

    Args:
        values: ``(S, 1 + T)`` Dice of each subject (rows) on the clean volume
            (column 0) and under each corrupted setting (columns 1..T); NaN
            where excluded. Subject Dice gives Table 5, one class's Dice gives
            that organ's row of Table 10.
        indices: Bootstrap resamples from :func:`bootstrap_indices`, shared
            by the four numbers (so the gap's interval is that of a
            difference on the same resampled subjects).
        confidence: Two-sided level of the intervals.

    Example:
        >>> values = np.array([[0.9, 0.8, 0.4], [0.7, 0.6, 0.6]])
        >>> result = robustness(values, bootstrap_indices(2, 200))
        >>> round(result.clean.value, 3), round(result.corrupted.value, 3)
        (0.8, 0.6)
        >>> round(result.gap.value, 3), round(result.worst_case.value, 3)
        (0.2, 0.5)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        message = (
            'values must be (subjects, 1 + settings) with the clean column first,'
            f' not shape {values.shape}'
        )
        raise ValueError(message)
    clean_sums, clean_counts = _sums(values[:, :1])
    corrupted_sums, corrupted_counts = _sums(values[:, 1:])
    clean, clean_boot = _ratio(clean_sums, clean_counts, indices)
    corrupted, corrupted_boot = _ratio(corrupted_sums, corrupted_counts, indices)
    worst = nanmin(values[:, 1:], axis=1)
    worst_counts = np.isfinite(worst).astype(np.int64)
    worst_value, worst_boot = _ratio(np.nan_to_num(worst), worst_counts, indices)
    both = (clean_counts > 0) | (corrupted_counts > 0)
    return Robustness(
        clean=_interval(clean, clean_boot, int((clean_counts > 0).sum()), confidence),
        corrupted=_interval(
            corrupted, corrupted_boot, int((corrupted_counts > 0).sum()), confidence
        ),
        gap=_interval(
            clean - corrupted,
            clean_boot - corrupted_boot,
            int(both.sum()),
            confidence,
        ),
        worst_case=_interval(
            worst_value, worst_boot, int(worst_counts.sum()), confidence
        ),
    )


def corruption_error(
    model: Mapping[tuple[str, float], float],
    baseline: Mapping[tuple[str, float], float],
    *,
    model_clean: float | None = None,
    baseline_clean: float | None = None,
) -> tuple[float, dict[str, float]]:
    """mCE (or relative mCE) of a model against a baseline, and ``CE_f``.

    Args:
        model: Mean subject Dice of the model at each ``(family, level)``.
        baseline: The same for the baseline (same keys).
        model_clean: Clean Dice of the model; with ``baseline_clean`` gives
            the relative mCE (errors measured from each model's clean Dice).
        baseline_clean: Clean Dice of the baseline.

    Returns:
        The mean over families of the defined ``CE_f`` (NaN if none is
        defined), and ``CE_f`` per family (NaN where the baseline's summed
        error is not positive).

    Raises:
        ValueError: If the two models were not run on the same settings.

    Example:
        >>> model = {('blur', 0.1): 0.75, ('blur', 0.2): 0.75}
        >>> baseline = {('blur', 0.1): 0.5, ('blur', 0.2): 0.5}
        >>> corruption_error(model, baseline)
        (0.5, {'blur': 0.5})
    """
    if set(model) != set(baseline):
        message = (
            'mCE needs both models evaluated on the same settings; only one has'
            f' {sorted(set(model) ^ set(baseline))[:5]}'
        )
        raise ValueError(message)
    relative = model_clean is not None and baseline_clean is not None
    families = list(dict.fromkeys(family for family, _ in model))
    errors = {}
    for family in families:
        keys = [key for key in model if key[0] == family]
        if relative:
            numerator = sum(model_clean - model[key] for key in keys)
            denominator = sum(baseline_clean - baseline[key] for key in keys)
        else:
            numerator = sum(1.0 - model[key] for key in keys)
            denominator = sum(1.0 - baseline[key] for key in keys)
        valid = denominator > 0 and math.isfinite(numerator)
        errors[family] = numerator / denominator if valid else math.nan
    defined = [v for v in errors.values() if not math.isnan(v)]
    mean = sum(defined) / len(defined) if defined else math.nan
    return mean, errors


@dataclass(frozen=True)
class PairedTest:
    """Result of :func:`paired_test`.

    Attributes:
        mean_difference: Mean over subjects of ``a - b``.
        difference: 95% bootstrap CI of the mean difference.
        p_value: Two-sided p-value of the sign-flip permutation test.
        n: Number of paired subjects (both values finite).
        method: ``'exact'`` or ``'monte-carlo'``.

    Example:
        >>> paired_test([1.0, 0.9], [0.5, 0.5]).method
        'exact'
    """

    mean_difference: float
    difference: Estimate
    p_value: float
    n: int
    method: str

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form.

        Example:
            >>> paired_test([0.9, 0.8], [0.7, 0.6]).to_dict()['p_value']
            0.5
        """
        return {
            'mean_difference': self.mean_difference,
            'difference': self.difference.to_dict(),
            'p_value': self.p_value,
            'n': self.n,
            'method': self.method,
        }


def paired_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    permutations: int = PERMUTATIONS,
) -> PairedTest:
    """Sign-flip permutation test of per-subject differences ``a - b``.

    Under the null hypothesis (no difference between the models) the sign of
    each subject's difference is exchangeable. The p-value is the fraction of
    sign assignments whose mean difference is at least as far from zero as the
    observed one: all ``2 ** n`` of them when ``n <=``
    :data:`EXACT_MAX_SUBJECTS`, otherwise ``permutations`` random ones (with
    the observed assignment counted, ``(1 + hits) / (1 + permutations)``).
    Pairs with a NaN on either side are dropped.

    Args:
        a: Per-subject values of the first model.
        b: Per-subject values of the second model, same subjects and order.
        seed: Seed of the Monte Carlo flips and of the bootstrap.
        resamples: Bootstrap resamples of the CI of the mean difference.
        permutations: Random sign flips when ``n`` is large.

    Example:
        >>> result = paired_test([0.9, 0.8, 0.85], [0.7, 0.6, 0.8])
        >>> round(result.mean_difference, 3), result.p_value, result.method
        (0.15, 0.25, 'exact')
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f'a and b must be 1-D of equal length, not {a.shape}, {b.shape}'
        )
    difference = a - b
    difference = difference[np.isfinite(difference)]
    n = difference.size
    if n == 0:
        empty = Estimate(math.nan, math.nan, math.nan, 0)
        return PairedTest(math.nan, empty, math.nan, 0, 'none')
    observed = abs(difference.mean())
    # Differences equal up to rounding count as ties (sums in another order).
    tolerance = 1e-12 * max(1.0, float(np.abs(difference).max()))
    if n <= EXACT_MAX_SUBJECTS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        means = np.abs(signs @ difference) / n
        p_value = float((means >= observed - tolerance).mean())
        method = 'exact'
    else:
        rng = np.random.default_rng(seed)
        hits = 0
        for start in range(0, permutations, 1000):
            size = min(1000, permutations - start)
            signs = rng.choice((-1.0, 1.0), size=(size, n))
            hits += int((np.abs(signs @ difference) / n >= observed - tolerance).sum())
        p_value = (1 + hits) / (1 + permutations)
        method = 'monte-carlo'
    indices = bootstrap_indices(n, resamples, seed)
    estimate = pooled_mean(difference[:, None], indices)
    return PairedTest(float(difference.mean()), estimate, p_value, n, method)
