"""``ramp-prep abdomenct1k``: pairing, remapping, not-annotated classes, repairs."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from ramp_prep.convert import prepare
from ramp_prep.errors import PrepError

from .prep_fixtures import make_abdomenct1k
from .prep_fixtures import make_non_orthonormal
from .prep_fixtures import read_array

# AbdomenCT-1K: 1 liver, 2 kidney, 3 spleen, 4 pancreas -> head 1, 3, 2, 0.
EXPECTED = {0: 0, 1: 1, 2: 3, 3: 2, 4: 0}


def manifest(out):
    with (out / 'manifest.csv').open() as f:
        return {row['id']: row for row in csv.DictReader(f)}


def geometry(path):
    image = sitk.ReadImage(str(path))
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


@pytest.mark.parametrize('release_folders', [False, True])
def test_pairs_and_remaps_in_both_folder_layouts(tmp_path, release_folders):
    src = tmp_path / 'src'
    ids = make_abdomenct1k(src, n=3, release_folders=release_folders)
    image_dir = 'AbdomenCT-1K-ImagePart1' if release_folders else 'images'
    mask_dir = 'Mask' if release_folders else 'masks'
    out = tmp_path / 'out'
    summary = prepare('abdomenct1k', src, out, progress=False)
    assert (
        sorted(summary.converted)
        == ids
        == ['SynthCase_00001', 'SynthCase_00002', 'SynthCase_00003']
    )
    rows = manifest(out)
    for case in ids:
        source = read_array(src / mask_dir / f'{case}.nii.gz')
        assert set(np.unique(source).tolist()) == {0, 1, 2, 3, 4}
        label = read_array(out / 'labels' / f'{case}.nii.gz')
        expected = np.vectorize(EXPECTED.get)(source)
        np.testing.assert_array_equal(label, expected)
        image = src / image_dir / f'{case}_0000.nii.gz'
        assert geometry(out / 'labels' / f'{case}.nii.gz') == geometry(image)
        assert (out / 'images' / f'{case}.nii.gz').read_bytes() == image.read_bytes()
        row = rows[case]
        assert int(row['voxels_liver']) == np.count_nonzero(source == 1)
        assert int(row['voxels_kidney']) == np.count_nonzero(source == 2)
        assert int(row['voxels_spleen']) == np.count_nonzero(source == 3)
        assert row['voxels_heart'] == row['voxels_colon'] == '0'
        assert int(row['dropped_pancreas_voxels']) == np.count_nonzero(source == 4)
    report = (out / 'report.txt').read_text()
    total = sum(int(r['dropped_pancreas_voxels']) for r in rows.values())
    assert (
        f'Pancreas voxels set to background (no output class; {total} in total)'
        in report
    )
    assert (
        'Not annotated in this dataset (excluded from evaluation, not background): '
        'heart, colon.'
    ) in report


def test_dataset_json_records_heart_and_colon_as_not_annotated(tmp_path):
    make_abdomenct1k(tmp_path / 'src', n=2)
    prepare('abdomenct1k', tmp_path / 'src', tmp_path / 'out', progress=False)
    info = json.loads((tmp_path / 'out' / 'dataset.json').read_text())
    assert info['dataset'] == 'synthetic-abdomenct1k'
    assert info['annotated_classes'] == [1, 2, 3]
    assert info['not_annotated_classes'] == [4, 5]
    assert info['source_mapping'] == {
        '1 (liver)': 'liver',
        '2 (kidney)': 'kidney',
        '3 (spleen)': 'spleen',
        '4 (pancreas)': 'background',
    }
    assert info['dropped_source_labels'] == {
        '4 (pancreas)': 'background (no output class)'
    }


def test_images_without_masks_are_listed_not_converted(tmp_path):
    src = tmp_path / 'src'
    make_abdomenct1k(src, n=3)
    (src / 'masks' / 'SynthCase_00002.nii.gz').unlink()
    shutil.copy(
        src / 'masks' / 'SynthCase_00003.nii.gz',
        src / 'masks' / 'SynthCase_00009.nii.gz',
    )
    out = tmp_path / 'out'
    summary = prepare('abdomenct1k', src, out, progress=False)
    assert sorted(summary.converted) == ['SynthCase_00001', 'SynthCase_00003']
    assert summary.cohort.excluded == {
        'SynthCase_00002': 'image without mask '
        '(images/SynthCase_00002_0000.nii.gz), not converted',
        'SynthCase_00009': 'mask without image (masks/SynthCase_00009.nii.gz)',
    }
    assert not (out / 'images' / 'SynthCase_00002.nii.gz').exists()
    report = (out / 'report.txt').read_text()
    assert '- SynthCase_00002: image without mask' in report
    assert json.loads((out / 'splits.json').read_text())['cohort']['size'] == 2


def test_non_orthonormal_headers_are_repaired_never_dropped(tmp_path):
    src = tmp_path / 'src'
    make_abdomenct1k(src, n=2)
    image = src / 'images' / 'SynthCase_00001_0000.nii.gz'
    mask = src / 'masks' / 'SynthCase_00001.nii.gz'
    source_mask = read_array(mask)
    make_non_orthonormal(image, shear=0.03)
    make_non_orthonormal(mask, shear=0.03)
    out = tmp_path / 'out'
    summary = prepare('abdomenct1k', src, out, progress=False)
    assert sorted(summary.converted) == ['SynthCase_00001', 'SynthCase_00002']
    written = out / 'images' / 'SynthCase_00001.nii.gz'
    assert geometry(out / 'labels' / 'SynthCase_00001.nii.gz') == geometry(written)
    label = read_array(out / 'labels' / 'SynthCase_00001.nii.gz')
    np.testing.assert_array_equal(label, np.vectorize(EXPECTED.get)(source_mask))
    report = (out / 'report.txt').read_text()
    assert '## Repaired headers (2)' in report
    assert (
        'SynthCase_00001: images/SynthCase_00001_0000.nii.gz: non-orthonormal' in report
    )
    assert manifest(out)['SynthCase_00001']['repaired'] == 'yes'
    assert manifest(out)['SynthCase_00002']['repaired'] == 'no'


def test_unexpected_mask_values_fail_naming_the_file(tmp_path):
    src = tmp_path / 'src'
    make_abdomenct1k(src, n=2)
    mask = src / 'masks' / 'SynthCase_00002.nii.gz'
    reference = sitk.ReadImage(str(mask))
    array = sitk.GetArrayFromImage(reference)
    array[0, 0, :2] = 7
    bad = sitk.GetImageFromArray(array)
    bad.CopyInformation(reference)
    sitk.WriteImage(bad, str(mask), useCompression=True)
    summary = prepare('abdomenct1k', src, tmp_path / 'out', progress=False)
    assert summary.failed == {
        'SynthCase_00002': f'{mask}: mask has values [7] outside 0..4 '
        '(voxel type 8-bit unsigned integer)'
    }


def test_layout_errors_and_test_only_fractions(tmp_path):
    src = tmp_path / 'src'
    make_abdomenct1k(src, n=3)
    first = src / 'images' / 'SynthCase_00001_0000.nii.gz'
    part = src / 'AbdomenCT-1K-ImagePart2'
    part.mkdir()
    shutil.copy(first, part / first.name)
    with pytest.raises(PrepError, match='Two images for SynthCase_00001') as info:
        prepare('abdomenct1k', src, tmp_path / 'out', progress=False)
    assert str(first) in str(info.value) and str(part / first.name) in str(info.value)
    shutil.rmtree(part)
    out = tmp_path / 'all-test'
    prepare('abdomenct1k', src, out, progress=False, fractions=(0.0, 0.0, 1.0))
    splits = json.loads((out / 'splits.json').read_text())
    assert splits['test'] == ['SynthCase_00001', 'SynthCase_00002', 'SynthCase_00003']
    assert splits['train'] == splits['val'] == []
    shutil.rmtree(src / 'masks')
    with pytest.raises(
        PrepError, match=r'has images but no masks/ \(or Mask/\) folder'
    ):
        prepare('abdomenct1k', src, tmp_path / 'o2', progress=False)
    empty = tmp_path / 'empty'
    (empty / 'x').mkdir(parents=True)
    (empty / 'x' / 'ct.nii.gz').write_bytes(b'')
    with pytest.raises(PrepError, match='looks like TotalSegmentator'):
        prepare('abdomenct1k', empty, tmp_path / 'o3', progress=False)
