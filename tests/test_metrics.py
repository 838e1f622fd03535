"""Per-volume metrics: every column of a results row, and how a metric plugs in."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchio_ramp.metrics import VOLUME_METRICS
from torchio_ramp.metrics import Volume
from torchio_ramp.metrics import dice_per_class
from torchio_ramp.metrics import metric_columns
from torchio_ramp.metrics import score_volume
from torchio_ramp.stress.store import COLUMNS
from torchio_ramp.stress.store import ROW_KEYS


def test_score_volume_hand_computed():
    # class 1: 3 reference voxels, 2 predicted, 1 shared; class 2: only predicted;
    # class 3: absent from both. Voxels of 2 x 1 x 0.5 mm = 0.001 mL.
    target = torch.tensor([[[1, 1, 1, 0, 0, 0]]])
    prediction = torch.tensor([[[1, 0, 0, 1, 2, 0]]])
    scores = score_volume(prediction, target, [1, 2, 3], spacing=(2.0, 1.0, 0.5))
    assert scores[1] == {
        'dice': 2 * 1 / (3 + 2),
        'gt_voxels': 3,
        'pred_voxels': 2,
        'intersection_voxels': 1,
        'gt_ml': 0.003,
        'pred_ml': 0.002,
        'abs_volume_error_ml': pytest.approx(0.001),
    }
    assert scores[2]['dice'] == 0.0 and scores[2]['pred_ml'] == 0.001
    assert math.isnan(scores[3]['dice']) and scores[3]['abs_volume_error_ml'] == 0.0


def test_score_volume_dice_matches_dice_per_class_on_random_volumes():
    generator = torch.Generator().manual_seed(3)
    target = torch.randint(0, 6, (9, 8, 7), generator=generator, dtype=torch.uint8)
    prediction = torch.randint(0, 6, (9, 8, 7), generator=generator)
    scores = score_volume(prediction, target, range(1, 6))
    expected = dice_per_class(prediction, target, range(1, 6))
    assert {c: s['dice'] for c, s in scores.items()} == expected
    for c in range(1, 6):
        assert scores[c]['gt_voxels'] == int((target == c).sum())
        assert scores[c]['gt_ml'] == int((target == c).sum()) * 0.001  # count x mL


def test_the_results_columns_are_the_row_keys_then_the_metric_columns():
    assert ROW_KEYS + metric_columns(VOLUME_METRICS) == COLUMNS
    assert metric_columns()[:1] == ('dice',)


class FalsePositiveVoxels:
    """A made-up extra metric: predicted voxels outside the reference class."""

    columns = ('fp_voxels',)

    def __call__(self, volume: Volume) -> dict[str, list[int]]:
        counts = volume.counts
        return {'fp_voxels': [int(v) for v in counts.predicted - counts.intersection]}


def test_a_new_metric_plugs_in_as_one_object():
    target = np.array([1, 1, 0, 0])
    prediction = np.array([1, 0, 1, 1])
    metrics = (*VOLUME_METRICS, FalsePositiveVoxels())
    scores = score_volume(prediction, target, [1], metrics=metrics)
    assert scores[1]['fp_voxels'] == 2
    assert metric_columns(metrics)[-1] == 'fp_voxels'


class Broken:
    columns = ('broken',)

    def __call__(self, volume: Volume) -> dict[str, list[float]]:
        return {'broken': [1.0]}  # one value, but two classes


def test_a_metric_giving_the_wrong_number_of_values_is_named():
    with pytest.raises(ValueError, match=r"Broken gave 1 values of 'broken' for 2"):
        score_volume(np.array([1, 2]), np.array([1, 2]), [1, 2], metrics=[Broken()])
