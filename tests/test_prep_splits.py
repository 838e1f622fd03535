"""The split rule: sizes, determinism, exact fractions (ids only, no images)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ramp_prep.splits import cohort_digest
from ramp_prep.splits import compute_split
from ramp_prep.splits import parse_fractions
from ramp_prep.splits import split_of
from ramp_prep.splits import split_sizes

TOTALSEG_IDS = [f's{i:04d}' for i in range(1, 1229)]
ABDOMEN_IDS = [f'Case_{i:05d}' for i in range(1, 1001)]


def test_paper_split_sizes():
    assert split_sizes(1228) == (859, 184, 185)
    assert split_sizes(1000) == (700, 150, 150)
    assert split_sizes(7) == (4, 1, 2)
    assert split_sizes(0) == (0, 0, 0)


def test_1228_ids_give_859_184_185_partitioning_the_cohort():
    split = compute_split(TOTALSEG_IDS, seed=42)
    assert [len(split[n]) for n in ('train', 'val', 'test')] == [859, 184, 185]
    together = split['train'] + split['val'] + split['test']
    assert sorted(together) == TOTALSEG_IDS
    for name in ('train', 'val', 'test'):
        assert split[name] == sorted(split[name])


def test_split_is_pinned_for_seed_42():
    # The exact membership is part of the contract: the same ids must give
    # the same split on every platform and release. If this fails after a
    # NumPy upgrade, Generator.permutation changed and every split would move.
    split = compute_split(TOTALSEG_IDS, seed=42)
    assert split['test'][:5] == ['s0006', 's0014', 's0033', 's0035', 's0038']
    assert cohort_digest(split['test']) == (
        '0663553ead26fa73c6a277e09b4a42abeb955965ff6d93cbed60cc4ebbf70607'
    )
    assert cohort_digest(split['val']) == (
        '4f53543dc0eae0a889854c26e847f55cef762d3ef480e7767e60d6af853073fe'
    )
    abdomen = compute_split(ABDOMEN_IDS, seed=42)
    assert [len(abdomen[n]) for n in ('train', 'val', 'test')] == [700, 150, 150]
    assert abdomen['test'][:3] == ['Case_00002', 'Case_00006', 'Case_00011']


def test_split_depends_only_on_the_id_set_and_seed():
    shuffled = TOTALSEG_IDS.copy()
    random.Random(0).shuffle(shuffled)
    assert compute_split(shuffled, 42) == compute_split(TOTALSEG_IDS, 42)
    assert compute_split(tuple(TOTALSEG_IDS), 42) == compute_split(TOTALSEG_IDS, 42)
    np.random.seed(0)  # the global NumPy RNG plays no part
    assert compute_split(TOTALSEG_IDS, 42) == compute_split(TOTALSEG_IDS, 42)
    assert (
        compute_split(TOTALSEG_IDS, 7)['test']
        != compute_split(TOTALSEG_IDS, 42)['test']
    )


def test_split_of_inverts_and_repeated_ids_are_rejected():
    split = compute_split(['a', 'b', 'c', 'd'], 42, (0.5, 0.25, 0.25))
    inverse = split_of(split)
    assert sorted(inverse) == ['a', 'b', 'c', 'd']
    assert sorted(inverse.values()) == ['test', 'train', 'train', 'val']
    with pytest.raises(ValueError, match=r"repeated: \['b'\]"):
        compute_split(['a', 'b', 'b'])


@pytest.mark.parametrize(
    ('text', 'n', 'sizes'),
    [
        ('0.7,0.15,0.15', 1000, (700, 150, 150)),
        ('0.8,0.1,0.1', 10, (8, 1, 1)),
        ('0.6,0.2,0.2', 5, (3, 1, 1)),
        ('0,0,1', 1000, (0, 0, 1000)),
        ('0.29,0.71,0', 100, (29, 71, 0)),  # 0.29 * 100 is 28.999... in floats
    ],
)
def test_fractions_are_exact_decimals(text, n, sizes):
    assert split_sizes(n, parse_fractions(text)) == sizes


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('0.7,0.3', 'expected three fractions'),
        ('0.7,0.2,0.2', 'must sum to 1'),
        ('1.2,-0.1,-0.1', 'between 0 and 1'),
        ('a,b,c', 'must be numbers'),
    ],
)
def test_bad_fractions_are_explained(text, message):
    with pytest.raises(ValueError, match=message):
        parse_fractions(text)
