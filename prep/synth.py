"""Write phantom CTs in the on-disk layouts of the real datasets.

``ramp-prep synth`` makes every command, test and demo run offline. The data
is labelled synthetic everywhere: a ``SYNTHETIC.txt`` file at the root, ids
that start with ``synth`` / ``SynthCase``, the NIfTI ``descrip`` field, the
``meta.csv`` study type, and, after conversion, ``dataset.json``
(``"synthetic": true``, dataset ``synthetic-...``), the report and the
subjects' ``dataset`` field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from torchio_ramp.labels import ABDOMENCT1K_SOURCE_NAMES
from torchio_ramp.labels import TOTALSEG_STRUCTURES
from torchio_ramp.phantoms import Phantom
from torchio_ramp.phantoms import make_phantom

from .errors import PrepError
from .errors import describe_os_error
from .images import LPS_FROM_RAS
from .images import write_image
from .images import write_text
from .sources import SYNTHETIC_MARKER

DESCRIP = 'ramp-prep SYNTHETIC phantom, not a patient'
LAYOUTS = ('totalseg', 'abdomenct1k')
ABDOMENCT1K_VALUES = {name: value for value, name in ABDOMENCT1K_SOURCE_NAMES.items()}


def phantom_ids(layout: str, n: int) -> list[str]:
    """Subject ids of ``n`` synthetic subjects.

    Example:
        >>> phantom_ids('totalseg', 2), phantom_ids('abdomenct1k', 1)
        (['synth0001', 'synth0002'], ['SynthCase_00001'])
    """
    if layout == 'totalseg':
        return [f'synth{i:04d}' for i in range(1, n + 1)]
    return [f'SynthCase_{i:05d}' for i in range(1, n + 1)]


def to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """Wrap an ``(I, J, K)`` array with a RAS affine as a SimpleITK image.

    Example:
        >>> image = to_sitk(np.zeros((4, 5, 6), np.int16), np.diag([2.0, 2, 2, 1]))
        >>> image.GetSize(), image.GetDirection()[0], image.GetSpacing()
        ((4, 5, 6), -1.0, (2.0, 2.0, 2.0))
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    matrix = affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((LPS_FROM_RAS @ (matrix / spacing)).ravel().tolist())
    image.SetOrigin((LPS_FROM_RAS @ affine[:3, 3]).tolist())
    image.SetMetaData('ITK_FileNotes', DESCRIP)
    return image


def write_synthetic(
    out: Path,
    layout: str = 'totalseg',
    subjects: int = 8,
    *,
    shape: tuple[int, int, int] = (64, 64, 48),
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0),
    seed: int = 0,
    release_folders: bool = False,
    progress: bool = False,
) -> list[str]:
    """Write ``subjects`` phantoms under ``out`` in a dataset's layout.

    Subject ``i`` (from 0) is ``make_phantom(shape, spacing, seed + i)``.

    * ``totalseg``: ``<id>/ct.nii.gz``, ``<id>/segmentations/<structure>.nii.gz``
      (the six structures of the head) and ``meta.csv`` (``;``).
    * ``abdomenct1k``: ``images/<id>_0000.nii.gz`` and ``masks/<id>.nii.gz``
      (1 liver, 2 kidney, 3 spleen, 4 pancreas), or with
      ``release_folders`` ``AbdomenCT-1K-ImagePart1/`` and ``Mask/``.

    Args:
        out: Folder to write (created; must be empty).
        layout: ``'totalseg'`` or ``'abdomenct1k'``.
        subjects: Number of phantoms.
        shape: Voxels per phantom.
        spacing: Voxel size in mm.
        seed: Seed of the first phantom.
        release_folders: AbdomenCT-1K release folder names.
        progress: Show a progress bar.

    Returns:
        The subject ids written.

    Raises:
        PrepError: If ``out`` is not empty or cannot be written.

    Example:
        >>> write_synthetic(Path('synthetic-totalseg'), 'totalseg', 2)  # doctest: +SKIP
        ['synth0001', 'synth0002']
    """
    if layout not in LAYOUTS:
        raise PrepError(f'--layout must be one of {LAYOUTS}, got {layout!r}')
    if subjects < 1:
        raise PrepError(f'--subjects must be at least 1, got {subjects}')
    if len(shape) != 3 or min(shape) < 8:
        message = f'--shape must be three sizes of at least 8 voxels, got {shape}'
        raise PrepError(message)
    if out.exists() and not out.is_dir():
        raise PrepError(f'OUT {out} exists and is not a folder')
    if out.is_dir() and any(out.iterdir()):
        what = (
            'holds earlier synthetic data; delete it first'
            if (out / SYNTHETIC_MARKER).exists()
            else f'is not empty and has no {SYNTHETIC_MARKER}; refusing to write '
            'synthetic data among other files'
        )
        raise PrepError(f'OUT {out} {what}, or choose an empty folder.')
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise describe_os_error(error, out, 'writing') from error
    write_text(
        out / SYNTHETIC_MARKER,
        'SYNTHETIC DATA written by `ramp-prep synth`: phantom CTs (smooth organ\n'
        'blobs with typical HU and noise), not patients. For tests and demos only.\n'
        f'layout={layout} subjects={subjects} shape={list(shape)} '
        f'spacing={list(spacing)} seed={seed}\n',
    )
    ids = phantom_ids(layout, subjects)
    if layout == 'totalseg':
        rows = ['image_id;age;gender;institute;study_type;split']
    image_dir = out / ('AbdomenCT-1K-ImagePart1' if release_folders else 'images')
    mask_dir = out / ('Mask' if release_folders else 'masks')
    for index, subject_id in enumerate(
        tqdm(ids, desc='ramp-prep synth', disable=not progress)
    ):
        phantom = make_phantom(
            shape, spacing, seed + index, pancreas=layout != 'totalseg'
        )
        try:
            _write_subject(out, layout, subject_id, phantom, image_dir, mask_dir)
        except OSError as error:
            raise describe_os_error(error, out / subject_id, 'writing') from error
        if layout == 'totalseg':
            rows.append(f'{subject_id};;;ramp-prep synth;SYNTHETIC phantom;')
    if layout == 'totalseg':
        write_text(out / 'meta.csv', '\n'.join(rows) + '\n')
    return ids


def _write_subject(
    out: Path,
    layout: str,
    subject_id: str,
    phantom: Phantom,
    image_dir: Path,
    mask_dir: Path,
) -> None:
    ct = to_sitk(phantom.hu, phantom.affine)
    if layout == 'totalseg':
        folder = out / subject_id / 'segmentations'
        folder.mkdir(parents=True, exist_ok=True)
        write_image(ct, out / subject_id / 'ct.nii.gz')
        for name in TOTALSEG_STRUCTURES:
            mask = to_sitk(phantom.masks[name], phantom.affine)
            write_image(mask, folder / f'{name}.nii.gz')
        return
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    labels = np.zeros(phantom.hu.shape, np.uint8)
    for name, mask in phantom.masks.items():
        source = name.removesuffix('_left').removesuffix('_right')
        if source in ABDOMENCT1K_VALUES:  # heart and colon are not annotated
            labels[mask > 0] = ABDOMENCT1K_VALUES[source]
    write_image(ct, image_dir / f'{subject_id}_0000.nii.gz')
    write_image(to_sitk(labels, phantom.affine), mask_dir / f'{subject_id}.nii.gz')
