"""``ramp-prep totalseg`` on synthetic releases, clean and with injected faults."""

from __future__ import annotations

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ramp_prep.convert import Options
from ramp_prep.convert import prepare
from ramp_prep.errors import PrepError

from .prep_fixtures import garble_gzip
from .prep_fixtures import make_non_orthonormal
from .prep_fixtures import make_totalseg
from .prep_fixtures import make_v1
from .prep_fixtures import mask_path
from .prep_fixtures import read_array
from .prep_fixtures import rewrite
from .prep_fixtures import shift_origin
from .prep_fixtures import truncate_gzip

# Written out here, independently of torchio_ramp.labels: lowest priority
# first, so later entries overwrite (kidney > spleen > colon > heart > liver).
EXPECTED_ORDER = [
    ('liver', 1),
    ('heart', 4),
    ('colon', 5),
    ('spleen', 2),
    ('kidney_left', 3),
    ('kidney_right', 3),
]


def expected_label(src, subject_id):
    label = None
    for name, value in EXPECTED_ORDER:
        mask = read_array(mask_path(src, subject_id, name))
        if label is None:
            label = np.zeros(mask.shape, np.uint8)
        label[mask > 0] = value
    return label


def manifest(out):
    with (out / 'manifest.csv').open() as f:
        return {row['id']: row for row in csv.DictReader(f)}


def geometry(path):
    image = sitk.ReadImage(str(path))
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


@pytest.fixture(scope='module')
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp('clean')
    ids = make_totalseg(root / 'src', n=4)
    summary = prepare('totalseg', root / 'src', root / 'out', progress=False)
    return root / 'src', root / 'out', ids, summary


def test_clean_conversion_labels_geometry_and_copy(clean):
    src, out, ids, summary = clean
    assert sorted(summary.converted) == ids and not summary.failed
    rows = manifest(out)
    assert sorted(rows) == ids
    for subject_id in ids:
        label_file = out / 'labels' / f'{subject_id}.nii.gz'
        image = sitk.ReadImage(str(label_file))
        assert image.GetPixelID() == sitk.sitkUInt8
        label = sitk.GetArrayFromImage(image)
        np.testing.assert_array_equal(label, expected_label(src, subject_id))
        ct = src / subject_id / 'ct.nii.gz'
        assert geometry(label_file) == geometry(ct)
        copied = out / 'images' / f'{subject_id}.nii.gz'
        assert copied.read_bytes() == ct.read_bytes() and not copied.is_symlink()
        row = rows[subject_id]
        counts = np.bincount(label.ravel(), minlength=6)
        names = ['background', 'liver', 'spleen', 'kidney', 'heart', 'colon']
        assert [int(row[f'voxels_{n}']) for n in names] == counts.tolist()
        assert all(counts[1:] > 0)
        assert row['shape'] == '24x24x24' and row['spacing'] == '3x3x3'
        assert row['image'] == f'images/{subject_id}.nii.gz'
        assert row['conflict_voxels'] == '0' and row['repaired'] == 'no'


def test_clean_conversion_dataset_json_splits_and_report(clean):
    _, out, ids, _ = clean
    info = json.loads((out / 'dataset.json').read_text())
    assert info['dataset'] == 'synthetic-totalseg' and info['synthetic'] is True
    assert 'SYNTHETIC' in info['name']
    assert info['class_names'] == {
        '0': 'background',
        '1': 'liver',
        '2': 'spleen',
        '3': 'kidney',
        '4': 'heart',
        '5': 'colon',
    }
    assert info['annotated_classes'] == [1, 2, 3, 4, 5]
    assert info['source_mapping']['kidney'] == 'kidney_left | kidney_right'
    assert info['overlap_precedence'] == ['kidney', 'spleen', 'colon', 'heart', 'liver']
    assert info['seed'] == 42 and info['fractions'] == [0.7, 0.15, 0.15]
    assert info['tool'] == 'ramp-prep' and info['tool_version']
    splits = json.loads((out / 'splits.json').read_text())
    assert (len(splits['train']), len(splits['val']), len(splits['test'])) == (2, 0, 2)
    assert sorted(splits['train'] + splits['val'] + splits['test']) == ids
    assert splits['cohort']['size'] == 4 and splits['not_prepared'] == {}
    report = (out / 'report.txt').read_text()
    assert report.startswith('*** SYNTHETIC DATA')
    assert 'Failed: 0.' in report


def test_only_the_six_masks_are_read(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=1)
    # Other structures of the release are never opened: a broken one is harmless.
    (src / 'synth0001' / 'segmentations' / 'aorta.nii.gz').write_bytes(b'not an image')
    summary = prepare('totalseg', src, tmp_path / 'out', progress=False)
    assert summary.converted == ['synth0001']


def test_missing_mask_excludes_subject_from_cohort(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=3)
    mask_path(src, 'synth0002', 'spleen').unlink()
    summary = prepare('totalseg', src, tmp_path / 'out', progress=False)
    assert sorted(summary.converted) == ['synth0001', 'synth0003']
    assert not summary.failed
    assert summary.cohort.excluded == {
        'synth0002': 'missing segmentations/spleen.nii.gz'
    }
    report = (tmp_path / 'out' / 'report.txt').read_text()
    assert '- synth0002: missing segmentations/spleen.nii.gz' in report
    assert (
        json.loads((tmp_path / 'out' / 'splits.json').read_text())['cohort']['size']
        == 2
    )


def test_truncated_and_garbled_gzip_fail_with_the_file_named(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=3)
    truncate_gzip(mask_path(src, 'synth0001', 'liver'))
    garble_gzip(src / 'synth0002' / 'ct.nii.gz')
    out = tmp_path / 'out'
    summary = prepare('totalseg', src, out, progress=False)
    assert summary.converted == ['synth0003']
    liver = mask_path(src, 'synth0001', 'liver')
    assert summary.failed['synth0001'].startswith(f'{liver}: truncated gzip file')
    ct = src / 'synth0002' / 'ct.nii.gz'
    assert summary.failed['synth0002'].startswith(f'{ct}: corrupt gzip file')
    # Nothing half-written: no outputs and no temporary files for the failures.
    assert sorted(p.name for p in (out / 'images').iterdir()) == ['synth0003.nii.gz']
    assert sorted(p.name for p in (out / 'labels').iterdir()) == ['synth0003.nii.gz']
    splits = json.loads((out / 'splits.json').read_text())
    assert splits['not_prepared']['synth0001']['reason'].startswith('failed: ')
    assert (
        f'- synth0001: {liver}: truncated gzip file' in (out / 'report.txt').read_text()
    )


def test_geometry_mismatch_fails_unless_resampled(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=2)
    kidney = mask_path(src, 'synth0001', 'kidney_left')
    shift_origin(kidney, 6.0)  # two voxels
    summary = prepare('totalseg', src, tmp_path / 'out', progress=False)
    assert summary.converted == ['synth0002']
    message = summary.failed['synth0001']
    assert message.startswith(f'{kidney}: geometry differs from the CT')
    assert 'origin' in message and '--resample-masks' in message
    assert not (tmp_path / 'out' / 'labels' / 'synth0001.nii.gz').exists()

    out = tmp_path / 'resampled'
    summary = prepare(
        'totalseg', src, out, progress=False, options=Options(resample_masks=True)
    )
    assert sorted(summary.converted) == ['synth0001', 'synth0002']
    label_file = out / 'labels' / 'synth0001.nii.gz'
    assert geometry(label_file) == geometry(src / 'synth0001' / 'ct.nii.gz')
    # The mask moved +6 mm in LPS x = two voxels towards lower I (direction -1).
    moved = read_array(kidney)
    label = read_array(label_file)
    expected = np.zeros_like(moved)
    expected[:, :, :-2] = moved[:, :, 2:]
    assert np.count_nonzero(label == 3) >= np.count_nonzero(expected)
    assert np.all(label[expected > 0] == 3)
    assert manifest(out)['synth0001']['resampled_masks'] == 'kidney_left'
    assert '- synth0001: kidney_left' in (out / 'report.txt').read_text()


def test_overlapping_masks_follow_precedence_and_are_counted(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=2)
    kidney = read_array(mask_path(src, 'synth0001', 'kidney_right'))
    liver_file = mask_path(src, 'synth0001', 'liver')
    liver = read_array(liver_file)
    overlap = (kidney > 0) & (liver == 0)
    liver[overlap] = 1  # the liver now also claims the whole right kidney
    rewrite(liver_file, liver)
    n = int(np.count_nonzero(overlap))
    assert n > 0
    out = tmp_path / 'out'
    prepare('totalseg', src, out, progress=False)
    label = read_array(out / 'labels' / 'synth0001.nii.gz')
    assert np.all(label[kidney > 0] == 3)  # kidney wins over liver
    row = manifest(out)['synth0001']
    assert int(row['conflict_voxels']) == n
    assert row['conflicts'] == f'kidney>liver:{n}'
    assert manifest(out)['synth0002']['conflict_voxels'] == '0'
    report = (out / 'report.txt').read_text()
    assert f'- synth0001: {n} voxels (kidney>liver: {n})' in report


def test_v1_layout_is_refused_with_advice(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=2)
    for subject_id in ('synth0001', 'synth0002'):
        make_v1(src, subject_id)
    with pytest.raises(PrepError) as info:
        prepare('totalseg', src, tmp_path / 'out', progress=False)
    message = str(info.value)
    assert str(src) in message and 'TotalSegmentator v1' in message
    assert 'heart_myocardium' in message and 'no heart.nii.gz' in message
    assert 'zenodo.org/records/10047292' in message
    assert not (tmp_path / 'out' / 'labels').exists()


def test_single_v1_subject_is_excluded_and_noted(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=2)
    make_v1(src, 'synth0002')
    summary = prepare('totalseg', src, tmp_path / 'out', progress=False)
    assert summary.converted == ['synth0001']
    assert summary.cohort.excluded['synth0002'].startswith(
        'TotalSegmentator v1 layout (has heart_myocardium.nii.gz'
    )
    assert (
        'v1 layout and were excluded' in (tmp_path / 'out' / 'report.txt').read_text()
    )


def test_non_binary_and_fractional_masks_fail_naming_the_file(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=3)
    spleen = mask_path(src, 'synth0001', 'spleen')
    rewrite(spleen, (read_array(spleen) * 255).astype(np.uint8))
    colon = mask_path(src, 'synth0002', 'colon')
    rewrite(colon, read_array(colon).astype(np.float32) * 0.5)
    heart = mask_path(src, 'synth0003', 'heart')
    rewrite(heart, read_array(heart).astype(np.float32))  # float but 0/1: fine
    summary = prepare('totalseg', src, tmp_path / 'out', progress=False)
    assert summary.failed['synth0001'] == (
        f'{spleen}: mask has values [255] outside 0..1 '
        '(voxel type 8-bit unsigned integer)'
    )
    assert summary.failed['synth0002'].startswith(
        f'{colon}: mask has non-integer values [0.5]'
    )
    assert summary.converted == ['synth0003']


def test_non_orthonormal_ct_header_is_repaired_and_reported(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=1)
    ct = src / 'synth0001' / 'ct.nii.gz'
    original = geometry(ct)
    for structure in (
        'liver',
        'spleen',
        'kidney_left',
        'kidney_right',
        'heart',
        'colon',
    ):
        make_non_orthonormal(mask_path(src, 'synth0001', structure))
    make_non_orthonormal(ct)
    with pytest.raises(RuntimeError, match='orthonormal'):
        sitk.ReadImage(str(ct))
    out = tmp_path / 'out'
    summary = prepare('totalseg', src, out, progress=False)
    assert summary.converted == ['synth0001']
    written = out / 'images' / 'synth0001.nii.gz'
    repaired = geometry(written)  # SimpleITK reads the rewritten image
    assert repaired[0] == original[0]
    assert geometry(out / 'labels' / 'synth0001.nii.gz') == repaired
    direction = np.reshape(repaired[3], (3, 3))
    np.testing.assert_allclose(direction @ direction.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(repaired[3], original[3], atol=0.02)
    np.testing.assert_allclose(repaired[2], original[2], atol=1e-4)
    np.testing.assert_array_equal(
        read_array(written), np.asanyarray(nib.load(ct).dataobj).T
    )
    record = manifest(out)['synth0001']
    assert record['repaired'] == 'yes'
    report = (out / 'report.txt').read_text()
    assert (
        'synth0001/ct.nii.gz: non-orthonormal direction cosines orthonormalised'
        in report
    )
    assert 'synth0001/segmentations/liver.nii.gz: non-orthonormal' in report


def test_source_layout_errors(tmp_path):
    with pytest.raises(PrepError, match=r'SRC .*missing does not exist'):
        prepare('totalseg', tmp_path / 'missing', tmp_path / 'out', progress=False)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(PrepError, match=r'has no TotalSegmentator subjects: expected'):
        prepare('totalseg', empty, tmp_path / 'out', progress=False)
    (empty / 'images').mkdir()
    with pytest.raises(PrepError, match='looks like AbdomenCT-1K'):
        prepare('totalseg', empty, tmp_path / 'out', progress=False)
    src = tmp_path / 'src'
    make_totalseg(src, n=1)
    with pytest.raises(PrepError, match='single subject folder'):
        prepare('totalseg', src / 'synth0001', tmp_path / 'out', progress=False)
    with pytest.raises(PrepError, match='must not be SRC or inside it'):
        prepare('totalseg', src, src / 'prepared', progress=False)


def test_meta_csv_with_bom_gives_source_split(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=2)
    (src / 'meta.csv').write_text(
        '\ufeffimage_id;age;gender;institute;study_type;split\n'
        'synth0001;61;m;A;ct abdomen;train\n'
        'synth0002;;f;B;ct thorax;test\n'
        's9999;;;;;val\n',
        encoding='utf-8',
    )
    out = tmp_path / 'out'
    prepare('totalseg', src, out, progress=False)
    rows = manifest(out)
    assert rows['synth0001']['source_split'] == 'train'
    assert rows['synth0002']['source_split'] == 'test'
    assert (
        '1 id(s) in meta.csv have no subject folder: s9999'
        in (out / 'report.txt').read_text()
    )
    shutil.rmtree(out)
    (src / 'meta.csv').write_text('id,split\nsynth0001,train\n')
    with pytest.raises(PrepError, match=r'meta\.csv: no image_id column'):
        prepare('totalseg', src, out, progress=False)
