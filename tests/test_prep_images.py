"""Checked reads, header repair and atomic writes of ``ramp_prep.images``."""

from __future__ import annotations

import math
import shutil
from collections import namedtuple
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ramp_prep import images
from ramp_prep.errors import FatalPrepError
from ramp_prep.errors import PrepError

from .prep_fixtures import garble_gzip
from .prep_fixtures import truncate_gzip


@pytest.fixture
def ct(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 1000, (20, 18, 16)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 3.0))
    path = tmp_path / 'ct.nii.gz'
    sitk.WriteImage(image, str(path), useCompression=True)
    return path, array


def test_intact_file_passes_all_checks(ct):
    path, array = ct
    images.check_integrity(path)
    images.check_integrity(path, full=True)
    image, repair = images.read_image(path)
    assert repair is None
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), array)
    assert images.expected_size(path) == 352 + array.size * 2


def test_truncated_gzip_is_caught_although_simpleitk_reads_it(ct):
    path, _ = ct
    truncate_gzip(path, keep=0.7)
    sitk.ReadImage(str(path))  # no error: this is why the trailer is checked
    with pytest.raises(PrepError, match='truncated gzip file') as info:
        images.read_image(path)
    assert str(info.value).startswith(f'{path}: ')
    tmp = path.with_name('copy.nii.gz')
    with pytest.raises(PrepError, match='truncated gzip file'):
        images.copy_checked(path, tmp)
    assert not tmp.exists()


def test_garbled_and_non_gzip_files_are_named(ct, tmp_path):
    path, _ = ct
    garble_gzip(path)
    with pytest.raises(PrepError, match=rf'^{path}: corrupt gzip file \('):
        images.read_image(path)
    fake = tmp_path / 'fake.nii.gz'
    fake.write_bytes(b'<html>404 Not Found</html>' * 20)
    with pytest.raises(PrepError, match=rf"^{fake}: not a gzip file .*b'<h'"):
        images.read_image(fake)
    with pytest.raises(
        PrepError, match=rf'^{tmp_path / "nope.nii.gz"}: file not found'
    ):
        images.read_image(tmp_path / 'nope.nii.gz')


def test_truncated_uncompressed_nifti(ct, tmp_path):
    path, _ = ct
    plain = tmp_path / 'ct.nii'
    sitk.WriteImage(sitk.ReadImage(str(path)), str(plain))
    data = plain.read_bytes()
    plain.write_bytes(data[:-100])
    with pytest.raises(PrepError, match=rf'{plain}: truncated NIfTI file'):
        images.read_image(plain)


def test_nifti2_payload_size():
    header = nib.Nifti2Header()
    header.set_data_shape((4, 5, 6))
    header.set_data_dtype(np.float32)
    header.set_data_offset(544)
    assert images.nifti_payload_size(header.binaryblock) == 544 + 120 * 4
    assert images.nifti_payload_size(b'x' * 600) is None


def test_non_orthonormal_header_is_repaired_to_the_nearest_rotation(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [10, -20, 30]
    affine[0, 1] = 0.04  # shear: the J axis tilts by atan(0.02)
    nii = nib.Nifti1Image(data, affine)
    nii.set_qform(None, code=0)
    nii.set_sform(affine, code=1)
    path = tmp_path / 'sheared.nii.gz'
    nib.save(nii, str(path))
    assert images.read_header(path) is None
    image, repair = images.read_image(path)
    assert repair.path == str(path)
    # The polar decomposition splits the shear between the two axes.
    assert repair.max_angle_deg == pytest.approx(
        math.degrees(math.atan(0.02)) / 2, rel=0.02
    )
    direction = np.reshape(image.GetDirection(), (3, 3))
    np.testing.assert_allclose(direction @ direction.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(image.GetOrigin(), [-10, 20, 30])  # RAS -> LPS
    np.testing.assert_allclose(image.GetSpacing(), [2.0, np.hypot(2.0, 0.04), 3.0])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), data.T)


def test_geometry_tolerates_float32_rounding_only():
    eye = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
    a = images.Geometry((4, 4, 4), (0.8,) * 3, (100.0, -50.0, 12.5), eye)
    rounded = images.Geometry(
        (4, 4, 4),
        tuple(float(np.float32(x)) for x in a.spacing),
        tuple(float(np.float32(x)) for x in a.origin),
        eye,
    )
    assert a.differences(rounded) == []
    shifted = images.Geometry((4, 4, 4), a.spacing, (100.01, -50.0, 12.5), eye)
    assert a.differences(shifted) == ['origin (100.01, -50, 12.5) vs (100, -50, 12.5)']


def test_atomic_output_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / 'splits.json'
    target.write_text('old')
    with pytest.raises(RuntimeError), images.atomic_output(target) as tmp:
        tmp.write_text('half')
        raise RuntimeError('killed')
    assert target.read_text() == 'old'
    assert [p.name for p in tmp_path.iterdir()] == ['splits.json']
    images.write_text(target, 'new')
    assert target.read_text() == 'new'


def test_simpleitk_write_failure_on_a_full_disk(tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError('ITK ERROR: NiftiImageIO: could not write file')

    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(images.sitk, 'WriteImage', failing)
    monkeypatch.setattr(shutil, 'disk_usage', lambda path: usage(10, 10, 0))
    target = tmp_path / 'labels' / 's1.nii.gz'
    target.parent.mkdir()
    with pytest.raises(FatalPrepError, match=f'Disk full while writing {target}'):
        images.write_image(sitk.Image(2, 2, 2, sitk.sitkUInt8), target)
    monkeypatch.setattr(shutil, 'disk_usage', lambda path: usage(10, 0, 1 << 40))
    with pytest.raises(PrepError, match=f'Cannot write {target}: NiftiImageIO'):
        images.write_image(sitk.Image(2, 2, 2, sitk.sitkUInt8), target)
    assert list(target.parent.iterdir()) == []


def test_integer_array_accepts_whole_floats_and_rejects_vectors(tmp_path):
    whole = sitk.GetImageFromArray(np.array([[[0.0, 1.0, 2.0]]], np.float32))
    assert images.integer_array(whole, Path('m'), range(3)).tolist() == [[[0, 1, 2]]]
    vector = sitk.Image([2, 2, 2], sitk.sitkVectorUInt8, 3)
    with pytest.raises(PrepError, match='m: mask has 3 components per voxel'):
        images.integer_array(vector, Path('m'), range(2))
