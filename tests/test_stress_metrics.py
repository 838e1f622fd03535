"""Stress-test metrics on hand-computed toy cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchio_ramp.metrics import dice_per_class
from torchio_ramp.metrics import overlap_counts
from torchio_ramp.metrics import subject_dice
from torchio_ramp.stress.statistics import EXACT_MAX_SUBJECTS
from torchio_ramp.stress.statistics import bootstrap_indices
from torchio_ramp.stress.statistics import corruption_error
from torchio_ramp.stress.statistics import paired_test
from torchio_ramp.stress.statistics import pooled_mean
from torchio_ramp.stress.statistics import robustness

NAN = math.nan


def same(a: dict[int, float], b: dict[int, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k])
        for k in a
    )


def test_dice_conventions_hand_computed():
    # class 1: target 4 voxels, prediction 2 of them + 1 extra -> 2*2/(4+3)
    # class 2: target empty, predicted 1 voxel -> 0
    # class 3: both empty -> NaN
    # class 4: in target, not predicted -> 0
    # class 5: not annotated by the dataset -> NaN although it overlaps
    target = torch.tensor([1, 1, 1, 1, 0, 0, 4, 5, 0])
    prediction = torch.tensor([1, 1, 0, 0, 1, 2, 0, 5, 0])
    dice = dice_per_class(prediction, target, [1, 2, 3, 4, 5], annotated=[1, 2, 3, 4])
    assert same(dice, {1: 4 / 7, 2: 0.0, 3: NAN, 4: 0.0, 5: NAN})
    assert subject_dice(dice) == pytest.approx((4 / 7 + 0 + 0) / 3)
    everything = dice_per_class(prediction, target, [5])
    assert everything == {5: 1.0}


def test_overlap_counts_match_per_class_loop_on_random_volumes():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (7, 9, 11), generator=generator, dtype=torch.uint8)
    prediction = torch.randint(0, 6, (7, 9, 11), generator=generator)  # int64
    counts = overlap_counts(prediction, target, range(1, 6))
    for i, c in enumerate(range(1, 6)):
        assert counts.target[i] == int((target == c).sum())
        assert counts.predicted[i] == int((prediction == c).sum())
        assert counts.intersection[i] == int(((target == c) & (prediction == c)).sum())


def test_overlap_counts_large_label_values_and_numpy_input():
    # 300 labels need a 32-bit code (300 ** 2 codes); NumPy arrays are accepted
    target = np.array([299, 299, 0, 17], dtype=np.int32)
    prediction = np.array([299, 0, 0, 17], dtype=np.int64)
    counts = overlap_counts(prediction, target, [17, 299])
    assert counts.target.tolist() == [1, 2]
    assert counts.predicted.tolist() == [1, 1]
    assert counts.intersection.tolist() == [1, 1]


def test_overlap_counts_does_not_modify_inputs():
    target = torch.tensor([1, 2, 0], dtype=torch.uint8)
    prediction = torch.tensor([1, 1, 0], dtype=torch.uint8)
    overlap_counts(prediction, target, [1, 2])
    assert target.tolist() == [1, 2, 0] and prediction.tolist() == [1, 1, 0]


@pytest.mark.parametrize(
    ('prediction', 'target', 'error', 'match'),
    [
        (torch.zeros(3, 4), torch.zeros(3, 4, dtype=torch.long), TypeError, 'integer'),
        (
            torch.zeros(3, dtype=torch.long),
            torch.zeros(4, dtype=torch.long),
            ValueError,
            'shape',
        ),
        (torch.tensor([-1]), torch.tensor([0]), ValueError, 'negative'),
    ],
)
def test_overlap_counts_rejects_bad_input(prediction, target, error, match):
    with pytest.raises(error, match=match):
        overlap_counts(prediction, target, [1])


def test_subject_dice_all_excluded_is_nan():
    assert math.isnan(subject_dice({1: NAN, 2: NAN}))


def test_robustness_hand_computed():
    # Columns: clean, then three corrupted settings. Subject 3 has one
    # excluded setting (NaN), which is left out of its minimum and the mean.
    values = np.array(
        [
            [0.9, 0.8, 0.4, 0.6],
            [0.7, 0.7, 0.5, 0.3],
            [0.8, NAN, 0.2, 0.8],
        ]
    )
    result = robustness(values, bootstrap_indices(3, 500, seed=1))
    clean = (0.9 + 0.7 + 0.8) / 3
    corrupted = (0.8 + 0.4 + 0.6 + 0.7 + 0.5 + 0.3 + 0.2 + 0.8) / 8
    worst = (0.4 + 0.3 + 0.2) / 3  # per-subject minimum, then the mean
    assert result.clean.value == pytest.approx(clean)
    assert result.corrupted.value == pytest.approx(corrupted)
    assert result.gap.value == pytest.approx(clean - corrupted)
    assert result.worst_case.value == pytest.approx(worst)
    # Worst-case is NOT the minimum of the per-setting means
    assert result.worst_case.value != pytest.approx(min(0.75, 1.1 / 3, 1.7 / 3))
    for estimate in (result.clean, result.corrupted, result.worst_case):
        assert estimate.low <= estimate.value <= estimate.high
        assert estimate.n == 3
    assert 0.7 - 1e-12 <= result.clean.low < result.clean.high <= 0.9 + 1e-12


def test_bootstrap_interval_covers_and_shrinks_with_subjects():
    rng = np.random.default_rng(0)
    small = rng.uniform(0.5, 0.9, size=(10, 2))
    large = rng.uniform(0.5, 0.9, size=(400, 2))
    ci_small = pooled_mean(small, bootstrap_indices(10, 1000))
    ci_large = pooled_mean(large, bootstrap_indices(400, 1000))
    assert ci_large.low < 0.7 < ci_large.high
    assert ci_large.high - ci_large.low < (ci_small.high - ci_small.low) / 3


def test_bootstrap_is_seeded():
    values = np.random.default_rng(0).uniform(size=(20, 3))
    first = pooled_mean(values, bootstrap_indices(20, 300, seed=5))
    second = pooled_mean(values, bootstrap_indices(20, 300, seed=5))
    assert first == second


def test_mce_hand_computed():
    model = {('blur', 0.1): 0.9, ('blur', 0.2): 0.7, ('stripe', 0.1): 0.5}
    baseline = {('blur', 0.1): 0.8, ('blur', 0.2): 0.6, ('stripe', 0.1): 0.75}
    mce, per_family = corruption_error(model, baseline)
    assert per_family['blur'] == pytest.approx((0.1 + 0.3) / (0.2 + 0.4))
    assert per_family['stripe'] == pytest.approx(0.5 / 0.25)
    assert mce == pytest.approx((per_family['blur'] + per_family['stripe']) / 2)
    relative, per_family = corruption_error(
        model, baseline, model_clean=0.95, baseline_clean=0.9
    )
    assert per_family['blur'] == pytest.approx((0.05 + 0.25) / (0.1 + 0.3))
    assert per_family['stripe'] == pytest.approx(0.45 / 0.15)
    assert relative == pytest.approx((0.75 + 3.0) / 2)


def test_mce_undefined_when_baseline_is_perfect():
    mce, per_family = corruption_error({('blur', 0.1): 0.9}, {('blur', 0.1): 1.0})
    assert math.isnan(mce) and math.isnan(per_family['blur'])
    with pytest.raises(ValueError, match='same settings'):
        corruption_error({('blur', 0.1): 0.9}, {('blur', 0.2): 0.9})


def test_paired_test_exact_matches_scipy():
    stats = pytest.importorskip('scipy.stats')
    rng = np.random.default_rng(3)
    a = rng.uniform(0.6, 0.9, 9)
    b = a - rng.normal(0.03, 0.05, 9)
    result = paired_test(a, b)
    reference = stats.permutation_test(
        (a, b),
        lambda x, y: np.mean(x - y),
        permutation_type='samples',
        n_resamples=np.inf,
        alternative='two-sided',
    )
    assert result.method == 'exact'
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.mean_difference == pytest.approx(np.mean(a - b))


def test_paired_test_monte_carlo_detects_shift_and_not_noise():
    rng = np.random.default_rng(4)
    n = EXACT_MAX_SUBJECTS + 30
    a = rng.uniform(0.6, 0.9, n)
    shifted = paired_test(a + 0.05 + rng.normal(0, 0.02, n), a)
    null = paired_test(a + rng.normal(0, 0.02, n), a)
    assert shifted.method == 'monte-carlo'
    assert shifted.p_value < 0.001
    assert null.p_value > 0.01
    assert shifted.difference.low > 0


def test_paired_test_identical_models_p_is_one():
    values = [0.5, 0.6, 0.7]
    result = paired_test(values, values)
    assert result.p_value == 1.0 and result.mean_difference == 0.0


def test_compare_refuses_results_of_different_protocol_seeds():
    from torchio_ramp.stress.compare import compare
    from torchio_ramp.stress.protocol import Setting
    from torchio_ramp.stress.results import StressResults

    settings = [Setting.clean(), Setting('blur', 0.1), Setting('stripe', 0.2)]

    def run(model, seed):
        rows = [
            dict(
                subject_id='a',
                family=s.family,
                level=s.level,
                class_id=1,
                dice=0.9,
                gt_ml=10.0,
                pred_ml=9.0,
            )
            for s in settings
        ]
        return StressResults.from_rows(
            rows,
            settings,
            classes=[1],
            annotated=[1],
            model=model,
            dataset='d',
            synthetic=False,
            class_names={1: 'liver'},
            header={'arguments': {'seed': seed, 'hu_range': [-200, 300]}},
        )

    compare([run('a', 0), run('b', 0)])
    with pytest.raises(ValueError, match=r'a and b .* different seed \(0 vs 1\)'):
        compare([run('a', 0), run('b', 1)])
