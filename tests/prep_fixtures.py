"""Helpers for the ramp-prep tests: tiny synthetic releases and fault injection.

Synthetic releases are written by the real ``ramp-prep synth`` code path;
faults are injected into them the way they occur in real downloads.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from ramp_prep.synth import write_synthetic
from torchio_ramp.labels import TOTALSEG_STRUCTURES
from torchio_ramp.labels import TOTALSEG_V1_HEART_STRUCTURES

TOTALSEG_EXAMPLE = Path(__file__).parents[2] / 'shared' / 'data' / 'totalseg-example'
"""Two real CTs in the TotalSegmentator layout (``../shared`` beside the checkout)."""

SHAPE = (24, 24, 24)


def make_totalseg(root: Path, n: int = 3, seed: int = 0) -> list[str]:
    """A synthetic TotalSegmentator release of ``n`` tiny subjects."""
    return write_synthetic(root, 'totalseg', n, shape=SHAPE, seed=seed)


def make_abdomenct1k(
    root: Path, n: int = 3, seed: int = 0, release_folders: bool = False
) -> list[str]:
    """A synthetic AbdomenCT-1K release of ``n`` tiny cases."""
    return write_synthetic(
        root, 'abdomenct1k', n, shape=SHAPE, seed=seed, release_folders=release_folders
    )


def mask_path(root: Path, subject_id: str, structure: str) -> Path:
    """Path of a TotalSegmentator mask."""
    return root / subject_id / 'segmentations' / f'{structure}.nii.gz'


def read_array(path: Path) -> np.ndarray:
    """Voxels in SimpleITK order (K, J, I)."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def rewrite(path: Path, array: np.ndarray) -> None:
    """Replace the voxels of ``path`` keeping its geometry."""
    reference = sitk.ReadImage(str(path))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path), useCompression=True)


def truncate_gzip(path: Path, keep: float = 0.6) -> None:
    """Cut a ``.nii.gz`` like an interrupted download."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def garble_gzip(path: Path) -> None:
    """Overwrite bytes in the middle of the compressed stream."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def shift_origin(path: Path, millimetres: float = 6.0) -> None:
    """Move an image's origin along the first axis (geometry mismatch)."""
    image = sitk.ReadImage(str(path))
    origin = list(image.GetOrigin())
    origin[0] += millimetres
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path), useCompression=True)


def make_v1(root: Path, subject_id: str) -> None:
    """Turn a subject into the v1 layout: heart parts instead of ``heart``."""
    heart = mask_path(root, subject_id, 'heart')
    data = heart.read_bytes()
    for part in TOTALSEG_V1_HEART_STRUCTURES:
        mask_path(root, subject_id, part).write_bytes(data)
    heart.unlink()


def make_non_orthonormal(path: Path, shear: float = 0.02) -> np.ndarray:
    """Rewrite ``path`` with a sheared sform and no qform (SimpleITK refuses).

    Returns:
        The original RAS affine (before the shear).
    """
    nii = nib.load(str(path))
    data = np.asanyarray(nii.dataobj)
    affine = nii.affine.copy()
    sheared = affine.copy()
    sheared[0, 1] += shear * affine[1, 1]
    out = nib.Nifti1Image(data, sheared)
    out.set_sform(sheared, code=1)
    out.set_qform(None, code=0)
    nib.save(out, str(path))
    return affine


def all_structures() -> tuple[str, ...]:
    """The six structures of the head."""
    return TOTALSEG_STRUCTURES


def gunzip_ok(path: Path) -> bool:
    """Whether the whole gzip stream of ``path`` decompresses."""
    try:
        with gzip.open(path, 'rb') as f:
            while f.read(1 << 20):
                pass
    except (OSError, EOFError):
        return False
    return True


def invoke_cli(command, arguments, code: int):
    """Run a click ``command``; assert its exit ``code`` and, on failure, a clean error.

    A failing command must print no traceback and end with ``Error: ...``.
    """
    from click.testing import CliRunner

    result = CliRunner().invoke(command, [str(a) for a in arguments])
    assert result.exit_code == code, result.output + repr(result.exception)
    assert 'Traceback' not in result.output
    if code:
        assert result.output.strip().splitlines()[-1].startswith('Error: ')
    return result


def prepare_phantoms(root: Path, subjects: int, shape: str) -> Path:
    """SYNTHETIC TotalSegmentator phantoms through ``ramp-prep``, all in the test split.

    Runs ``ramp-prep synth`` into ``root/source`` and ``ramp-prep totalseg``
    into ``root/prepared`` (returned) with ``--fractions 0,0,1``.
    """
    from click.testing import CliRunner

    from ramp_prep.cli import main

    source, out = root / 'source', root / 'prepared'
    runner = CliRunner()
    for arguments in (
        ['synth', source, '--layout', 'totalseg', '--subjects', subjects,
         '--shape', shape],
        ['totalseg', source, out, '--fractions', '0,0,1', '--no-progress'],
    ):  # fmt: skip
        result = runner.invoke(main, [str(a) for a in arguments])
        assert result.exit_code == 0, result.output
    return out


STALL_SITE = '''\
"""Test hook: Python opens of some files, or renames of some temporary files, stall."""
import builtins
import io
import os
import time

_OPENS = {p for p in os.environ.get('RAMP_TEST_STALL_OPEN', '').split(os.pathsep) if p}
_RENAMES = os.environ.get('RAMP_TEST_STALL_RENAME', '')


def _stall():
    while True:
        time.sleep(60)


if _OPENS:
    _open = io.open

    def _stalling_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) in _OPENS:
            _stall()
        return _open(file, *args, **kwargs)

    builtins.open = io.open = _stalling_open

if _RENAMES:
    _replace = os.replace

    def _stalling_replace(source, destination, *args, **kwargs):
        if _RENAMES in os.path.basename(os.fspath(source)):
            _stall()
        return _replace(source, destination, *args, **kwargs)

    os.replace = _stalling_replace
'''


def stalling_environment(
    folder: Path, opens: list[Path] = (), rename: str = ''
) -> dict[str, str]:
    """Environment for a ``ramp-prep`` subprocess that stalls at chosen points.

    A ``sitecustomize`` module (loaded by every Python process, so also by the
    fork server and its workers) makes a Python ``open`` of any of ``opens``
    block for ever (a stalled network mount), and an ``os.replace`` of a file
    whose name contains ``rename`` block before it renames. The test then
    kills the run there.
    """
    import os

    site = folder / 'stall-site'
    site.mkdir(parents=True, exist_ok=True)
    (site / 'sitecustomize.py').write_text(STALL_SITE)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(site), *filter(None, [env.get('PYTHONPATH')])]
    )
    env['RAMP_TEST_STALL_OPEN'] = os.pathsep.join(str(p.resolve()) for p in opens)
    env['RAMP_TEST_STALL_RENAME'] = rename
    return env
