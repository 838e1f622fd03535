"""The reader of datasets prepared by ``ramp-prep``.

:func:`read_dataset_info` / :func:`load_split` read an output folder of
``ramp-prep totalseg|abdomenct1k`` (default layout or ``--format nnunet``) as a
:class:`torchio.SubjectsDataset`. The phantom generator lives in
:mod:`torchio_ramp.phantoms`; :func:`phantom_subject` and :func:`make_phantom`
are re-exported here, where earlier releases defined them.

The on-disk names shared with ``ramp-prep`` are defined here
(:data:`DATASET_JSON`, :data:`SPLITS_JSON`, :data:`MANIFEST_CSV`).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import torchio as tio

from .integrity import file_sha256
from .integrity import verify_file
from .integrity import verify_mode
from .labels import CLASS_NAMES
from .phantoms import HU
from .phantoms import Phantom
from .phantoms import make_phantom
from .phantoms import phantom_subject

DATASET_JSON = 'dataset.json'
"""Name of the dataset description written by ``ramp-prep``."""

SPLITS_JSON = 'splits.json'
"""Name of the split file (seed, fractions, train/val/test ids)."""

MANIFEST_CSV = 'manifest.csv'
"""Name of the per-subject index (paths relative to the dataset folder)."""

SPLIT_NAMES: tuple[str, ...] = ('train', 'val', 'test')
"""Split names, in the order the split rule fills them."""

TOOL_NAME = 'ramp-prep'
"""Value of ``dataset.json['tool']`` in every folder written by ``ramp-prep``."""

NNUNET_NAME_KEY = 'ramp_dataset'
"""Key of the dataset name in an nnU-Net export's ``dataset.json``.

nnU-Net reads a ``dataset`` key as an explicit case -> files mapping, so the
nnU-Net layout stores the name under this key instead; :func:`read_dataset_info`
returns it as ``dataset`` for both layouts.
"""


def dataset_name_key(layout: str) -> str:
    """Key of the dataset name in ``dataset.json`` for a layout.

    Example:
        >>> dataset_name_key('ramp'), dataset_name_key('nnunet')
        ('dataset', 'ramp_dataset')
    """
    return NNUNET_NAME_KEY if layout == 'nnunet' else 'dataset'


def read_dataset_info(root: str | Path) -> dict[str, Any]:
    """Read the ``dataset.json`` of a folder prepared by ``ramp-prep``.

    Args:
        root: The output folder (``OUT``), or for ``--format nnunet`` the
            ``DatasetNNN_Name`` folder inside it.

    Returns:
        The parsed ``dataset.json``: among others ``dataset``
        (``'totalseg'``, ``'abdomenct1k'``, or with a ``'synthetic-'``
        prefix), ``synthetic``, ``layout`` (``'ramp'`` or ``'nnunet'``),
        ``class_names``, ``annotated_classes`` (label values this dataset
        annotates), ``not_annotated_classes``, ``seed``, ``fractions`` and
        ``tool_version``.

    Raises:
        FileNotFoundError: If ``root`` or its ``dataset.json`` is missing.
        ValueError: If ``dataset.json`` is not valid JSON or was not written
            by ``ramp-prep``.

    Example:
        >>> info = read_dataset_info('prepared/totalseg')  # doctest: +SKIP
        >>> info['annotated_classes']  # doctest: +SKIP
        [1, 2, 3, 4, 5]
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'Prepared dataset folder not found: {root}')
    path = root / DATASET_JSON
    if not path.is_file():
        hint = ''
        nested = sorted(p.parent for p in root.glob(f'Dataset*_*/{DATASET_JSON}'))
        if nested:
            hint = f' (an nnU-Net export is inside: pass {nested[0]})'
        raise FileNotFoundError(
            f'{root} is not a dataset prepared by ramp-prep: {path.name} is '
            f'missing{hint}. Create one with `ramp-prep totalseg SRC OUT` or '
            '`ramp-prep abdomenct1k SRC OUT`.'
        )
    try:
        info = json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f'{path} is not valid JSON: {error}') from error
    if not isinstance(info, dict) or info.get('tool') != TOOL_NAME:
        raise ValueError(
            f'{path} was not written by {TOOL_NAME} (no "tool": "{TOOL_NAME}"); '
            'prepare the dataset with ramp-prep first.'
        )
    if isinstance(info.get(NNUNET_NAME_KEY), str):
        info['dataset'] = info[NNUNET_NAME_KEY]
    for key in ('dataset', 'annotated_classes', 'class_names'):
        if key not in info:
            raise ValueError(f'{path} lacks the key {key!r}; re-run ramp-prep.')
    return info


def _read_manifest(root: Path) -> dict[str, dict[str, str]]:
    path = root / MANIFEST_CSV
    if not path.is_file():
        raise FileNotFoundError(f'{root} has no {MANIFEST_CSV}; re-run ramp-prep.')
    try:
        with path.open(newline='', encoding='utf-8') as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as error:
        message = f'{path} is damaged ({error}); re-run `ramp-prep split {root}`.'
        raise ValueError(message) from error
    if rows and not {'id', 'image', 'label'} <= set(rows[0]):
        raise ValueError(f'{path} lacks the columns id, image, label')
    for number, row in enumerate(rows, start=2):
        if None in row or None in row.values() or not row['id'] or not row['image']:
            message = (
                f'{path}: line {number} is damaged (wrong number of fields);'
                f' re-run `ramp-prep split {root}`.'
            )
            raise ValueError(message)
    return {row['id']: row for row in rows}


def read_splits(root: str | Path) -> dict[str, Any]:
    """Read ``splits.json`` of a prepared folder.

    Args:
        root: The prepared folder (see :func:`read_dataset_info`).

    Returns:
        The parsed file: ``seed``, ``fractions``, ``train``, ``val``,
        ``test`` (ids present in the folder) and ``cohort`` (the full list
        the split was computed on).

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: If it is not valid JSON or lacks a split.

    Example:
        >>> splits = read_splits('prepared/totalseg')  # doctest: +SKIP
        >>> len(splits['test'])  # doctest: +SKIP
        185
    """
    path = Path(root) / SPLITS_JSON
    if not path.is_file():
        raise FileNotFoundError(f'{path} not found; run `ramp-prep split {root}`.')
    try:
        splits = json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f'{path} is not valid JSON: {error}') from error
    missing = [name for name in SPLIT_NAMES if name not in splits]
    if missing:
        raise ValueError(f'{path} lacks the split(s) {missing}')
    return splits


def _recorded_size(row: dict[str, str], key: str, manifest: Path) -> int | None:
    value = row.get(f'{key}_bytes')
    if value in (None, ''):
        return None  # written by an older ramp-prep: SHA-256 only
    try:
        return int(value)
    except ValueError:
        message = f'{manifest}: {key}_bytes of {row.get("id")!r} is not a number'
        raise ValueError(message) from None


def verify_subject(
    root: str | Path,
    row: dict[str, str],
    *,
    verify: str | None = None,
) -> dict[str, Path]:
    """Check a subject's image and label against their manifest row.

    Args:
        root: The prepared folder.
        row: The subject's row of ``manifest.csv``.
        verify: ``'sha256'`` (default) or ``'size'``; see
            :mod:`torchio_ramp.integrity`.

    Returns:
        ``{'image': path, 'label': path}``.

    Raises:
        FileNotFoundError: If a file is missing.
        ~torchio_ramp.integrity.IntegrityError: If a file differs from the
            manifest or is truncated (the message names it).

    Example:
        >>> verify_subject('prepared', {'id': 's1', 'image': ...})  # doctest: +SKIP
    """
    root = Path(root)
    mode = verify_mode(verify)
    manifest = root / MANIFEST_CSV
    paths = {}
    for key in ('image', 'label'):
        path = root / row[key]
        try:
            verify_file(
                path,
                size=_recorded_size(row, key, manifest),
                sha256=row.get(f'{key}_sha256') or None,
                mode=mode,
                recorded_in=str(manifest),
            )
        except FileNotFoundError:
            message = (
                f'{path} (subject {row["id"]!r}) is missing; re-run ramp-prep on'
                ' this folder to finish it.'
            )
            raise FileNotFoundError(message) from None
        paths[key] = path
    return paths


def data_fingerprint(root: str | Path, subject_ids: list[str]) -> str:
    """SHA-256 over the ids and the SHA-256 of the files actually on disk.

    A label edited in place changes the fingerprint even if ``manifest.csv``
    was not rewritten. File hashes are cached per process (see
    :func:`~torchio_ramp.integrity.file_sha256`), so after a verified
    :func:`load_split` this costs no second read.

    Example:
        >>> data_fingerprint('prepared/totalseg', ['s0001'])  # doctest: +SKIP
        '9c1f...'
    """
    root = Path(root)
    manifest = _read_manifest(root)
    lines = []
    for subject_id in sorted(subject_ids):
        row = manifest.get(subject_id)
        if row is None:
            raise ValueError(f'{root / MANIFEST_CSV} has no subject {subject_id!r}')
        hashes = [file_sha256(root / row[key]) for key in ('image', 'label')]
        lines.append(f'{subject_id}\t{hashes[0]}:{hashes[1]}')
    return hashlib.sha256('\n'.join(lines).encode('utf-8')).hexdigest()


def load_split(
    root: str | Path,
    split: str = 'train',
    *,
    transform: tio.Transform | None = None,
    verify: str | None = None,
) -> tio.SubjectsDataset:
    """Load one split of a prepared dataset as a ``tio.SubjectsDataset``.

    Each subject is ``tio.Subject(ct=ScalarImage, label=LabelMap,
    subject_id=str, dataset=str)``; images are read lazily by TorchIO. The
    ``dataset`` field is ``dataset.json['dataset']`` (``'synthetic-...'`` for
    phantom data). Which classes the dataset annotates is in
    :func:`read_dataset_info`.

    Args:
        root: The output folder of ``ramp-prep`` (or the ``DatasetNNN_Name``
            folder of an nnU-Net export).
        split: ``'train'``, ``'val'``, ``'test'`` or ``'all'``.
        transform: Optional transform applied to each subject.
        verify: How each file is checked against ``manifest.csv`` before
            use: ``'sha256'`` (size and SHA-256; the default, or
            ``$RAMP_VERIFY``) or ``'size'`` (size and NIfTI completeness only,
            for very large cohorts). See :mod:`torchio_ramp.integrity`.

    Raises:
        ValueError: If ``split`` is unknown or empty, or a listed id is not
            in the manifest.
        FileNotFoundError: If the folder is not a prepared dataset or an
            image/label file listed for the split is missing.
        ~torchio_ramp.integrity.IntegrityError: If a file is truncated or
            differs from the manifest (changed after ``ramp-prep``).

    Example:
        >>> dataset = load_split('prepared/totalseg', 'val')  # doctest: +SKIP
        >>> subject = dataset[0]  # doctest: +SKIP
        >>> subject.ct.shape, subject['subject_id']  # doctest: +SKIP
    """
    if split not in (*SPLIT_NAMES, 'all'):
        raise ValueError(f'split must be one of {[*SPLIT_NAMES, "all"]}, got {split!r}')
    mode = verify_mode(verify)
    root = Path(root)
    info = read_dataset_info(root)
    splits = read_splits(root)
    manifest = _read_manifest(root)
    names = SPLIT_NAMES if split == 'all' else (split,)
    ids = [i for name in names for i in splits[name]]
    subjects = []
    for subject_id in ids:
        if subject_id not in manifest:
            raise ValueError(
                f'{root / SPLITS_JSON} lists {subject_id!r} but '
                f'{root / MANIFEST_CSV} does not; run `ramp-prep split {root}`.'
            )
        paths = verify_subject(root, manifest[subject_id], verify=mode)
        subjects.append(
            tio.Subject(
                ct=tio.ScalarImage(paths['image']),
                label=tio.LabelMap(paths['label']),
                subject_id=subject_id,
                dataset=str(info['dataset']),
            )
        )
    if not subjects:
        counts = ', '.join(f'{n} {len(splits[n])}' for n in SPLIT_NAMES)
        fractions = splits.get('fractions')
        how = splits.get('rule') if fractions is None else f'fractions {fractions}'
        raise ValueError(
            f'Split {split!r} of {root} is empty ({counts}; {how}). Move subjects'
            ' into it with `ramp-prep '
            f'split {root} --fractions TRAIN,VAL,TEST` (e.g. 0.5,0.5,0 for two '
            'subjects, 0.34,0.34,0.32 for three; 0.7,0.15,0.15 fills every split '
            'from seven), or prepare more subjects.'
        )
    return tio.SubjectsDataset(subjects, transform=transform)


__all__ = [
    'CLASS_NAMES',
    'DATASET_JSON',
    'HU',
    'MANIFEST_CSV',
    'SPLITS_JSON',
    'SPLIT_NAMES',
    'TOOL_NAME',
    'Phantom',
    'data_fingerprint',
    'load_split',
    'make_phantom',
    'phantom_subject',
    'read_dataset_info',
    'read_splits',
    'verify_subject',
]
