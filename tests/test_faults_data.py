"""Fault injection on disk: damaged, edited or non-finite files never get scored.

Prepared datasets are made by the real ``ramp-prep`` on tiny phantoms; the
faults are injected into the files afterwards, as a careless or hostile user
(or a failing disk) would.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from click.testing import CliRunner

from ramp_prep import images as imio
from ramp_prep.cli import main as prep_main
from ramp_prep.errors import FatalPrepError
from torchio_ramp.datasets import data_fingerprint
from torchio_ramp.datasets import load_split
from torchio_ramp.files import file_sha256
from torchio_ramp.integrity import IntegrityError
from torchio_ramp.integrity import check_nifti
from torchio_ramp.stress.cli import main as stress_main
from torchio_ramp.stress.protocol import StressProtocol
from torchio_ramp.stress.runner import run_stress_test
from torchio_ramp.stress.store import ResultsError

pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')

PROTOCOL = StressProtocol(families=['blur'], levels=[0.1])


def invoke(command, arguments, code: int):
    result = CliRunner().invoke(command, [str(a) for a in arguments])
    assert result.exit_code == code, result.output + repr(result.exception)
    if code:
        assert 'Traceback' not in result.output
        assert result.output.strip().splitlines()[-1].startswith('Error: ') or (
            code == 1 and 'FAILED' in result.output
        ), result.output
    return result


def label_of(image: torch.Tensor) -> torch.Tensor:
    """A predictor: thresholds, so every subject is scored."""
    return (image[0] > 0.5).long()


@pytest.fixture(scope='module')
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('faults-data')
    source, out = root / 'source', root / 'prepared'
    invoke(prep_main, ['synth', source, '--layout', 'totalseg', '--subjects', 4,
                       '--shape', '16,16,16'], 0)  # fmt: skip
    invoke(prep_main, ['totalseg', source, out, '--fractions', '0.5,0,0.5',
                       '--no-progress'], 0)  # fmt: skip
    return out


@pytest.fixture
def prepared(pristine, tmp_path) -> Path:
    out = tmp_path / 'prepared'
    shutil.copytree(pristine, out)
    return out


def manifest(root: Path) -> dict[str, dict[str, str]]:
    with (root / 'manifest.csv').open(newline='') as f:
        return {row['id']: row for row in csv.DictReader(f)}


def first(root: Path, split: str = 'test') -> tuple[str, Path, Path]:
    subject_id = json.loads((root / 'splits.json').read_text())[split][0]
    row = manifest(root)[subject_id]
    return subject_id, root / row['image'], root / row['label']


def cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])


def flip_byte(path: Path) -> None:
    """Same size, other bytes: an edit in place that keeps the length."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def relabel(path: Path) -> None:
    """A valid NIfTI with other labels (an edit with a viewer)."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array[:] = 0
    edited = sitk.GetImageFromArray(array)
    edited.CopyInformation(image)
    sitk.WriteImage(edited, str(path), useCompression=True)


# Verification on read -------------------------------------------------------------


@pytest.mark.parametrize('keep', [0.02, 0.5, 0.99])
@pytest.mark.parametrize('which', ['image', 'label'])
@pytest.mark.parametrize('mode', ['sha256', 'size'])
def test_truncated_files_are_refused_naming_them(prepared, keep, which, mode):
    _, image, label = first(prepared)
    path = image if which == 'image' else label
    cut(path, keep)
    with pytest.raises(
        IntegrityError, match=rf'{path.name}: \d+ bytes, but .*manifest'
    ):
        load_split(prepared, 'test', verify=mode)
    load_split(prepared, 'train', verify=mode)  # other splits are not affected


@pytest.mark.parametrize('edit', [flip_byte, relabel])
def test_files_edited_after_prep_are_refused(prepared, edit):
    _, _, label = first(prepared)
    edit(label)
    with pytest.raises(IntegrityError, match=rf'{label.name}: .*(SHA-256|bytes)'):
        load_split(prepared, 'test')


def test_size_mode_still_catches_truncation_with_a_matching_size(prepared):
    _, image, _ = first(prepared)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    with pytest.raises(IntegrityError, match='truncated or corrupt gzip'):
        load_split(prepared, 'test', verify='size')


def test_missing_file_and_damaged_manifest_name_the_file(prepared):
    _, image, _ = first(prepared)
    image.unlink()
    with pytest.raises(FileNotFoundError, match=rf'{image.name} \(subject'):
        load_split(prepared, 'test')
    path = prepared / 'manifest.csv'
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:20]
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=r'manifest.csv: line 3 is damaged'):
        load_split(prepared, 'train')
    path.write_bytes(b'id,image\n\xff\xfe broken\n')
    with pytest.raises(ValueError, match=r'manifest\.csv is damaged'):
        load_split(prepared, 'train')


def test_a_manifest_without_sizes_is_still_verified_by_sha256(prepared):
    path = prepared / 'manifest.csv'
    rows = list(manifest(prepared).values())
    fields = [f for f in rows[0] if not f.endswith('_bytes')]
    with path.open('w', newline='') as f:
        writer = csv.DictWriter(f, fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    load_split(prepared, 'all')
    _, _, label = first(prepared)
    flip_byte(label)
    with pytest.raises(IntegrityError, match='SHA-256'):
        load_split(prepared, 'test')


def test_verification_mode_from_the_environment(prepared, monkeypatch):
    _, _, label = first(prepared)
    flip_byte(label)  # same size: only SHA-256 sees it
    monkeypatch.setenv('RAMP_VERIFY', 'size')
    load_split(prepared, 'test')
    monkeypatch.setenv('RAMP_VERIFY', 'sha256')
    with pytest.raises(IntegrityError):
        load_split(prepared, 'test')
    monkeypatch.setenv('RAMP_VERIFY', 'never')
    with pytest.raises(ValueError, match=r'\$RAMP_VERIFY must be one of'):
        load_split(prepared, 'test')


@pytest.mark.parametrize('suffix', ['.nii', '.nii.gz'])
def test_check_nifti_finds_short_files(tmp_path, suffix):
    path = tmp_path / f'x{suffix}'
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.int16), np.eye(4)), str(path))
    check_nifti(path)
    cut(path, 0.7)
    with pytest.raises(IntegrityError, match=rf'x{suffix}: truncated'):
        check_nifti(path)
    path.write_bytes(b'no')
    with pytest.raises(IntegrityError, match=f'x{suffix}'):
        check_nifti(path)


def test_a_gz_name_that_is_not_gzip_is_refused(tmp_path):
    path = tmp_path / 'x.nii.gz'
    path.write_bytes(b'plain text, not gzip' * 10)
    with pytest.raises(IntegrityError, match='not a gzip file'):
        check_nifti(path)
    with gzip.open(path, 'wb') as f:
        f.write(b'x' * 400)  # gzip, but not NIfTI
    with pytest.raises(IntegrityError, match='not a NIfTI-1/NIfTI-2 image'):
        check_nifti(path)
    path.write_bytes(path.read_bytes()[:30])  # gzip cut inside its first block
    with pytest.raises(IntegrityError, match=r'x\.nii\.gz: '):
        check_nifti(path)


# Data identity of a stress run ------------------------------------------------------


def test_data_identity_comes_from_the_files_on_disk(prepared):
    ids = json.loads((prepared / 'splits.json').read_text())['test']
    before = data_fingerprint(prepared, ids)
    _, _, label = first(prepared)
    flip_byte(label)  # manifest.csv still holds the old SHA-256
    assert data_fingerprint(prepared, ids) != before


def test_an_edited_label_invalidates_finished_results(prepared, tmp_path):
    out = tmp_path / 'results'
    outcome = run_stress_test(label_of, prepared, out, protocol=PROTOCOL)
    assert outcome.evaluated
    _, _, label = first(prepared)
    flip_byte(label)
    with pytest.raises(IntegrityError, match=label.name):  # default: SHA-256
        run_stress_test(label_of, prepared, out, protocol=PROTOCOL)
    # Without hashing on read, the run's identity still changes: refused.
    with pytest.raises(ResultsError, match='data_sha256'):
        run_stress_test(label_of, prepared, out, protocol=PROTOCOL, verify='size')


def test_stress_cli_refuses_a_truncated_ct_and_scores_nothing(prepared, tmp_path):
    folder = tmp_path / 'model'
    folder.mkdir()
    model = folder / 'm.pt'
    torch.jit.save(torch.jit.script(torch.nn.Conv3d(1, 6, 1)), model)
    model.with_suffix('.json').write_text('{"hu_range": [-200, 300], "patch_size": 16}')
    _, image, _ = first(prepared)
    cut(image, 0.02)
    out = tmp_path / 'out'
    for verify in ('sha256', 'size'):
        result = invoke(stress_main, ['run', '--model', model, '--data', prepared,
                                      '--out', out, '--families', 'blur', '--levels',
                                      0.1, '--no-progress', '--verify', verify],
                        1)  # fmt: skip
        assert image.name in result.output
        assert not (out / 'results.csv').exists()
        assert not (out / 'summary.json').exists()


# Zero voxel spacing -----------------------------------------------------------------


def zero_spacing(root: Path, path: Path, fields: tuple[str, ...]) -> None:
    """Write a zero spacing into the header of ``path`` (pixdim[1] and/or the
    first column of the sform), and record the new file in the manifest, so
    only the header is wrong."""
    data = bytearray(gzip.decompress(path.read_bytes()))
    if 'pixdim' in fields:
        struct.pack_into('<f', data, 80, 0.0)
    if 'sform' in fields:
        for offset in (280, 296, 312):
            struct.pack_into('<f', data, offset, 0.0)
    path.write_bytes(gzip.compress(bytes(data)))
    table = list(manifest(root).values())
    for row in table:
        for key in ('image', 'label'):
            if root / row[key] == path:
                row[f'{key}_sha256'] = file_sha256(path)
                row[f'{key}_bytes'] = str(path.stat().st_size)
    with (root / 'manifest.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, list(table[0]), lineterminator='\n')
        writer.writeheader()
        writer.writerows(table)


@pytest.mark.parametrize('fields', [('pixdim',), ('sform',)])
@pytest.mark.parametrize('which', ['image', 'label'])
def test_a_zero_spacing_is_refused_naming_the_file(prepared, which, fields):
    _, image, label = first(prepared)
    path = image if which == 'image' else label
    zero_spacing(prepared, path, fields)
    for mode in ('sha256', 'size'):
        with pytest.raises(IntegrityError, match=rf'{path.name}: zero or non-finite'):
            load_split(prepared, 'test', verify=mode)


def test_stress_cli_refuses_a_zero_spacing_and_scores_nothing(prepared, tmp_path):
    _, image, _ = first(prepared)
    zero_spacing(prepared, image, ('pixdim', 'sform'))
    model = tmp_path / 'm.pt'
    torch.jit.save(torch.jit.script(torch.nn.Conv3d(1, 6, 1)), model)
    model.with_suffix('.json').write_text('{"hu_range": [-200, 300], "patch_size": 16}')
    out = tmp_path / 'out'
    result = invoke(stress_main, ['run', '--model', model, '--data', prepared, '--out',
                                  out, '--families', 'blur', '--levels', 0.1,
                                  '--no-progress'], 1)  # fmt: skip
    assert f'{image}: zero or non-finite voxel spacing' in result.output
    assert not (out / 'results.csv').exists()


# ramp-prep: non-finite CTs, full disks ---------------------------------------------


@pytest.fixture
def nonfinite_source(tmp_path) -> Path:
    source = tmp_path / 'source'
    invoke(prep_main, ['synth', source, '--layout', 'totalseg', '--subjects', 2,
                       '--shape', '16,16,16'], 0)  # fmt: skip
    ct = source / 'synth0001' / 'ct.nii.gz'
    image = nib.load(str(ct))
    data = np.asanyarray(image.dataobj).astype(np.float32)
    data[1, 2, 3] = np.nan
    data[4, 5, 6] = np.inf
    data[7, 8, 9] = -np.inf
    nib.save(nib.Nifti1Image(data, image.affine), str(ct))
    return source


def test_prep_fails_a_ct_with_nan_or_inf_naming_it(nonfinite_source, tmp_path):
    out = tmp_path / 'out'
    result = invoke(prep_main, ['totalseg', nonfinite_source, out, '--no-progress'],
                    1)  # fmt: skip
    assert 'FAILED synth0001' in result.output
    assert 'synth0001/ct.nii.gz: 3 of 4096 voxels are not finite' in result.output
    assert '1 NaN, 1 +Inf, 1 -Inf' in result.output
    assert '--repair-nonfinite' in result.output
    assert 'synth0001' not in manifest(out)  # never prepared
    assert 'synth0002' in manifest(out)


def test_prep_repairs_and_records_with_the_flag(nonfinite_source, tmp_path):
    out = tmp_path / 'out'
    invoke(prep_main, ['totalseg', nonfinite_source, out, '--no-progress',
                       '--repair-nonfinite'], 0)  # fmt: skip
    data = np.asanyarray(nib.load(str(out / 'images' / 'synth0001.nii.gz')).dataobj)
    assert np.isfinite(data).all()
    assert data[1, 2, 3] == -1024 and data[4, 5, 6] == 3071 and data[7, 8, 9] == -1024
    source = np.asanyarray(
        nib.load(str(nonfinite_source / 'synth0001' / 'ct.nii.gz')).dataobj
    )
    finite = np.isfinite(source)
    np.testing.assert_array_equal(data[finite], source[finite])  # nothing else moved
    report = (out / 'report.txt').read_text()
    assert 'Non-finite CT voxels repaired' in report
    assert 'synth0001: 1 NaN, 1 +Inf, 1 -Inf' in report
    load_split(out, 'all')  # verified and finite


def test_a_full_output_disk_is_reported_as_writing_the_output(tmp_path):
    if not Path('/dev/full').exists():
        pytest.skip('needs /dev/full')
    source = tmp_path / 'ct.nii.gz'
    nib.save(nib.Nifti1Image(np.ones((32, 32, 32), np.float32), np.eye(4)), str(source))
    tmp = tmp_path / 'copy.nii.gz'
    os.symlink('/dev/full', tmp)
    destination = tmp_path / 'out' / 'images' / 'ct.nii.gz'
    with pytest.raises(FatalPrepError) as caught:
        imio.copy_checked(source, tmp, destination)
    message = str(caught.value)
    assert message.startswith(f'Disk full while writing {destination}')
    assert 'reading' not in message and str(source) not in message
