"""The lighter transform shell: copies without deep copies, checks once.

``copy=True`` must still leave the caller's data untouched and unshared, for
every input type; ``copy=False`` must still work in place; composites must
still refuse bad input, with one range check instead of one per operator.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torchio as tio

import torchio_ramp as tr
from torchio_ramp.intensity_ops import INTENSITY_OPERATIONS
from torchio_ramp.kernels.base import IntensityError
from torchio_ramp.kernels.base import check_intensities
from torchio_ramp.kernels.base import inputs_checked
from torchio_ramp.transforms.shell import structure_copy

SHAPE = (1, 12, 10, 8)


def _subject() -> tio.Subject:
    torch.manual_seed(0)
    return tio.Subject(
        ct=tio.ScalarImage(tensor=torch.rand(SHAPE)),
        seg=tio.LabelMap(tensor=torch.randint(0, 3, SHAPE, dtype=torch.uint8)),
        case_id='a',
    )


TRANSFORMS = [
    lambda: tr.Corruption('gaussian_noise', {'std': 0.1}, seed=1),
    lambda: tr.RandomIntensityShift(p=1),
    lambda: tr.CTIntensity('gamma', {'gamma1': 1.2, 'gamma2': 1.0}),
    lambda: tr.LateralityFlip(axes=(0,)),
    lambda: tr.DenseElastic(alpha=80, sigma=4, seed=0),
    lambda: tr.RampCorrupt(p=1),
    lambda: tr.Ramp(p_corrupt=1),
    lambda: tr.CTNormalize(hu_range=(0, 1)),
]


@pytest.mark.parametrize('make', TRANSFORMS)
def test_copy_leaves_the_input_untouched_and_unshared(make):
    subject = _subject()
    before = copy.deepcopy(subject)
    torch.manual_seed(3)
    out = make()(subject)
    for name in ('ct', 'seg'):
        assert torch.equal(subject[name].data, before[name].data)
        # even images the transform left unchanged are copies, as after a
        # deep copy: writing into the result never reaches the input
        out[name].data.zero_()
        assert torch.equal(subject[name].data, before[name].data)
    assert out['case_id'] == 'a'
    assert subject.history == []


def test_copy_false_works_in_place():
    subject = _subject()
    ct = subject.ct.data
    out = tr.Corruption('intensity_shift', {'shift': 0.1}, copy=False)(subject)
    assert out is subject
    assert subject.ct.data is not ct  # replaced, not modified
    assert len(subject.history) == 1


def test_tensor_array_and_image_inputs_keep_their_type():
    transform = tr.Corruption('intensity_shift', {'shift': 0.1}, seed=0)
    tensor = torch.full(SHAPE, 0.5)
    out = transform(tensor)
    assert isinstance(out, torch.Tensor)
    assert torch.allclose((out - tensor).abs(), torch.full(SHAPE, 0.1))
    assert torch.equal(tensor, torch.full(SHAPE, 0.5))
    array = np.full(SHAPE, 0.5, dtype=np.float32)
    assert isinstance(transform(array), np.ndarray)
    image = tio.ScalarImage(tensor=tensor)
    assert isinstance(transform(image), tio.ScalarImage)


def test_keep_stores_the_original_image():
    subject = _subject()
    out = tr.RampCorrupt(p=1, keep={'ct': 'ct_clean'})(subject)
    assert torch.equal(out.ct_clean.data, subject.ct.data)
    assert not torch.equal(out.ct.data, subject.ct.data)


def test_skipped_transforms_return_their_input():
    subject = _subject()
    assert tr.RampCorrupt(p=0)(subject) is subject


def test_structure_copy_copies_metadata_not_voxels():
    subject = _subject()
    twin = structure_copy(subject)
    assert twin.ct is not subject.ct and twin.ct.data is subject.ct.data
    twin.ct.affine[0, 0] = 7
    assert subject.ct.affine[0, 0] == 1
    assert twin.applied_transforms is not subject.applied_transforms


def test_composite_checks_its_input_once(monkeypatch):
    calls = []
    aminmax = torch.aminmax

    def counting(*args, **kwargs):
        calls.append(1)
        return aminmax(*args, **kwargs)

    monkeypatch.setattr(torch, 'aminmax', counting)
    families = ('gaussian_noise', 'speckle_noise', 'intensity_shift', 'stripe')
    tr.RampCorrupt(p=1, num_corruptions=4, families=families)(_subject())
    assert len(calls) == 1
    calls.clear()
    tr.Corruption('stripe', level=0.1)(_subject())
    assert len(calls) == 1  # a single operator checks on its own


def test_composites_still_refuse_raw_hounsfield_units():
    subject = _subject()
    subject.ct.set_data(subject.ct.data * 1000 - 500)
    for transform in (tr.RampCorrupt(p=1), tr.RampIntensity(), tr.Ramp(p_corrupt=0)):
        with pytest.raises(IntensityError, match=r'image "ct" has values'):
            transform(subject)
    # the spatial stage accepts HU (it refuses only NaN/Inf)
    tr.RampSpatial()(subject)
    tr.Ramp(intensity=False, corruption=False)(subject)


def test_inputs_checked_is_scoped():
    bad = torch.full(SHAPE, 5.0)
    with inputs_checked():
        check_intensities(bad)
    with pytest.raises(IntensityError):
        check_intensities(bad)
    with pytest.raises(IntensityError):
        tr.kernels.gamma(bad, gamma1=1.0, gamma2=1.0)


OUT_KERNELS = {
    'gaussian_noise': {'std': 0.1},
    'rician_noise': {'std': 0.1},
    'speckle_noise': {'std': 0.1},
    'salt_pepper': {'prob': 0.1},
    'bias_field': {'strength': 0.3},
    'compound': {'level': 0.1},
    'intensity_shift': {'shift': 0.1},
    'contrast_reduction': {'blend': 0.3},
    'gamma': {'gamma1': 1.3, 'gamma2': 0.8},
    'window_level': {'center_shift': 0.1, 'width_scale': 0.8},
    'local_contrast': {'blend': 0.3},
    'stripes': {'strength': 0.3},
}


def test_every_kernel_that_writes_out_is_checked_in_place():
    writers = {
        operator.kernel.__name__
        for operator in {**tr.FAMILIES, **INTENSITY_OPERATIONS}.values()
        if operator.writes_out and operator.domain == 'normalized'
    }
    assert writers == set(OUT_KERNELS)


@pytest.mark.parametrize('name', sorted(OUT_KERNELS))
def test_out_gives_the_same_values_in_place_or_elsewhere(name):
    kernel = getattr(tr.kernels, name)
    parameters = OUT_KERNELS[name]
    x = torch.rand(2, *SHAPE)
    expected = kernel(x, generator=torch.Generator().manual_seed(4), **parameters)
    buffer = torch.empty_like(x)
    got = kernel(
        x, generator=torch.Generator().manual_seed(4), out=buffer, **parameters
    )
    assert got is buffer and torch.equal(got, expected)
    owned_input = x.clone()
    got = kernel(
        owned_input,
        generator=torch.Generator().manual_seed(4),
        out=owned_input,
        **parameters,
    )
    assert got is owned_input and torch.equal(got, expected)
    with pytest.raises(ValueError, match='out must match x'):
        kernel(x, out=torch.empty(SHAPE), **parameters)


def test_operators_say_which_kernels_write_out():
    assert tr.FAMILIES['rician_noise'].writes_out
    assert not tr.FAMILIES['blur'].writes_out
    x = torch.rand(SHAPE)
    with pytest.raises(TypeError, match='does not take out='):
        tr.FAMILIES['blur'](x, out=x, sigma=1.0)


def test_composites_overwrite_only_their_own_intermediates():
    # the first operator reads the caller's CT, later ones overwrite their own
    subject = _subject()
    before = subject.ct.data.clone()
    families = ('intensity_shift', 'rician_noise', 'salt_pepper', 'compound')
    torch.manual_seed(0)
    out = tr.RampCorrupt(p=1, num_corruptions=4, families=families)(subject)
    assert torch.equal(subject.ct.data, before)
    replayed = out.get_composed_history()(subject)
    assert torch.equal(replayed.ct.data, out.ct.data)
