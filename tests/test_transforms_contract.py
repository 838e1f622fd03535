"""The TorchIO contract, checked for every exported transform."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torchio as tio

import torchio_ramp as tr
from tests import catalogue
from tests.conftest import make_subject

NAMES = sorted(catalogue.ALL)
LABEL_SAFE = sorted({**catalogue.INTENSITY, **catalogue.NORMALIZATION})
SPATIAL = sorted(catalogue.SPATIAL)
CHANGES_IMAGE = sorted(set(NAMES) - {'CTNormalize'})


def _apply_seeded(transform: tio.Transform, data, seed: int = 0):
    torch.manual_seed(seed)
    return transform(data)


def test_catalogue_covers_every_exported_transform():
    exported = {
        name
        for name in tr.__all__
        if isinstance(getattr(tr, name), type)
        and issubclass(getattr(tr, name), tio.Transform)
    }
    covered = (set(NAMES) | set(catalogue.HU)) - set(catalogue.UNNAMED_FAMILIES)
    assert exported == covered - {n for n in catalogue.HU if n.endswith(']')}


def test_class_names_do_not_collide_with_torchio():
    # History replay looks transforms up by class name
    torchio_names = {
        name for name in dir(tio) if isinstance(getattr(tio, name), type)
    } | {cls.__name__ for cls in tio.Transform.__subclasses__()}
    assert not (set(NAMES) & torchio_names)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('kind', ['subject', 'image', 'tensor', 'array', 'sitk'])
def test_accepts_torchio_input_types(name, kind):
    subject = make_subject()
    tensor = subject.ct.data
    inputs = {
        'subject': subject,
        'image': subject.ct,
        'tensor': tensor,
        'array': tensor.numpy(),
        'sitk': subject.ct.as_sitk(),
    }
    data = inputs[kind]
    out = _apply_seeded(catalogue.build(name), data)
    assert type(out) is type(data)
    if kind == 'subject':
        values = out.ct.data
    elif kind == 'image':
        values = out.data
    elif kind == 'sitk':
        values = torch.as_tensor(sitk.GetArrayFromImage(out))
    else:
        values = torch.as_tensor(out)
    assert values.numel() == tensor.numel()
    assert float(values.min()) >= 0 and float(values.max()) <= 1


@pytest.mark.parametrize('name', NAMES)
def test_p_zero_is_a_no_op(name, subject):
    out = catalogue.build(name, p=0)(subject)
    assert torch.equal(out.ct.data, subject.ct.data)
    assert torch.equal(out.seg.data, subject.seg.data)
    assert out.history == []


@pytest.mark.parametrize('name', CHANGES_IMAGE)
def test_copy_leaves_the_input_intact(name, subject):
    before = copy.deepcopy(subject)
    out = _apply_seeded(catalogue.build(name), subject)
    assert not torch.equal(out.ct.data, subject.ct.data)
    assert torch.equal(subject.ct.data, before.ct.data)
    assert torch.equal(subject.seg.data, before.seg.data)
    assert subject.history == []


@pytest.mark.parametrize('name', LABEL_SAFE)
def test_label_maps_are_bit_identical(name, subject):
    out = _apply_seeded(catalogue.build(name), subject)
    assert out.seg.data.dtype == subject.seg.data.dtype
    assert torch.equal(out.seg.data, subject.seg.data)


def _label_probe(subject: tio.Subject) -> tio.Subject:
    """An image that encodes the label, to check both move together."""
    image_of_label = tio.ScalarImage(tensor=subject.seg.data.float() / 5)
    return tio.Subject(ct=image_of_label, seg=subject.seg)


def _decoded(image: tio.Image) -> torch.Tensor:
    return (image.data * 5).round().to(torch.uint8)


@pytest.mark.parametrize('name', SPATIAL)
def test_spatial_ops_move_labels_with_the_image(name, subject):
    transform = catalogue.build(name)
    if hasattr(transform, 'image_interpolation') or name == 'RampSpatial':
        # Nearest-neighbour images make the image/label relation exact
        transform = catalogue.build(name, image_interpolation='nearest')
    out = _apply_seeded(transform, _label_probe(subject), seed=2)
    assert not torch.equal(out.seg.data, subject.seg.data)
    assert out.seg.data.dtype == subject.seg.data.dtype
    original_values = set(subject.seg.data.unique().tolist())
    assert set(out.seg.data.unique().tolist()) <= original_values
    assert torch.equal(_decoded(out.ct), out.seg.data)


@pytest.mark.parametrize('seed', range(4))
def test_linear_elastic_keeps_labels_aligned(subject, seed):
    transform = tr.Ramp(intensity=False, corruption=False)
    transform.transforms[0].transforms[1].probability = 1.0  # always deform
    out = _apply_seeded(transform, _label_probe(subject), seed=seed)
    agreement = (_decoded(out.ct) == out.seg.data).float().mean()
    assert agreement > 0.9  # only boundary voxels blend linearly


@pytest.mark.parametrize('name', CHANGES_IMAGE)
def test_include_and_exclude_select_images(name):
    base = make_subject()
    subject = tio.Subject(ct=base.ct, pet=copy.deepcopy(base.ct), seg=base.seg)
    only_ct = _apply_seeded(catalogue.build(name, include=['ct', 'seg']), subject)
    assert not torch.equal(only_ct.ct.data, subject.ct.data)
    assert torch.equal(only_ct.pet.data, subject.pet.data)
    not_ct = _apply_seeded(catalogue.build(name, exclude=['ct']), subject)
    assert torch.equal(not_ct.ct.data, subject.ct.data)
    assert not torch.equal(not_ct.pet.data, subject.pet.data)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize(
    ('shape', 'channels'), [((24, 20, 1), 1), ((12, 10, 8), 3)], ids=['2d', 'rgb']
)
def test_two_dimensional_and_multichannel_images(name, shape, channels):
    subject = make_subject(shape=shape, channels=channels)
    out = _apply_seeded(catalogue.build(name), subject)
    assert out.ct.shape == (channels, *shape)
    assert out.seg.shape == (1, *shape)
    assert float(out.ct.data.min()) >= 0 and float(out.ct.data.max()) <= 1


@pytest.mark.parametrize('name', NAMES)
def test_history_replays_bit_for_bit(name, subject):
    out = _apply_seeded(catalogue.build(name), subject, seed=5)
    assert out.history, 'a deterministic transform must be recorded'
    replayed = out.get_composed_history()(subject)
    assert torch.equal(replayed.ct.data, out.ct.data)
    assert torch.equal(replayed.seg.data, out.seg.data)
    assert torch.equal(subject.ct.data, make_subject().ct.data)  # replay copies


@pytest.mark.parametrize('name', NAMES)
def test_pickle_round_trip(name, subject):
    transform = catalogue.build(name)
    clone = pickle.loads(pickle.dumps(transform))
    assert type(clone) is type(transform)
    first = _apply_seeded(transform, subject, seed=7)
    second = _apply_seeded(clone, subject, seed=7)
    assert torch.equal(first.ct.data, second.ct.data)


def test_every_transform_runs_inside_a_queue_with_workers():
    subjects = [make_subject(seed=seed) for seed in range(3)]
    everything = tio.Compose([catalogue.build(name) for name in NAMES])
    dataset = tio.SubjectsDataset(subjects, transform=everything)
    sampler = tio.LabelSampler(patch_size=(8, 8, 8), label_name='seg')
    queue = tio.Queue(
        dataset,
        max_length=6,
        samples_per_volume=2,
        sampler=sampler,
        num_workers=2,
    )
    loader = torch.utils.data.DataLoader(queue, batch_size=3, num_workers=0)
    batches = list(loader)
    assert sum(len(b['ct'][tio.DATA]) for b in batches) == 6
    for batch in batches:
        images = batch['ct'][tio.DATA]
        labels = batch['seg'][tio.DATA]
        assert images.shape[1:] == (1, 8, 8, 8)
        assert float(images.min()) >= 0 and float(images.max()) <= 1
        assert set(labels.unique().tolist()) <= {0, 1, 3, 5}
        assert np.isfinite(images.numpy()).all()
