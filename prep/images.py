"""Image I/O for ``ramp-prep``: checked reads, header repair, atomic writes.

SimpleITK reads and writes every image. Two things it does not do are done
here:

* Integrity: SimpleITK reads a truncated ``.nii.gz`` without complaint (the
  missing voxels come back as garbage), so every gzip stream is checked: the
  uncompressed size in the gzip trailer must match the NIfTI header, and the
  copied CT is fully decompressed while it is copied.
* Non-orthonormal direction cosines (about 30 AbdomenCT-1K files): SimpleITK
  refuses them. Such files are read with NiBabel (already a TorchIO
  dependency) and their direction matrix is replaced by the nearest
  orthonormal one (polar decomposition); the repair is reported.

Writes go to a temporary file in the destination folder followed by
``os.replace``, so a killed run never leaves a half-written output under its
final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from torchio_ramp.files import TMP_MARKER  # noqa: F401 - re-exported
from torchio_ramp.files import atomic_path
from torchio_ramp.files import file_sha256 as sha256_file  # noqa: F401 - re-exported
from torchio_ramp.files import remove_stale_temporaries  # noqa: F401 - re-exported
from torchio_ramp.files import temp_path  # noqa: F401 - re-exported
from torchio_ramp.integrity import expected_size
from torchio_ramp.integrity import nifti_payload_size  # noqa: F401 - re-exported

from .errors import PrepError
from .errors import describe_os_error

"""Infix of temporary files; leftovers of killed runs are removed on re-run."""

CHUNK = 1 << 20
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image in SimpleITK (LPS) terms.

    Attributes:
        size: Voxels along ``(I, J, K)``.
        spacing: Voxel size in mm.
        origin: Centre of the first voxel in LPS mm.
        direction: Row-major 3x3 direction cosines.
    """

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image | sitk.ImageFileReader) -> Geometry:
        """Geometry of an image or of a reader after ``ReadImageInformation``.

        Example:
            >>> Geometry.of(sitk.Image(4, 5, 6, sitk.sitkUInt8)).size
            (4, 5, 6)
        """
        return cls(
            tuple(int(n) for n in image.GetSize()),
            tuple(float(x) for x in image.GetSpacing()),
            tuple(float(x) for x in image.GetOrigin()),
            tuple(float(x) for x in image.GetDirection()),
        )

    def apply(self, image: sitk.Image) -> sitk.Image:
        """Set this geometry's spacing, origin and direction on ``image``."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def differences(self, other: Geometry) -> list[str]:
        """Describe how ``other`` differs from this geometry (empty if equal).

        Spacing and direction must agree to 1e-5 (relative), the origin to
        1e-3 mm; headers rewritten by other tools often differ by float32
        rounding only, which is accepted.

        Example:
            >>> eye = (1, 0, 0, 0, 1, 0, 0, 0, 1)
            >>> a = Geometry((2, 2, 2), (1.0,) * 3, (0.0,) * 3, eye)
            >>> b = Geometry((2, 2, 3), (1.0,) * 3, (0.0,) * 3, eye)
            >>> a.differences(b)
            ['size (2, 2, 3) vs (2, 2, 2)']
        """
        out = []
        if self.size != other.size:
            out.append(f'size {other.size} vs {self.size}')
        checks = (
            ('spacing', self.spacing, other.spacing, 1e-5, 1e-6),
            ('origin', self.origin, other.origin, 1e-6, 1e-3),
            ('direction', self.direction, other.direction, 0, 1e-5),
        )
        for name, mine, theirs, rtol, atol in checks:
            if len(mine) != len(theirs) or not np.allclose(
                theirs, mine, rtol=rtol, atol=atol
            ):
                out.append(f'{name} {_fmt(theirs)} vs {_fmt(mine)}')
        return out


def _fmt(values) -> str:
    return '(' + ', '.join(f'{v:.6g}' for v in values) + ')'


@dataclass(frozen=True)
class Repair:
    """A header repaired on reading (non-orthonormal direction cosines).

    Attributes:
        path: The file whose header was repaired.
        max_angle_deg: Largest angle between an original axis and its
            orthonormalised replacement.
    """

    path: str
    max_angle_deg: float

    def describe(self) -> str:
        """One line for the report.

        Example:
            >>> Repair('x.nii.gz', 0.25).describe()[-30:]
            '(axes moved by up to 0.25 deg)'
        """
        return (
            f'{self.path}: non-orthonormal direction cosines orthonormalised '
            f'(axes moved by up to {self.max_angle_deg:.3g} deg)'
        )


# --------------------------------------------------------------------------
# Integrity checks


def _is_gzip_name(path: Path) -> bool:
    return path.name.endswith('.gz')


def _gzip_error(path: Path, detail: str) -> PrepError:
    return PrepError(
        f'{path}: corrupt gzip file ({detail}); re-download or re-export it.'
    )


class _SinkError(Exception):
    """Writing the copy failed (not reading the source): e.g. a full disk."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _stream(path: Path, sink=None) -> tuple[int, str]:
    """Decompress (or read) the whole file, optionally copying raw bytes.

    Returns the uncompressed size and the SHA-256 of the raw file bytes.
    """
    sha = hashlib.sha256()
    total = 0
    gz = _is_gzip_name(path)
    try:
        with path.open('rb') as f:
            first = f.read(2)
            if gz and first != b'\x1f\x8b':
                raise PrepError(
                    f'{path}: not a gzip file although it is named .gz '
                    f'(it starts with {first!r}); re-download or re-export it.'
                )
            f.seek(0)
            inflater = zlib.decompressobj(wbits=31) if gz else None
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                sha.update(chunk)
                if sink is not None:
                    try:
                        sink.write(chunk)
                    except OSError as error:
                        raise _SinkError(error) from error
                if inflater is None:
                    total += len(chunk)
                    continue
                data = chunk
                while data:
                    try:
                        total += len(inflater.decompress(data))
                    except zlib.error as error:
                        raise _gzip_error(path, str(error)) from error
                    data = inflater.unused_data
                    if inflater.eof and data:  # concatenated gzip members
                        inflater = zlib.decompressobj(wbits=31)
                    elif inflater.eof:
                        break
            if inflater is not None and not inflater.eof:
                raise PrepError(
                    f'{path}: truncated gzip file (it ends before the end of '
                    'the compressed data, e.g. an interrupted download); '
                    're-download or re-export it.'
                )
    except OSError as error:
        raise describe_os_error(error, path, 'reading') from error
    return total, sha.hexdigest()


def check_integrity(path: Path, *, full: bool = False) -> None:
    """Raise :class:`PrepError` if ``path`` is a truncated or corrupt file.

    The quick check compares the uncompressed size stored in the gzip
    trailer (or the file size, for ``.nii``) with the size the NIfTI header
    implies; only when they disagree, or with ``full=True``, is the whole
    stream decompressed to find out what is wrong.

    Args:
        path: A ``.nii.gz`` or ``.nii`` file.
        full: Decompress the whole stream (detects any corruption).

    Example:
        >>> check_integrity(Path('ct.nii.gz'))  # doctest: +SKIP
    """
    expected = expected_size(path)
    if not full:
        try:
            if _is_gzip_name(path):
                with path.open('rb') as f:
                    f.seek(-4, os.SEEK_END)
                    stored = struct.unpack('<I', f.read(4))[0]
                if expected is not None and stored == expected % (1 << 32):
                    return
            else:
                actual = path.stat().st_size
                if expected is None or actual >= expected:
                    return
                raise PrepError(
                    f'{path}: truncated NIfTI file ({actual} bytes, the header '
                    f'needs {expected}); re-download or re-export it.'
                )
        except OSError as error:
            if error.errno is None:  # seek before start: tiny file
                raise PrepError(f'{path}: file too small to be an image') from error
            raise describe_os_error(error, path, 'reading') from error
    size, _ = _stream(path)
    if expected is not None and size < expected:
        raise PrepError(
            f'{path}: truncated NIfTI data ({size} bytes after decompression, '
            f'the header needs {expected}); re-download or re-export it.'
        )


# --------------------------------------------------------------------------
# Reading


def _orthonormal_problem(error: RuntimeError) -> bool:
    return 'orthonormal' in str(error)


def _itk_reason(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else repr(error)
    return text.removeprefix('ITK ERROR: ').removeprefix('sitk::ERROR: ')


def _unreadable(path: Path, error: Exception) -> PrepError:
    """Explain why SimpleITK could not read ``path`` (gzip checked first)."""
    if not path.exists():
        return PrepError(f'{path}: file not found')
    check_integrity(path, full=True)  # raises with a precise gzip message
    return PrepError(f'{path}: unreadable image ({_itk_reason(error)})')


def read_header(path: Path) -> tuple[Geometry, str, int] | None:
    """Read the geometry and voxel type of ``path`` without its voxels.

    Returns:
        ``(geometry, pixel type name, number of components)``, or ``None``
        when the direction cosines are not orthonormal (use
        :func:`read_image`, which repairs them).

    Raises:
        PrepError: If the file is missing or unreadable.

    Example:
        >>> geometry, pixel, ncomp = read_header(Path('ct.nii.gz'))  # doctest: +SKIP
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        if _orthonormal_problem(error):
            return None
        raise _unreadable(path, error) from error
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    return Geometry.of(reader), pixel, reader.GetNumberOfComponents()


def read_image(path: Path, *, check: bool = True) -> tuple[sitk.Image, Repair | None]:
    """Read an image with SimpleITK, repairing non-orthonormal headers.

    Args:
        path: Image file.
        check: Check the gzip trailer against the header first (catches
            truncated files, which SimpleITK reads without error).

    Returns:
        The image and, when its header had to be repaired, a :class:`Repair`.

    Raises:
        PrepError: If the file is missing, truncated, corrupt or unreadable.

    Example:
        >>> image, repair = read_image(Path('mask.nii.gz'))  # doctest: +SKIP
    """
    if not path.exists():
        raise PrepError(f'{path}: file not found')
    if check:
        check_integrity(path)
    try:
        return sitk.ReadImage(str(path)), None
    except RuntimeError as error:
        if not _orthonormal_problem(error):
            raise _unreadable(path, error) from error
    return _read_repaired(path)


def _read_repaired(path: Path) -> tuple[sitk.Image, Repair]:
    import nibabel as nib

    try:
        nii = nib.load(str(path))
        data = np.asanyarray(nii.dataobj)
    except Exception as error:
        raise PrepError(
            f'{path}: SimpleITK rejects its direction cosines as '
            f'non-orthonormal and NiBabel cannot read it either ({error})'
        ) from error
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise PrepError(f'{path}: expected a 3D image, got shape {data.shape}')
    if np.issubdtype(data.dtype, np.floating):
        data = _integral_or_float(data)
    affine = np.asarray(nii.affine, float)
    matrix = affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    if np.any(spacing <= 0):
        raise PrepError(f'{path}: header has a zero-length axis; cannot repair')
    cosines = matrix / spacing
    u, _, vt = np.linalg.svd(cosines)
    fixed = u @ vt
    cos_angles = np.clip(np.sum(fixed * cosines, axis=0), -1, 1)
    angle = float(np.degrees(np.max(np.arccos(cos_angles))))
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.T))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((LPS_FROM_RAS @ fixed).ravel().tolist())
    image.SetOrigin((LPS_FROM_RAS @ affine[:3, 3]).tolist())
    return image, Repair(str(path), angle)


def _integral_or_float(data: np.ndarray) -> np.ndarray:
    """Scaled integer data comes back as float from NiBabel; undo that."""
    if data.size and np.all(np.isfinite(data)) and not np.any(np.modf(data)[0]):
        low, high = float(data.min()), float(data.max())
        for dtype in (np.uint8, np.int16, np.int32):
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                return data.astype(dtype)
    return data.astype(np.float32)


def integer_array(image: sitk.Image, path: Path, allowed: range) -> np.ndarray:
    """Voxels of a mask as an integer array (SimpleITK order ``K, J, I``).

    Integer voxel types are accepted; floating-point ones only when every
    value is a whole number. All values must lie in ``allowed``. A ``uint8``
    image is returned as a view of its buffer, without a copy: keep ``image``
    alive while the array is in use.

    Raises:
        PrepError: For vector images, fractional values (e.g. probability
            maps) or values outside ``allowed``, naming ``path``.

    Example:
        >>> img = sitk.GetImageFromArray(np.array([[[0, 1, 2]]], np.uint8))
        >>> integer_array(img, Path('m.nii.gz'), range(2))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ramp_prep.errors.PrepError: m.nii.gz: mask has values [2] outside 0..1 ...
    """
    pixel = image.GetPixelIDTypeAsString()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise PrepError(
            f'{path}: mask has {image.GetNumberOfComponentsPerPixel()} components '
            f'per voxel ({pixel}); expected a scalar label image'
        )
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating):
        fractional = np.modf(array)[0] != 0
        if np.any(fractional) or not np.all(np.isfinite(array)):
            sample = np.unique(array[fractional | ~np.isfinite(array)])[:5].tolist()
            raise PrepError(
                f'{path}: mask has non-integer values {sample} (voxel type '
                f'{pixel}); expected integer labels, not probabilities'
            )
    low, high = array.min().item(), array.max().item()
    if low < allowed.start or high >= allowed.stop:
        outside = (array < allowed.start) | (array >= allowed.stop)
        values = [_num(v) for v in np.unique(array[outside])[:10]]
        raise PrepError(
            f'{path}: mask has values {values} outside '
            f'{allowed.start}..{allowed.stop - 1} (voxel type {pixel})'
        )
    if array.dtype == np.uint8:
        return array
    return array.astype(np.uint8)


def _num(value) -> int | float:
    value = value.item()
    return int(value) if float(value).is_integer() else value


def resample_like(image: sitk.Image, geometry: Geometry) -> sitk.Image:
    """Nearest-neighbour resample of a label image onto ``geometry``.

    Example:
        >>> eye = (1, 0, 0, 0, 1, 0, 0, 0, 1)
        >>> ref = Geometry((4, 4, 4), (1.0,) * 3, (0.0,) * 3, eye)
        >>> resample_like(sitk.Image(2, 2, 2, sitk.sitkUInt8), ref).GetSize()
        (4, 4, 4)
    """
    reference = geometry.apply(sitk.Image(geometry.size, sitk.sitkUInt8))
    return sitk.Resample(
        image,
        reference,
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        0,
        image.GetPixelID(),
    )


# --------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def atomic_output(destination: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``destination`` on success.

    :func:`torchio_ramp.files.atomic_path` (``fsync``, then ``os.replace``;
    on any exception the temporary file is removed and ``destination`` is
    left as it was), with OS errors turned into :class:`PrepError` naming
    the file.

    Example:
        >>> with atomic_output(Path('out/splits.json')) as tmp:  # doctest: +SKIP
        ...     tmp.write_text('{}')
    """
    try:
        with atomic_path(destination) as tmp:
            yield tmp
    except OSError as error:
        raise describe_os_error(error, destination, 'writing') from error


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def write_text(destination: Path, text: str) -> None:
    """Atomically write a UTF-8 text file (newlines as given).

    Example:
        >>> write_text(Path('out/report.txt'), 'ok\\n')  # doctest: +SKIP
    """
    with (
        atomic_output(destination) as tmp,
        tmp.open('x', encoding='utf-8', newline='') as f,
    ):
        f.write(text)


def write_image(image: sitk.Image, destination: Path) -> None:
    """Atomically write ``image`` with SimpleITK (compressed for ``.gz``).

    Raises:
        PrepError: Naming ``destination``; a full disk is reported as such.

    Example:
        >>> image = sitk.Image(2, 2, 2, sitk.sitkUInt8)
        >>> write_image(image, Path('out/labels/s1.nii.gz'))  # doctest: +SKIP
    """
    with atomic_output(destination) as tmp:
        sitk_write(image, tmp, destination)


def sitk_write(image: sitk.Image, tmp: Path, destination: Path) -> None:
    """Write ``image`` to ``tmp``, explaining failures in terms of ``destination``."""
    try:
        sitk.WriteImage(image, str(tmp), useCompression=_is_gzip_name(destination))
    except RuntimeError as error:
        _unlink(tmp)
        raise _write_failure(destination, error) from error


def _write_failure(destination: Path, error: Exception) -> PrepError:
    import errno
    import shutil

    from .errors import FatalPrepError

    try:
        free = shutil.disk_usage(destination.parent).free
    except OSError:
        free = None
    if free is not None and free < 64 * CHUNK:
        return describe_os_error(
            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), destination, 'writing'
        )
    if not os.access(destination.parent, os.W_OK):
        return FatalPrepError(f'Permission denied while writing {destination}')
    return PrepError(f'Cannot write {destination}: {_itk_reason(error)}')


def copy_checked(
    source: Path, tmp: Path, destination: Path | None = None
) -> tuple[int, str]:
    """Copy ``source`` to ``tmp`` byte for byte while checking its gzip stream.

    Errors name ``destination`` (the final path ``tmp`` stands in for).

    Returns:
        The uncompressed size and the SHA-256 of the copied bytes.

    Raises:
        PrepError: If the source is truncated or corrupt (``tmp`` removed),
            or writing fails.

    Example:
        >>> copy_checked(Path('ct.nii.gz'), Path('.tmp.nii.gz'))  # doctest: +SKIP
    """
    try:
        with tmp.open('wb') as sink:
            result = _stream(source, sink)
    except _SinkError as error:
        _unlink(tmp)
        target = destination or tmp
        raise describe_os_error(error.error, target, 'writing') from error.error
    except OSError as error:  # opening or closing (flushing) the copy
        _unlink(tmp)
        raise describe_os_error(error, destination or tmp, 'writing') from error
    except BaseException:
        _unlink(tmp)
        raise
    return result


def verify_stream(source: Path) -> tuple[int, str]:
    """Read ``source`` completely, checking its gzip stream (for ``--link``).

    Returns:
        The uncompressed size and the SHA-256 of the file.

    Example:
        >>> verify_stream(Path('ct.nii.gz'))  # doctest: +SKIP
    """
    return _stream(source)
