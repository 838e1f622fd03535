"""Convert the two real TotalSegmentator-layout CTs in ``../shared`` (if present)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from ramp_prep.convert import prepare
from torchio_ramp.datasets import load_split

from .prep_fixtures import TOTALSEG_EXAMPLE

pytestmark = pytest.mark.skipif(
    not (TOTALSEG_EXAMPLE / 'meta.csv').exists(),
    reason=f'{TOTALSEG_EXAMPLE} is absent (it lives in ../shared beside the checkout)',
)

CLASSES = {
    'liver': 1,
    'spleen': 2,
    'kidney_left': 3,
    'kidney_right': 3,
    'heart': 4,
    'colon': 5,
}


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp('real') / 'out'
    summary = prepare('totalseg', TOTALSEG_EXAMPLE, out, progress=False)
    return out, summary


def read(path):
    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image)


def test_real_example_labels_match_the_source_masks(converted):
    out, summary = converted
    assert summary.converted == ['s0001', 's0002'] and not summary.failed
    with (out / 'manifest.csv').open() as f:
        rows = {row['id']: row for row in csv.DictReader(f)}
    for subject_id in ('s0001', 's0002'):
        source = TOTALSEG_EXAMPLE / subject_id
        ct, _ = read(source / 'ct.nii.gz')
        label_image, label = read(out / 'labels' / f'{subject_id}.nii.gz')
        assert label_image.GetPixelID() == sitk.sitkUInt8
        for getter in ('GetSize', 'GetSpacing', 'GetOrigin', 'GetDirection'):
            assert getattr(label_image, getter)() == getattr(ct, getter)()
        expected = np.zeros(label.shape, np.uint8)
        for structure, value in CLASSES.items():
            _, mask = read(source / 'segmentations' / f'{structure}.nii.gz')
            assert np.all(label[mask > 0] == value), structure
            expected[mask > 0] = value
        np.testing.assert_array_equal(label, expected)
        counts = np.bincount(label.ravel(), minlength=6)
        row = rows[subject_id]
        assert int(row['voxels_liver']) == counts[1]
        assert int(row['voxels_kidney']) == counts[3]
        assert row['voxels_heart'] == '0'  # outside the field of view
        copied = out / 'images' / f'{subject_id}.nii.gz'
        assert copied.read_bytes() == (source / 'ct.nii.gz').read_bytes()
    # Known values of the example (README of ../shared/data): s0001 masks as shipped.
    assert [
        int(rows['s0001'][f'voxels_{n}']) for n in ('liver', 'spleen', 'kidney')
    ] == [
        39350,
        9630,
        3676 + 3996,
    ]
    assert rows['s0001']['shape'] == '122x101x30'
    assert rows['s0002']['shape'] == '122x101x112'
    assert rows['s0001']['source_split'] == 'train'


def test_real_example_loads_as_subjects_dataset(converted):
    out, _ = converted
    info = json.loads((out / 'dataset.json').read_text())
    assert info['dataset'] == 'totalseg' and info['synthetic'] is False
    dataset = load_split(out, 'all')
    ids = [s['subject_id'] for s in dataset.dry_iter()]
    assert ids == ['s0002', 's0001']  # train, then val, then test
    subject = dataset[0]
    assert subject['subject_id'] == 's0002'
    assert subject.ct.data.dtype == torch.int32  # s0002 is stored as int32 HU
    assert subject.ct.shape == subject.label.shape == (1, 122, 101, 112)
    assert subject.ct.orientation == ('R', 'A', 'S')
    assert 'heart' in (out / 'report.txt').read_text()
