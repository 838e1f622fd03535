"""Phantom generator and the reader of prepared datasets."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import torchio as tio

from ramp_prep.convert import prepare
from torchio_ramp import datasets
from torchio_ramp.datasets import load_split
from torchio_ramp.datasets import read_dataset_info
from torchio_ramp.labels import TOTALSEG_STRUCTURES
from torchio_ramp.labels import merge_totalseg_masks
from torchio_ramp.phantoms import HU
from torchio_ramp.phantoms import make_phantom
from torchio_ramp.phantoms import phantom_subject

from .prep_fixtures import make_totalseg


@pytest.fixture(scope='module')
def phantom():
    return make_phantom(seed=0)


def _centroid(mask):
    return np.argwhere(mask).mean(axis=0)


def test_phantom_arrays_geometry_and_keys(phantom):
    assert phantom.hu.shape == (64, 64, 48)
    assert phantom.hu.dtype == np.int16
    assert sorted(phantom.masks) == sorted(TOTALSEG_STRUCTURES)
    for mask in phantom.masks.values():
        assert mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 1}
    expected = np.diag([3.0, 3.0, 3.0, 1.0])
    expected[:3, 3] = [-94.5, -94.5, -70.5]  # centred on the origin
    np.testing.assert_array_equal(phantom.affine, expected)
    assert phantom.seed == 0


def test_phantom_is_seeded_and_leaves_global_rng_alone():
    state = np.random.get_state()[1].copy()
    a = make_phantom((24, 24, 24), seed=5)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    np.random.seed(123)  # the global RNG has no influence
    b = make_phantom((24, 24, 24), seed=5)
    c = make_phantom((24, 24, 24), seed=6)
    np.testing.assert_array_equal(a.hu, b.hu)
    for name in TOTALSEG_STRUCTURES:
        np.testing.assert_array_equal(a.masks[name], b.masks[name])
    assert not np.array_equal(a.hu, c.hu)
    assert not np.array_equal(a.masks['liver'], c.masks['liver'])


def test_phantom_masks_never_overlap_and_are_large_enough():
    for seed in range(4):
        p = make_phantom(seed=seed)
        stacked = sum(m.astype(np.int32) for m in p.masks.values())
        assert stacked.max() == 1
        sizes = {k: int(v.sum()) for k, v in p.masks.items()}
        assert min(sizes.values()) >= 300, sizes
        small = make_phantom((24, 24, 24), seed=seed)
        assert min(int(m.sum()) for m in small.masks.values()) >= 20


def test_phantom_anatomy_sides_and_intensities(phantom):
    m = phantom.masks
    liver, spleen = _centroid(m['liver']), _centroid(m['spleen'])
    # I runs towards the patient's right (RAS): liver right, spleen left.
    assert liver[0] > 32 > spleen[0]
    assert _centroid(m['kidney_right'])[0] > 32 > _centroid(m['kidney_left'])[0]
    # Kidneys posterior (low J), heart superior (high K) and anterior.
    assert _centroid(m['kidney_left'])[1] < 26 and _centroid(m['kidney_right'])[1] < 26
    heart = _centroid(m['heart'])
    assert heart[2] > 0.7 * 48 and heart[1] > 32
    hu = phantom.hu.astype(float)
    for name, target in (('liver', 60), ('spleen', 50), ('heart', 40)):
        assert abs(hu[m[name] > 0].mean() - target) < 3, name
    kidneys = (m['kidney_left'] | m['kidney_right']) > 0
    assert abs(hu[kidneys].mean() - HU['kidney']) < 3
    colon = hu[m['colon'] > 0]
    assert (colon < -700).mean() > 0.15  # air lumen
    assert ((colon > -50) & (colon < 110)).mean() > 0.3  # wall
    assert hu[0, 0, 0] < -900 and hu[:, :, 20].max() > 400  # air and bone
    # Noise ~15 HU: residual around the liver mean.
    assert 12 < hu[m['liver'] > 0].std() < 18


def test_phantom_organs_contrast_with_their_surroundings(phantom):
    """Learnability proxy: each organ differs from a 2-voxel shell by > 3 SDs."""

    def dilate(mask, steps=2):
        out = mask.copy()
        for _ in range(steps):
            grown = out.copy()
            for axis in range(3):
                grown |= np.roll(out, 1, axis) | np.roll(out, -1, axis)
            out = grown
        return out

    occupied = sum(m.astype(bool) for m in phantom.masks.values()).astype(bool)
    hu = phantom.hu.astype(float)
    for name, mask in phantom.masks.items():
        inside = mask.astype(bool)
        shell = dilate(inside) & ~occupied
        assert abs(hu[inside].mean() - hu[shell].mean()) > 45, name


def test_phantom_is_fast():
    make_phantom(seed=1)
    start = time.perf_counter()
    make_phantom(seed=2)
    assert time.perf_counter() - start < 0.5


def test_pancreas_option_keeps_other_organs():
    plain = make_phantom((32, 32, 32), seed=3)
    with_pancreas = make_phantom((32, 32, 32), seed=3, pancreas=True)
    assert 'pancreas' not in plain.masks
    assert with_pancreas.masks['pancreas'].sum() > 20
    for name in ('kidney_left', 'kidney_right', 'spleen', 'colon', 'heart'):
        np.testing.assert_array_equal(plain.masks[name], with_pancreas.masks[name])
    taken = plain.masks['liver'] & ~with_pancreas.masks['liver']
    assert np.all(with_pancreas.masks['pancreas'][taken > 0] == 1)


def test_phantom_rejects_bad_arguments():
    with pytest.raises(ValueError, match='shape'):
        make_phantom((4, 64, 64))
    with pytest.raises(ValueError, match='spacing'):
        make_phantom(spacing=(1, 0, 1))


def test_phantom_subject_matches_the_masks():
    subject = phantom_subject((24, 24, 24), (2.0, 2.0, 2.0), seed=4)
    phantom = make_phantom((24, 24, 24), (2.0, 2.0, 2.0), seed=4)
    assert isinstance(subject.ct, tio.ScalarImage)
    assert isinstance(subject.label, tio.LabelMap)
    assert subject['subject_id'] == 'phantom0004'
    assert subject['dataset'] == 'synthetic-totalseg'
    assert subject.ct.data.dtype == torch.int16
    assert subject.label.data.dtype == torch.uint8
    np.testing.assert_array_equal(subject.ct.data[0].numpy(), phantom.hu)
    expected = merge_totalseg_masks(phantom.masks.__getitem__).label
    np.testing.assert_array_equal(subject.label.data[0].numpy(), expected)
    assert sorted(torch.unique(subject.label.data).tolist()) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(subject.ct.affine, phantom.affine)
    assert subject.ct.orientation == ('R', 'A', 'S')


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp('datasets')
    make_totalseg(root / 'src', n=7)
    prepare('totalseg', root / 'src', root / 'out', progress=False)
    return root / 'out'


def test_load_split_returns_subjects_of_each_split(prepared):
    splits = json.loads((prepared / 'splits.json').read_text())
    sizes = {}
    for name in ('train', 'val', 'test'):
        dataset = load_split(prepared, name)
        assert isinstance(dataset, tio.SubjectsDataset)
        ids = [s['subject_id'] for s in dataset.dry_iter()]
        assert ids == splits[name]
        sizes[name] = len(dataset)
    assert sizes == {'train': 4, 'val': 1, 'test': 2}
    assert len(load_split(prepared, 'all')) == 7
    subject = load_split(prepared, 'val')[0]
    assert set(subject.keys()) == {'ct', 'label', 'subject_id', 'dataset'}
    assert subject['dataset'] == 'synthetic-totalseg'
    assert subject.ct.data.dtype == torch.int16
    assert subject.ct.shape == subject.label.shape == (1, 24, 24, 24)
    assert set(torch.unique(subject.label.data).tolist()) <= {0, 1, 2, 3, 4, 5}


def test_load_split_applies_transform(prepared):
    dataset = load_split(prepared, 'test', transform=tio.Crop((2, 2, 2, 2, 2, 2)))
    assert dataset[0].ct.shape == (1, 20, 20, 20)


def test_load_split_errors_name_the_problem(prepared, tmp_path):
    with pytest.raises(ValueError, match=r"split must be one of .* got 'training'"):
        load_split(prepared, 'training')
    copy = tmp_path / 'copy'
    copy.mkdir()
    for name in ('dataset.json', 'splits.json', 'manifest.csv'):
        (copy / name).write_bytes((prepared / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=r'images/synth000\d\.nii\.gz'):
        load_split(copy, 'train')


def test_read_dataset_info_fields_and_errors(prepared, tmp_path):
    info = read_dataset_info(prepared)
    assert info['tool'] == 'ramp-prep'
    assert info['annotated_classes'] == [1, 2, 3, 4, 5]
    assert info['not_annotated_classes'] == []
    assert info['synthetic'] is True
    assert info['dataset'] == 'synthetic-totalseg'
    assert info['layout'] == 'ramp'
    assert info['seed'] == 42
    with pytest.raises(FileNotFoundError, match=r'not found: .*nowhere'):
        read_dataset_info(tmp_path / 'nowhere')
    with pytest.raises(
        FileNotFoundError, match='is not a dataset prepared by ramp-prep'
    ):
        read_dataset_info(tmp_path)
    (tmp_path / 'dataset.json').write_text('{not json')
    with pytest.raises(ValueError, match=r'dataset\.json is not valid JSON'):
        read_dataset_info(tmp_path)
    (tmp_path / 'dataset.json').write_text('{"name": "Dataset001_Other", "labels": {}}')
    with pytest.raises(ValueError, match='was not written by ramp-prep'):
        read_dataset_info(tmp_path)


def test_module_exports_layout_names():
    assert datasets.DATASET_JSON == 'dataset.json'
    assert datasets.SPLITS_JSON == 'splits.json'
    assert datasets.MANIFEST_CSV == 'manifest.csv'
