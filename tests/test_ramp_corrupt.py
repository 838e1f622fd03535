"""Statistics of the multi-corruption sampler over thousands of seeded draws.

Tolerances come from the sampling distributions: a proportion is accepted
within 5 binomial standard errors (two-sided false-alarm rate ~6e-7 per
check), a distribution by a chi-square test at the 1e-6 level. The draws are
seeded, so the tests are deterministic.
"""

from __future__ import annotations

import collections
import math

import pytest
import torch
import torchio as tio
from scipy import stats

import torchio_ramp as tr

DRAWS = 3000
Z = 5.0


def _within_binomial(successes: int, trials: int, p: float) -> bool:
    standard_error = math.sqrt(p * (1 - p) / trials)
    return abs(successes / trials - p) <= Z * standard_error


def _uniform_by_chi_square(counts: collections.Counter, categories: list) -> bool:
    observed = [counts[c] for c in categories]
    return stats.chisquare(observed).pvalue > 1e-6


def _draw(transform: tr.RampCorrupt, n: int, seed: int = 0) -> list[list[str]]:
    torch.manual_seed(seed)
    return [transform.get_params() for _ in range(n)]


def test_application_rate_is_p():
    subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.full((1, 2, 2, 2), 0.5)))
    transform = tr.RampCorrupt()  # p = 0.85
    torch.manual_seed(0)
    applied = sum(bool(transform(subject).history) for _ in range(DRAWS))
    assert _within_binomial(applied, DRAWS, 0.85)


def test_number_of_corruptions_is_uniform_over_two_to_four():
    draws = _draw(tr.RampCorrupt(), DRAWS)
    counts = collections.Counter(len(d) for d in draws)
    assert set(counts) == {2, 3, 4}
    assert _uniform_by_chi_square(counts, [2, 3, 4])


def test_families_are_sampled_without_replacement_and_uniformly():
    draws = _draw(tr.RampCorrupt(), DRAWS)
    assert all(len(set(d)) == len(d) for d in draws)
    counts = collections.Counter(f for d in draws for f in d)
    assert set(counts) == set(tr.FAMILY_NAMES)  # every family reachable
    assert _uniform_by_chi_square(counts, list(tr.FAMILY_NAMES))
    # each family appears in a draw with probability E[k] / pool size
    for family in tr.FAMILY_NAMES:
        assert _within_binomial(counts[family], DRAWS, 3 / len(tr.FAMILY_NAMES))


def test_order_of_application_is_random():
    draws = _draw(tr.RampCorrupt(num_corruptions=2), DRAWS)
    first = collections.Counter(d[0] for d in draws)
    assert _uniform_by_chi_square(first, list(tr.FAMILY_NAMES))


def test_excluded_families_are_never_drawn():
    excluded = ['salt_pepper', 'compound']
    draws = _draw(tr.RampCorrupt(exclude_families=excluded), DRAWS)
    counts = collections.Counter(f for d in draws for f in d)
    assert not set(excluded) & set(counts)
    assert set(counts) == set(tr.FAMILY_NAMES) - set(excluded)


@pytest.mark.parametrize('k', [1, 3, len(tr.FAMILY_NAMES)])
def test_fixed_k(k):
    draws = _draw(tr.RampCorrupt(num_corruptions=k), 200)
    assert {len(d) for d in draws} == {k}


def test_applied_corruptions_are_recorded_in_order():
    subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.full((1, 4, 4, 4), 0.5)))
    transform = tr.RampCorrupt(p=1)
    torch.manual_seed(3)
    out = transform(subject)
    recorded = [t.family for t in out.history]
    torch.manual_seed(3)
    torch.rand(1)  # the draw TorchIO makes to decide whether to apply
    assert recorded == transform.get_params()


def test_restricted_pool_and_custom_ranges():
    transform = tr.RampCorrupt(
        p=1,
        num_corruptions=1,
        families=['gaussian_noise'],
        ranges={'gaussian_noise': {'std': (0.3, 0.3)}},
    )
    subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.full((1, 16, 16, 16), 0.5)))
    out = transform(subject)
    (applied,) = out.history
    assert applied.parameters['ct']['std'] == pytest.approx(0.3)
