"""The reader of datasets prepared by ``ramp-prep``.

:func:`read_dataset_info` / :func:`load_split` read an output folder of
``ramp-prep totalseg|abdomenct1k`` (default layout or ``--format nnunet``) as a
:class:`torchio.SubjectsDataset`. The phantom generator lives in
:mod:`torchio_ramp.phantoms`; :func:`phantom_subject` and :func:`make_phantom`
are re-exported here, where earlier releases defined them.

A prepared folder may come from someone else, so nothing in it is trusted as
written (see :func:`subject_file`, :func:`read_splits`):

* every path of ``manifest.csv`` stays in the folder: relative, without
  ``..``, an image in an image folder (:data:`IMAGE_FOLDERS`) and a label in a
  label folder (:data:`LABEL_FOLDERS`), and no link leading out of that
  folder, except a CT that ``ramp-prep --link`` linked (``linked`` is
  ``yes``), which must lead into the source folder recorded in
  ``dataset.json``;
* each id has one row, and no two rows name the same file;
* the splits are lists of ids, each id in one split only and in the
  manifest;
* the hashes (or, with ``verify='size'``, the sizes) that the verification
  compares are present in every row: a blank one is an error, never a
  reason to skip the check.

The on-disk names shared with ``ramp-prep`` are defined here
(:data:`DATASET_JSON`, :data:`SPLITS_JSON`, :data:`MANIFEST_CSV`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from pathlib import PurePosixPath
from pathlib import PureWindowsPath
from typing import Any

import torchio as tio

from .integrity import IntegrityError
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

IMAGE_FOLDERS: tuple[str, ...] = ('images', 'imagesTr', 'imagesTs')
"""Folders of a prepared dataset that hold CTs (default and nnU-Net layouts)."""

LABEL_FOLDERS: tuple[str, ...] = ('labels', 'labelsTr', 'labelsTs')
"""Folders of a prepared dataset that hold label maps."""

_FOLDERS = {'image': IMAGE_FOLDERS, 'label': LABEL_FOLDERS}
_SHA256 = re.compile(r'[0-9a-fA-F]{64}')

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
    manifest: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):
        if None in row or None in row.values() or not row['id'] or not row['image']:
            message = (
                f'{path}: line {number} is damaged (wrong number of fields);'
                f' re-run `ramp-prep split {root}`.'
            )
            raise ValueError(message)
        for key in ('id', 'image', 'label'):
            first = lines.setdefault(f'{key}\0{row[key]}', number)
            if first != number:
                what = (
                    f'subject {row[key]!r}'
                    if key == 'id'
                    else f'the {key} {row[key]!r}'
                )
                message = (
                    f'{path}: lines {first} and {number} both list {what}; each'
                    f' subject has one row and its own files. Re-run `ramp-prep'
                    f' split {root}`.'
                )
                raise ValueError(message)
        manifest[row['id']] = row
    return manifest


def subject_file(root: str | Path, row: dict[str, str], key: str) -> Path:
    """The image or label file that a manifest row names, kept inside the dataset.

    Args:
        root: The prepared folder.
        row: The subject's row of ``manifest.csv``.
        key: ``'image'`` or ``'label'``.

    Returns:
        ``root / row[key]``, once it is known to stay in its folder.

    Raises:
        ValueError: Naming the manifest and the subject, for an absolute path,
            a ``..``, an image outside :data:`IMAGE_FOLDERS` (or a label outside
            :data:`LABEL_FOLDERS`), or a link leading out of its folder.

    Example:
        >>> row = {'id': 's1', 'image': '../../etc/passwd', 'label': 'labels/s1.nii.gz'}
        >>> subject_file('prepared', row, 'image')
        Traceback (most recent call last):
        ...
        ValueError: prepared/manifest.csv, subject 's1': the image '../../etc/passwd' leaves the dataset folder (.. in the path)
    """  # noqa: E501
    root = Path(root)
    text = row.get(key) or ''
    where = f'{root / MANIFEST_CSV}, subject {row.get("id")!r}: the {key} {text!r}'
    relative = PurePosixPath(text)
    if '\\' in text or relative.is_absolute() or PureWindowsPath(text).anchor:
        message = f'{where} is an absolute path; the manifest holds paths in {root}'
        raise ValueError(message)
    if '..' in relative.parts:
        raise ValueError(f'{where} leaves the dataset folder (.. in the path)')
    folders = _FOLDERS[key]
    if len(relative.parts) < 2 or relative.parts[0] not in folders:
        article = 'an' if key == 'image' else 'a'
        message = f'{where} is not in {article} {key} folder ({", ".join(folders)})'
        raise ValueError(message)
    path = root / relative
    target = path.resolve()
    if target.is_relative_to(root.resolve() / relative.parts[0]):
        return path
    if key == 'image' and row.get('linked') == 'yes':
        source = read_dataset_info(root).get('source')
        folder = source.get('path') if isinstance(source, dict) else None
        if isinstance(folder, str) and target.is_relative_to(Path(folder).resolve()):
            return path  # linked by ramp-prep --link to the recorded source
        where += ' (linked by ramp-prep --link)'
    message = f'{where} is a link to {target}, outside {root / relative.parts[0]}'
    raise ValueError(message)


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
        ValueError: If it is not valid JSON, lacks a split, or an id is
            listed twice or in two splits.

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
    if not isinstance(splits, dict):
        raise ValueError(f'{path} is not a JSON object of splits')
    missing = [name for name in SPLIT_NAMES if name not in splits]
    if missing:
        raise ValueError(f'{path} lacks the split(s) {missing}')
    split_of: dict[str, str] = {}
    for name in SPLIT_NAMES:
        ids = splits[name]
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise ValueError(f'{path}: {name!r} must be a list of subject ids')
        for subject_id in ids:
            other = split_of.setdefault(subject_id, name)
            if other != name:
                message = f'{path}: {subject_id!r} is in both {other!r} and {name!r}'
            elif ids.count(subject_id) > 1:
                message = f'{path}: {subject_id!r} is listed twice in {name!r}'
            else:
                continue
            raise ValueError(f'{message}; run `ramp-prep split {root}`.')
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
        ValueError: If a path leaves the dataset (see :func:`subject_file`).
        ~torchio_ramp.integrity.IntegrityError: If a file differs from the
            manifest or is truncated (the message names it), or the row lacks
            the hash (``'sha256'``) or size (``'size'``) to compare.

    Example:
        >>> verify_subject('prepared', {'id': 's1', 'image': ...})  # doctest: +SKIP
    """
    root = Path(root)
    mode = verify_mode(verify)
    manifest = root / MANIFEST_CSV
    paths = {}
    for key in ('image', 'label'):
        path = subject_file(root, row, key)
        size = _recorded_size(row, key, manifest)
        sha256 = row.get(f'{key}_sha256') or ''
        column = f'{key}_sha256' if mode == 'sha256' else f'{key}_bytes'
        if (mode == 'sha256' and not _SHA256.fullmatch(sha256)) or (
            mode == 'size' and size is None
        ):
            message = (
                f'{manifest}, subject {row["id"]!r}: {column} is blank or not'
                f' valid ({row.get(column)!r}), so {path} cannot be verified'
                f' ({mode}); re-run `ramp-prep split {root}`'
            )
            raise IntegrityError(message)
        try:
            verify_file(
                path,
                size=size,
                sha256=sha256.lower() or None,
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
        hashes = [file_sha256(subject_file(root, row, k)) for k in ('image', 'label')]
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
    for subject_id in (i for name in SPLIT_NAMES for i in splits[name]):
        if subject_id not in manifest:
            raise ValueError(
                f'{root / SPLITS_JSON} lists {subject_id!r} but '
                f'{root / MANIFEST_CSV} does not; run `ramp-prep split {root}`.'
            )
    names = SPLIT_NAMES if split == 'all' else (split,)
    ids = [i for name in names for i in splits[name]]
    subjects = []
    for subject_id in ids:
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
    'IMAGE_FOLDERS',
    'LABEL_FOLDERS',
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
    'subject_file',
    'verify_subject',
]
