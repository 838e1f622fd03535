"""Verify prepared files when they are read: size, SHA-256, NIfTI completeness.

SimpleITK and NiBabel decode a truncated ``.nii.gz`` without complaint (the
missing voxels come back as zeros), and nothing stops a file from being edited
after ``ramp-prep`` recorded it. Every reader of a prepared dataset therefore
checks each file against ``manifest.csv`` before use:

* ``'sha256'`` (default): the size and the SHA-256 of the bytes;
* ``'size'``: the size only, plus the NIfTI/gzip completeness check below
  (for cohorts too large to hash on every read).

Hashes are cached per process by (device, inode, size, mtime), so reading the
same unchanged file twice hashes it once. :func:`check_nifti` compares the
uncompressed size stored in a gzip trailer (or the size of a ``.nii``) with
what the NIfTI header needs, reading a few hundred bytes.

The mode is an argument of :func:`~torchio_ramp.datasets.load_split` and of
the command-line tools (``--verify``); the environment variable
:data:`VERIFY_ENV` sets the default.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

from . import files

VERIFY_MODES: tuple[str, ...] = ('sha256', 'size')
"""How prepared files are checked against the manifest when read."""

VERIFY_ENV = 'RAMP_VERIFY'
"""Environment variable giving the default verification mode."""

_HASHES: dict[tuple[int, int, int, int], str] = {}

# Per header size (NIfTI-1, NIfTI-2): the type of dim, the type of the real
# fields, the offset of pixdim, the type and offset of sform_code, and the
# offsets of srow_x, srow_y, srow_z.
_HEADER_LAYOUTS = {
    348: ('h', 'f', 76, 'h', 254, (280, 296, 312)),
    540: ('q', 'd', 104, 'i', 348, (400, 432, 464)),
}


class IntegrityError(ValueError):
    """A file is truncated, corrupt, or differs from what was recorded.

    The message names the file and says what to do.
    """


def verify_mode(mode: str | None = None) -> str:
    """The verification mode: ``mode``, else ``$RAMP_VERIFY``, else ``'sha256'``.

    Example:
        >>> verify_mode('size')
        'size'
    """
    value = mode if mode is not None else os.environ.get(VERIFY_ENV) or 'sha256'
    if value not in VERIFY_MODES:
        source = 'verify' if mode is not None else f'${VERIFY_ENV}'
        message = f'{source} must be one of {list(VERIFY_MODES)}, not {value!r}'
        raise ValueError(message)
    return value


def nifti_payload_size(header: bytes) -> int | None:
    """Bytes a single-file NIfTI should hold, from its first 540 bytes.

    Args:
        header: At least the first 348 (NIfTI-1) or 540 (NIfTI-2) bytes of
            the uncompressed file.

    Returns:
        ``vox_offset`` plus the voxel data size, or ``None`` when ``header``
        is not a single-file NIfTI header.

    Example:
        >>> import nibabel as nib, numpy as np
        >>> img = nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4))
        >>> nifti_payload_size(img.header.binaryblock)  # 352 + 2 * 3 * 4 * 2
        400
    """
    for endian in '<>':
        if len(header) >= 348 and struct.unpack(endian + 'i', header[:4])[0] == 348:
            if header[344:348] not in (b'n+1\0',):
                return None
            dim = struct.unpack(endian + '8h', header[40:56])
            bitpix = struct.unpack(endian + 'h', header[72:74])[0]
            offset = max(struct.unpack(endian + 'f', header[108:112])[0], 352)
            break
        if len(header) >= 540 and struct.unpack(endian + 'i', header[:4])[0] == 540:
            if header[4:8] != b'n+2\0':
                return None
            bitpix = struct.unpack(endian + 'h', header[14:16])[0]
            dim = struct.unpack(endian + '8q', header[16:80])
            offset = max(struct.unpack(endian + 'q', header[168:176])[0], 544)
            break
    else:
        return None
    ndim = dim[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    voxels = math.prod(max(int(n), 1) for n in dim[1 : ndim + 1])
    return int(offset) + voxels * bitpix // 8


def nifti_spacing_problem(header: bytes) -> str | None:
    """What is wrong with the voxel spacing of a single-file NIfTI header.

    A spacing of 0 (or NaN, Inf) in ``pixdim`` or in a column of the
    ``sform`` makes readers disagree: SimpleITK replaces it by 1 mm, NiBabel
    cannot invert the affine, and an image read one way no longer lies on its
    label read the other way.

    Args:
        header: The first 348 (NIfTI-1) or 540 (NIfTI-2) bytes.

    Returns:
        ``None`` if every spatial spacing is finite and non-zero (or the
        header is not NIfTI), else a description.

    Example:
        >>> import nibabel as nib, numpy as np
        >>> header = nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4)).header
        >>> nifti_spacing_problem(header.binaryblock) is None
        True
        >>> block = bytearray(header.binaryblock)
        >>> block[80:84] = bytes(4)  # pixdim[1] = 0
        >>> nifti_spacing_problem(bytes(block))
        'zero or non-finite voxel spacing in its header (pixdim (0.0, 1.0, 1.0))'
    """
    for endian in '<>':
        size = struct.unpack(endian + 'i', header[:4])[0] if len(header) >= 4 else 0
        layout = _HEADER_LAYOUTS.get(size)
        if layout is not None and len(header) >= size:
            break
    else:
        return None
    dim, real, pixdim_at, code, code_at, srows = layout

    def read(fmt: str, offset: int) -> tuple:
        return struct.unpack_from(endian + fmt, header, offset)

    spatial = max(1, min(int(read(dim, 40 if dim == 'h' else 16)[0]), 3))
    spacing = tuple(float(v) for v in read('8' + real, pixdim_at)[1 : 1 + spatial])
    if not all(math.isfinite(v) and v != 0 for v in spacing):
        return f'zero or non-finite voxel spacing in its header (pixdim {spacing})'
    if read(code, code_at)[0] > 0:
        rows = [read('4' + real, offset) for offset in srows]
        norms = [math.hypot(*(row[axis] for row in rows)) for axis in range(spatial)]
        if not all(math.isfinite(n) and n > 0 for n in norms):
            return 'zero or non-finite voxel spacing in its sform (srow_x/y/z)'
    return None


def is_gzip_name(path: Path) -> bool:
    """Whether ``path`` is named as a gzip file (``.gz``)."""
    return path.name.endswith('.gz')


def expected_size(path: Path) -> int | None:
    """Uncompressed size ``path`` should have according to its NIfTI header.

    Returns ``None`` when the header cannot be read as single-file NIfTI.

    Example:
        >>> expected_size(Path('ct.nii.gz'))  # doctest: +SKIP
        739432
    """
    try:
        opener = gzip.open if is_gzip_name(path) else open
        with opener(path, 'rb') as f:
            return nifti_payload_size(f.read(540))
    except (OSError, EOFError, zlib.error):
        return None


def _check_spacing(path: Path, header: bytes) -> None:
    problem = nifti_spacing_problem(header)
    if problem is not None:
        raise IntegrityError(f'{path}: {problem}; re-create it with a valid spacing')


def check_nifti(path: str | Path) -> None:
    """Refuse a NIfTI file that is shorter than its header says (quick), or
    whose header has a zero voxel spacing (:func:`nifti_spacing_problem`).

    For ``.nii.gz`` the uncompressed size in the gzip trailer (modulo 2**32)
    must equal the size the header implies; for ``.nii`` the file must be at
    least that long. Files that are not single-file NIfTI are not checked.

    Raises:
        IntegrityError: Naming ``path``.

    Example:
        >>> check_nifti(Path('ct.nii.gz'))  # doctest: +SKIP
    """
    path = Path(path)
    if not path.name.endswith(('.nii', '.nii.gz')):
        return
    try:
        if is_gzip_name(path):
            with path.open('rb') as f:
                if f.read(2) != b'\x1f\x8b':
                    message = (
                        f'{path}: not a gzip file although it is named .gz;'
                        ' re-create it'
                    )
                    raise IntegrityError(message)
                f.seek(0, os.SEEK_END)
                if f.tell() < 18:
                    raise IntegrityError(f'{path}: file too small to be an image')
                f.seek(-4, os.SEEK_END)
                stored = struct.unpack('<I', f.read(4))[0]
            try:
                with gzip.open(path, 'rb') as f:
                    head = f.read(540)
            except (EOFError, zlib.error, gzip.BadGzipFile) as error:
                message = (
                    f'{path}: truncated or corrupt (its NIfTI header cannot be'
                    f' decompressed: {error}); re-create it'
                )
                raise IntegrityError(message) from error
            expected = nifti_payload_size(head)
            if expected is None:
                message = f'{path}: not a NIfTI-1/NIfTI-2 image (no valid header)'
                raise IntegrityError(message)
            _check_spacing(path, head)
            if stored != expected % (1 << 32):
                message = (
                    f'{path}: truncated or corrupt gzip data (the gzip trailer says'
                    f' {stored} bytes, the NIfTI header needs {expected}); re-create'
                    ' it'
                )
                raise IntegrityError(message)
        else:
            with path.open('rb') as f:
                _check_spacing(path, f.read(540))
            expected = expected_size(path)
            actual = path.stat().st_size
            if actual < 348:
                message = f'{path}: {actual} bytes, too small to be a NIfTI image'
                raise IntegrityError(message)
            if expected is not None and actual < expected:
                message = (
                    f'{path}: truncated NIfTI file ({actual} bytes, the header'
                    f' needs {expected}); re-create it'
                )
                raise IntegrityError(message)
    except OSError as error:
        raise IntegrityError(f'{path}: cannot be read ({error.strerror})') from error


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, cached per process while it is unchanged.

    Example:
        >>> file_sha256(Path('labels/s0001.nii.gz'))  # doctest: +SKIP
        '5f0c...'
    """
    path = Path(path)
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _HASHES.get(key)
    if cached is not None:
        return cached
    value = files.file_sha256(path)
    if path.stat().st_mtime_ns == st.st_mtime_ns:  # not modified while hashing
        _HASHES[key] = value
    return value


def verify_file(
    path: str | Path,
    *,
    size: int | None,
    sha256: str | None,
    mode: str = 'sha256',
    recorded_in: str = 'manifest.csv',
) -> None:
    """Check one file against its recorded size and SHA-256.

    Args:
        path: The file.
        size: Recorded size in bytes (``None``: not recorded).
        sha256: Recorded SHA-256 (``None`` or empty: not recorded).
        mode: ``'sha256'`` or ``'size'`` (see :data:`VERIFY_MODES`).
        recorded_in: Where the values come from, for the message.

    Raises:
        FileNotFoundError: If the file is missing.
        IntegrityError: If it differs from the record or is truncated.

    Example:
        >>> verify_file('labels/s1.nii.gz', size=1234, sha256=None)  # doctest: +SKIP
    """
    path = Path(path)
    mode = verify_mode(mode)
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise FileNotFoundError(f'{path} is missing') from None
    except OSError as error:
        raise IntegrityError(f'{path}: cannot be read ({error.strerror})') from error
    hint = (
        'it was changed, truncated or replaced after ramp-prep wrote it; re-run'
        ' ramp-prep on this folder to rewrite it'
    )
    if size is not None and actual != size:
        message = f'{path}: {actual} bytes, but {recorded_in} records {size}; {hint}'
        raise IntegrityError(message)
    check_nifti(path)
    if mode == 'sha256' and sha256:
        try:
            digest = file_sha256(path)
        except OSError as error:
            message = f'{path}: cannot be read ({error.strerror})'
            raise IntegrityError(message) from error
        if digest != sha256:
            message = (
                f'{path}: SHA-256 {digest[:12]}... differs from {sha256[:12]}...'
                f' recorded in {recorded_in}; {hint}'
            )
            raise IntegrityError(message)


__all__ = [
    'VERIFY_ENV',
    'VERIFY_MODES',
    'IntegrityError',
    'check_nifti',
    'expected_size',
    'file_sha256',
    'nifti_payload_size',
    'nifti_spacing_problem',
    'verify_file',
    'verify_mode',
]
