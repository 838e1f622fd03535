"""The corruption test protocol: seeds, laziness, oracle and degradation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torchio as tio

from torchio_ramp import Corruption
from torchio_ramp import CTNormalize
from torchio_ramp.families import FAMILY_NAMES
from torchio_ramp.families import PAPER_FAMILIES
from torchio_ramp.labels import CLASS_NAMES
from torchio_ramp.operators import SEVERITY_LEVELS
from torchio_ramp.phantoms import phantom_subject
from torchio_ramp.stress.protocol import Setting
from torchio_ramp.stress.protocol import StressProtocol
from torchio_ramp.stress.protocol import setting_seed
from torchio_ramp.stress.runner import evaluate_subject
from torchio_ramp.stress.runner import results_from_rows

SMALL = StressProtocol(families=['gaussian_noise', 'stripe', 'blur'], levels=[0.1, 0.2])


@pytest.fixture(scope='module')
def phantom() -> tio.Subject:
    return phantom_subject((16, 16, 16), seed=4)


def test_default_grid_is_the_papers_pool_at_five_levels():
    protocol = StressProtocol()
    assert len(protocol.corrupted_settings) == len(PAPER_FAMILIES) * 5
    assert protocol.families == PAPER_FAMILIES
    assert protocol.settings[0] == Setting.clean()
    assert {s.family for s in protocol.corrupted_settings} == set(FAMILY_NAMES)
    assert sorted({s.level for s in protocol.corrupted_settings}) == [
        0.05,
        0.1,
        0.15,
        0.2,
        0.25,
    ]


def test_setting_seed_is_stable_and_distinguishes_every_part():
    seed = setting_seed(0, 's0001', 'blur', 0.05)
    assert seed == 8984647872288268648  # sha256-based: the same in any process
    assert 0 <= seed < 2**63
    others = {
        setting_seed(1, 's0001', 'blur', 0.05),
        setting_seed(0, 's0002', 'blur', 0.05),
        setting_seed(0, 's0001', 'stripe', 0.05),
        setting_seed(0, 's0001', 'blur', 0.1),
    }
    assert seed not in others and len(others) == 4


def test_volume_equals_corruption_transform_of_normalised_ct(phantom):
    protocol = StressProtocol(hu_range=(-150, 250))
    image = protocol.normalize(phantom)
    normalised = CTNormalize(hu_range=(-150, 250))(phantom)
    assert torch.equal(image, normalised.ct.data)
    for family in FAMILY_NAMES:
        setting = Setting(family, 0.15)
        seed = protocol.seed_of(phantom.subject_id, setting)
        expected = Corruption(family, level=0.15, seed=seed)(normalised).ct.data
        assert torch.equal(
            protocol.corrupt(image, phantom.subject_id, setting), expected
        )


def test_same_setting_same_volume_in_any_order(phantom):
    protocol = StressProtocol()
    image = protocol.normalize(phantom)
    forward = dict(protocol.volumes(image, 'p1'))
    reverse = dict(protocol.volumes(image, 'p1', settings=protocol.settings[::-1]))
    # A shard that only sees some settings, after other subjects
    for _ in protocol.volumes(image, 'other'):
        pass
    subset = dict(protocol.volumes(image, 'p1', settings=protocol.settings[40:45]))
    for setting, volume in forward.items():
        assert torch.equal(volume, reverse[setting])
        if setting in subset:
            assert torch.equal(volume, subset[setting])


def test_different_settings_and_subjects_differ(phantom):
    protocol = StressProtocol()
    image = protocol.normalize(phantom)
    volumes = dict(protocol.volumes(image, 'p1'))
    assert torch.equal(volumes[Setting.clean()], image)
    for a, b in itertools.combinations(protocol.corrupted_settings, 2):
        assert not torch.equal(volumes[a], volumes[b]), (a, b)
    for setting in protocol.corrupted_settings:
        assert not torch.equal(volumes[setting], image), setting
    # Random families draw other numbers for another subject or base seed
    noise = Setting('gaussian_noise', 0.1)
    other_subject = protocol.corrupt(image, 'p2', noise)
    other_seed = StressProtocol(seed=1).corrupt(image, 'p1', noise)
    assert not torch.equal(volumes[noise], other_subject)
    assert not torch.equal(volumes[noise], other_seed)


def test_volumes_are_made_one_at_a_time(phantom, monkeypatch):
    protocol = StressProtocol()
    image = protocol.normalize(phantom)
    made = []
    original = StressProtocol.corrupt

    def counting(self, *args):
        made.append(args[-1])
        return original(self, *args)

    monkeypatch.setattr(StressProtocol, 'corrupt', counting)
    volumes = protocol.volumes(image, 'p1')
    assert made == []
    next(volumes)
    next(volumes)
    assert len(made) == 2


def test_clean_volume_is_a_copy(phantom):
    protocol = StressProtocol()
    image = protocol.normalize(phantom)
    clean = protocol.corrupt(image, 'p1', Setting.clean())
    clean.zero_()  # a predictor that works in place
    assert image.max() > 0


@pytest.mark.parametrize(
    ('arguments', 'match'),
    [
        ({'families': ['gaussian_noise', 'fog']}, "unknown corruption family 'fog'"),
        ({'levels': [0.1, 0.1]}, 'repeated'),
        ({'levels': [0.0]}, 'positive'),
        ({'levels': []}, 'at least one'),
        ({'seed': -1}, 'seed'),
        ({'hu_range': (300, -200)}, 'hu_range'),
    ],
)
def test_protocol_rejects_bad_arguments(arguments, match):
    with pytest.raises(ValueError, match=match):
        StressProtocol(**arguments)


def test_oracle_scores_one_on_the_full_grid(phantom):
    label = phantom.label.data[0]
    protocol = StressProtocol()
    rows = evaluate_subject(lambda image: label, phantom, protocol)
    assert len(rows) == len(protocol.settings) * len(CLASS_NAMES)
    assert len(protocol.settings) == 1 + len(PAPER_FAMILIES) * len(SEVERITY_LEVELS)
    assert {row['dice'] for row in rows} == {1.0}
    assert {row['abs_volume_error_ml'] for row in rows} == {0.0}
    results = results_from_rows(rows, protocol)
    assert np.all(results.subject_dice() == 1.0)


def test_rows_record_volumes_in_ml_from_the_spacing():
    subject = phantom_subject((16, 16, 16), spacing=(2.0, 1.5, 3.0), seed=1)
    label = subject.label.data[0]
    empty = torch.zeros_like(label)
    rows = evaluate_subject(lambda image: empty, subject, SMALL)
    liver = next(r for r in rows if r['family'] == 'clean' and r['class_id'] == 1)
    voxels = int((label == 1).sum())
    assert liver['gt_voxels'] == voxels and liver['pred_voxels'] == 0
    assert liver['gt_ml'] == pytest.approx(voxels * 2.0 * 1.5 * 3.0 / 1000)
    assert liver['abs_volume_error_ml'] == pytest.approx(liver['gt_ml'])
    assert liver['dice'] == 0.0


def test_not_annotated_classes_are_kept_but_excluded(phantom):
    label = phantom.label.data[0]
    heart_only = torch.where(label == 4, 4, 0)
    rows = evaluate_subject(
        lambda image: heart_only, phantom, SMALL, annotated=[1, 2, 3]
    )
    heart = [r for r in rows if r['class_id'] == 4]
    assert all(r['dice'] == 1.0 and not r['annotated'] for r in heart)
    results = results_from_rows(rows, SMALL, annotated=[1, 2, 3])
    # liver, spleen, kidney are missed (0); the perfect heart does not count
    assert np.all(results.subject_dice() == 0.0)


def test_prediction_shape_mismatch_names_the_subject(phantom):
    with pytest.raises(ValueError, match=r"subject 'phantom0004', setting clean"):
        evaluate_subject(
            lambda image: torch.zeros(4, 4, 4, dtype=torch.long), phantom, SMALL
        )
    with pytest.raises(TypeError, match='integer label map'):
        evaluate_subject(lambda image: image[0], phantom, SMALL)


def kidney_band(image: torch.Tensor) -> torch.Tensor:
    """Threshold 'model': kidney (150 HU) where 100-200 HU, i.e. 0.6-0.8 of the
    (-200, 300) window. Phantom kidneys are the only tissue in that band."""
    x = image[0]
    return torch.where((x > 0.6) & (x < 0.8), 3, 0)


@pytest.mark.parametrize(
    'family', ['gaussian_noise', 'rician_noise', 'speckle_noise', 'salt_pepper']
)
def test_threshold_predictor_degrades_with_noise_severity(family):
    protocol = StressProtocol(families=[family])
    rows = []
    for seed in range(3):
        subject = phantom_subject((24, 24, 24), seed=seed)
        rows += evaluate_subject(
            kidney_band, subject, protocol, class_names={3: 'kidney'}
        )
    results = results_from_rows(rows, protocol, class_names={3: 'kidney'})
    means = list(results.setting_dice().values())
    clean, per_level = means[0], means[1:]
    assert clean > 0.95
    # Expected Dice falls with every level. Each level's mean over 3 phantoms
    # (~80 kidney voxels each) has a Monte Carlo spread of about 0.02 (the
    # binomial loss of voxels under salt-and-pepper, sqrt(p (1 - p) / 80) /
    # sqrt(3)); consecutive levels may therefore invert by at most 0.05
    # (~2.5 sigma of a difference) while the trend must be a real drop.
    assert per_level[0] <= clean + 0.05
    for lower, higher in itertools.pairwise(per_level):
        assert higher <= lower + 0.05, per_level
    # The smallest expected drop is salt-and-pepper's: a hit kidney voxel leaves
    # the band, so Dice = 2 (1 - p) / (2 - p), 0.99 at p = 0.02 (level 0.05)
    # and 0.89 at p = 0.2 (level 0.25): a drop of 0.10, at 5 spreads of 0.02.
    assert per_level[-1] < per_level[0] - 0.05, per_level
