"""Stages, strategies, laterality and normalisation: what each one contains."""

from __future__ import annotations

import collections
import copy
import math

import numpy as np
import pytest
import torch
import torchio as tio

import torchio_ramp as tr
from tests.conftest import make_subject


def _history_names(transform: tio.Transform, subject: tio.Subject, seed: int) -> list:
    torch.manual_seed(seed)
    return [t.name for t in transform(subject).history]


def test_ramp_applies_stages_in_equation_one_order(subject):
    ramp = tr.Ramp(p_corrupt=1.0)
    for stage in ramp.transforms[1].transforms:  # every intensity op
        stage.probability = 1.0
    ramp.transforms[0].transforms[1].probability = 1.0  # elastic
    names = _history_names(ramp, subject, seed=1)
    spatial = {'LateralityFlip', 'DenseElastic'}
    kinds = ['s' if n in spatial else 'i' if n == 'CTIntensity' else 'c' for n in names]
    assert kinds == sorted(kinds, key='sic'.index)
    assert kinds.count('i') == 5 and 2 <= kinds.count('c') <= 4


def test_ramp_copies_the_subject_once_and_no_voxels(subject, monkeypatch):
    from torchio_ramp.transforms import shell

    copies = collections.Counter()
    deepcopy = copy.deepcopy
    structure_copy = shell.structure_copy

    def counting_deepcopy(obj, *args, **kwargs):
        copies[type(obj).__name__] += 1
        return deepcopy(obj, *args, **kwargs)

    def counting_structure_copy(obj):
        copies['structure'] += 1
        return structure_copy(obj)

    monkeypatch.setattr(copy, 'deepcopy', counting_deepcopy)
    monkeypatch.setattr(shell, 'structure_copy', counting_structure_copy)
    images = subject.get_images_dict(intensity_only=False)
    before = {name: image.data.clone() for name, image in images.items()}
    torch.manual_seed(0)
    out = tr.Ramp(p_corrupt=1.0)(subject)
    assert copies['structure'] == 1
    assert copies['Subject'] == copies['ScalarImage'] == copies['LabelMap'] == 0
    assert copies['Tensor'] == 0  # no deep copy of the voxels
    # the caller's subject is untouched and shares no voxels with the result
    for name, data in before.items():
        assert torch.equal(subject[name].data, data)
        assert out[name].data.data_ptr() != subject[name].data.data_ptr()


def test_intensity_stage_uses_table_one_probabilities(subject):
    stage = tr.RampIntensity()
    expected = {name: op.probability for name, op in tr.INTENSITY_OPERATIONS.items()}
    assert {t.operator.name: t.probability for t in stage.transforms} == expected
    draws = 1500
    torch.manual_seed(0)
    tiny = make_subject(shape=(4, 4, 4))
    counts = collections.Counter()
    for _ in range(draws):
        counts.update(t.operation for t in stage(tiny).history)
    for name, p in expected.items():
        standard_error = math.sqrt(p * (1 - p) / draws)
        assert abs(counts[name] / draws - p) <= 5 * standard_error, name


def test_spatial_stage_flips_each_axis_with_probability_one_half():
    stage = tr.RampSpatial(elastic_probability=0.0)
    tiny = make_subject(shape=(4, 4, 4))
    torch.manual_seed(0)
    draws = 1500
    counts = collections.Counter()
    for _ in range(draws):
        for t in stage(tiny).history:
            counts.update(t.axes)
    standard_error = math.sqrt(0.25 / draws)
    for axis in range(3):
        assert abs(counts[axis] / draws - 0.5) <= 5 * standard_error


def test_paper_elastic_setting_is_a_mild_deformation():
    displacement = tr.kernels.elastic_displacement(
        (64, 64, 64), alpha=80, sigma=10, generator=torch.Generator().manual_seed(0)
    )
    std = float(displacement.std())
    assert 0.1 < std < 0.4  # ~0.22 voxels: alpha 80 / sigma 10 is "mild"


@pytest.mark.parametrize(
    ('name', 'stage_types'),
    [
        ('baseline', []),
        ('intensity', ['RandomCTIntensity'] * 5),
        ('geometric', ['RandomLateralityFlip', 'RandomDenseElastic']),
        ('corruption', ['RampCorrupt']),
        ('spatial_intensity', ['RampSpatial', 'RampIntensity']),
        ('intensity_corruption', ['RampIntensity', 'RampCorrupt']),
        ('ramp', ['RampSpatial', 'RampIntensity', 'RampCorrupt']),
        ('full', ['RampSpatial', 'RampIntensity', 'RampCorrupt']),
    ],
)
def test_strategies_contain_what_they_document(name, stage_types):
    transform = tr.strategy(name)
    children = getattr(transform, 'transforms', [])
    assert [type(t).__name__ for t in children] == stage_types


def test_artifact_strategy_draws_one_artifact_family():
    transform = tr.strategy('artifact')
    assert transform.probability == 0.5
    assert set(transform.families) == {
        'motion_blur',
        'bias_field',
        'ghosting',
        'stripe',
    }
    torch.manual_seed(0)
    assert {len(transform.get_params()) for _ in range(50)} == {1}


def test_ablation_overrides_reach_the_sampler():
    loco = tr.strategy('ramp', exclude_families=['motion_blur'])
    assert 'motion_blur' not in loco.transforms[-1].families
    fixed_k = tr.strategy('ramp', num_corruptions=3)
    assert fixed_k.transforms[-1].num_corruptions == (3, 3)
    low_p = tr.strategy('ramp', p_corrupt=0.3)
    assert low_p.transforms[-1].probability == 0.3


def test_baseline_leaves_the_subject_unchanged(subject):
    out = tr.strategy('baseline')(subject)
    assert torch.equal(out.ct.data, subject.ct.data)


def _lateral_subject(orientation_flip: bool) -> tio.Subject:
    """Left kidney (2) on the patient's left side, right kidney (3) on the right."""
    label = torch.zeros(1, 8, 4, 4, dtype=torch.uint8)
    label[0, :2] = 2  # RAS: x grows towards the patient's right
    label[0, -2:] = 3
    affine = np.eye(4)
    if orientation_flip:  # LAS storage: the first axis now points to the left
        affine[0, 0] = -1
        label = label.flip(1)
    return tio.Subject(seg=tio.LabelMap(tensor=label, affine=affine))


@pytest.mark.parametrize('orientation_flip', [False, True])
def test_flipping_left_right_swaps_kidneys(orientation_flip):
    subject = _lateral_subject(orientation_flip)
    flipped = tr.LateralityFlip(axes=('LR',), label_pairs={2: 3})(subject)
    # After a left-right mirror the anatomy is still "left kidney on the left"
    assert torch.equal(flipped.seg.data, subject.seg.data)


def test_flipping_another_axis_does_not_swap():
    subject = _lateral_subject(False)
    flipped = tr.LateralityFlip(axes=(1,), label_pairs={2: 3})(subject)
    assert torch.equal(flipped.seg.data, subject.seg.data.flip(2))


def test_lateral_axis_is_read_from_the_orientation():
    affine = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    image = tio.LabelMap(
        tensor=torch.zeros(1, 2, 3, 4, dtype=torch.uint8), affine=affine
    )
    assert image.orientation == ('A', 'S', 'R')
    assert tr.transforms.laterality.lateral_axis(image) == 2


def test_ct_normalize_maps_the_window_to_unit_range():
    hu = torch.tensor([-1024.0, -200.0, 50.0, 300.0, 3000.0]).reshape(1, 5, 1, 1)
    out = tr.CTNormalize(hu_range=(-200, 300))(tio.ScalarImage(tensor=hu))
    assert out.data.flatten().tolist() == pytest.approx([0, 0, 0.5, 1, 1])
    assert out.data.dtype == torch.float32


def test_ct_normalize_then_ramp_on_hounsfield_units():
    subject = tio.Subject(
        ct=tio.ScalarImage(tensor=torch.randint(-1024, 2000, (1, 16, 16, 8))),
        seg=tio.LabelMap(tensor=torch.randint(0, 6, (1, 16, 16, 8))),
    )
    torch.manual_seed(0)
    out = tio.Compose([tr.CTNormalize(), tr.Ramp()])(subject)
    assert 0 <= float(out.ct.data.min()) <= float(out.ct.data.max()) <= 1


def test_ct_normalize_equals_torchio_clamp_then_rescale():
    hu = torch.randint(-1500, 3000, (1, 12, 10, 8), dtype=torch.int16)
    subject = tio.Subject(ct=tio.ScalarImage(tensor=hu))
    reference = tio.Compose(
        [
            tio.Clamp(-160, 240),
            tio.RescaleIntensity(out_min_max=(0, 1), in_min_max=(-160, 240)),
        ]
    )
    ours = tr.CTNormalize(hu_range=(-160, 240))(subject)
    torch.testing.assert_close(ours.ct.data, reference(subject).ct.data)
    assert [t.name for t in ours.history] == ['CTNormalize']


@pytest.mark.parametrize(
    'build',
    [
        lambda **kw: tr.RampCorrupt(p=1, num_corruptions=3, **kw),
        lambda **kw: tr.Ramp(p_corrupt=1.0, **kw),
        lambda **kw: tr.RandomGaussianNoise(**kw),
    ],
)
def test_keep_stores_the_original_once(build, subject):
    transform = build(keep={'ct': 'ct_original'})
    torch.manual_seed(0)
    out = transform(subject)
    assert torch.equal(out.ct_original.data, subject.ct.data)
    assert not torch.equal(out.ct.data, subject.ct.data)
    assert [name for name in out if name.startswith('ct')] == ['ct', 'ct_original']
