"""Synthetic phantom CTs and the reader of datasets prepared by ``ramp-prep``.

Two things live here:

* :func:`make_phantom` / :func:`phantom_subject`: a seeded, pure-NumPy
  abdominal CT phantom with the six TotalSegmentator structures the five-class
  head needs, so that every test, example and demo runs offline. Phantoms are
  synthetic data, not anatomy; they only look like an abdominal CT slab.
* :func:`read_dataset_info` / :func:`load_split`: read an output folder of
  ``ramp-prep totalseg|abdomenct1k`` (default layout or ``--format nnunet``)
  as a :class:`torchio.SubjectsDataset`.

The on-disk names shared with ``ramp-prep`` are defined here
(:data:`DATASET_JSON`, :data:`SPLITS_JSON`, :data:`MANIFEST_CSV`).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchio as tio

from .integrity import file_sha256
from .integrity import verify_file
from .integrity import verify_mode
from .labels import CLASS_NAMES
from .labels import TOTALSEG_STRUCTURES
from .labels import merge_totalseg_masks

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

HU = {
    'air': -1000,
    'lung': -850,
    'lumen': -900,
    'fat': -100,
    'muscle': 40,
    'csf': 15,
    'bone': 450,
    'cortical_bone': 700,
    'liver': 60,
    'spleen': 50,
    'kidney': 150,
    'heart': 40,
    'colon_wall': 30,
    'pancreas': 45,
}
"""Mean Hounsfield units of the phantom's tissues (noise is added on top)."""


@dataclass
class Phantom:
    """A synthetic CT volume with its structure masks.

    Attributes:
        hu: ``int16`` Hounsfield units, voxel order ``(I, J, K)``, where ``I``
            runs towards the patient's right, ``J`` anterior and ``K``
            superior (RAS).
        affine: ``4x4`` voxel-to-world matrix in RAS+ (NIfTI / TorchIO
            convention).
        masks: ``uint8`` binary masks of ``liver``, ``spleen``,
            ``kidney_left``, ``kidney_right``, ``heart`` and ``colon``
            (plus ``pancreas`` when requested); masks never overlap.
        seed: Seed that generated the phantom.
    """

    hu: np.ndarray
    affine: np.ndarray
    masks: dict[str, np.ndarray]
    seed: int

    def label(self) -> np.ndarray:
        """Return the five-class ``uint8`` label map (values 0..5).

        Example:
            >>> phantom = make_phantom((24, 24, 24), seed=1)
            >>> sorted(set(phantom.label().ravel().tolist()))
            [0, 1, 2, 3, 4, 5]
        """
        return merge_totalseg_masks(self.masks.__getitem__).label


def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """Normalised voxel-centre coordinates in ``[-1, 1]`` along each axis."""
    axes = []
    for n, dim in zip(shape, range(3), strict=True):
        coords = (2 * (np.arange(n, dtype=np.float32) + 0.5) / n - 1).astype(np.float32)
        view = [1, 1, 1]
        view[dim] = n
        axes.append(coords.reshape(view))
    return tuple(axes)


class _Blobs:
    """Smooth random blobs on a fixed grid (one ``rng`` for the whole phantom)."""

    def __init__(self, shape: tuple[int, int, int], rng: np.random.Generator):
        self.u, self.v, self.w = _grid(shape)
        self.rng = rng

    def jitter(self, center, radii, move=0.03, scale=0.1):
        center = np.asarray(center) + self.rng.normal(0, move, 3)
        radii = np.asarray(radii) * self.rng.uniform(1 - scale, 1 + scale, 3)
        return center.tolist(), radii.tolist()

    def ellipsoid(self, center, radii, *, rough=0.12, tilt=0.15) -> np.ndarray:
        """Ellipsoid with a random tilt and a smooth random surface."""
        cu, cv, cw = center
        ru, rv, rw = radii
        angle = float(self.rng.normal(0, tilt))
        cos, sin = math.cos(angle), math.sin(angle)
        du, dv = self.u - cu, self.v - cv
        a = (cos * du + sin * dv) / ru
        b = (-sin * du + cos * dv) / rv
        c = (self.w - cw) / rw
        level = a * a + b * b + c * c
        for _ in range(3):
            freq = self.rng.uniform(1.0, 2.5, 3).tolist()
            phase = float(self.rng.uniform(0, 2 * math.pi))
            amplitude = rough * float(self.rng.uniform(0.5, 1.0))
            level = level + amplitude * np.cos(
                freq[0] * a + freq[1] * b + freq[2] * c + phase
            )
        return level < 1

    def tube(self, points, radius) -> np.ndarray:
        """Distance to a polyline, in units of ``radius``."""
        best = None
        p = (self.u, self.v, self.w)
        for start, end in itertools.pairwise(points):
            start = [float(x) for x in start]
            seg = [float(b) - a for a, b in zip(start, end, strict=True)]
            length2 = sum(x * x for x in seg)
            rel = [p[i] - start[i] for i in range(3)]
            t = (rel[0] * seg[0] + rel[1] * seg[1] + rel[2] * seg[2]) / length2
            t = np.clip(t, 0, 1)
            dist2 = sum((rel[i] - t * seg[i]) ** 2 for i in range(3))
            best = dist2 if best is None else np.minimum(best, dist2)
        return np.sqrt(best) / radius


def make_phantom(
    shape: tuple[int, int, int] = (64, 64, 48),
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0),
    seed: int = 0,
    *,
    noise_std: float = 15.0,
    pancreas: bool = False,
) -> Phantom:
    """Generate a synthetic abdominal CT slab with organ masks.

    Air outside the body, a body ellipse of subcutaneous fat, an abdominal
    wall of muscle, visceral fat inside, a vertebra with paraspinal muscles,
    lung bases and the heart in the superior part, the liver on the patient's
    right, the spleen on the left, two enhanced kidneys posteriorly and the
    colon as a tube frame (air lumen, soft-tissue wall). Organ shapes and
    positions vary smoothly with the seed; Gaussian noise is added. Tissue
    means are in :data:`HU`.

    Everything is drawn from ``numpy.random.default_rng(seed)``; the global
    NumPy state is neither used nor changed. Coordinates scale with
    ``shape``, so small shapes (e.g. ``(24, 24, 24)``) keep every organ.

    Args:
        shape: Voxels along ``(I, J, K)`` = (right, anterior, superior).
        spacing: Voxel size in mm; only sets the affine.
        seed: Seed of the random generator.
        noise_std: Standard deviation of the Gaussian noise in HU.
        pancreas: Also draw a pancreas (AbdomenCT-1K has a pancreas label);
            the other organs are identical with and without it, except where
            the pancreas takes voxels from the liver.

    Returns:
        The phantom (``int16`` HU, RAS affine centred on the origin, masks).

    Example:
        >>> phantom = make_phantom(seed=3)
        >>> phantom.hu.shape, phantom.hu.dtype
        ((64, 64, 48), dtype('int16'))
        >>> sorted(phantom.masks)
        ['colon', 'heart', 'kidney_left', 'kidney_right', 'liver', 'spleen']
        >>> int(phantom.hu[0, 0, 0]) < -900  # air in the corner
        True
    """
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f'shape must be three sizes >= 8, got {shape!r}')
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f'spacing must be three positive sizes, got {spacing!r}')
    shape = tuple(int(n) for n in shape)
    rng = np.random.default_rng(seed)
    blobs = _Blobs(shape, rng)
    u, v, w = blobs.u, blobs.v, blobs.w

    # Body: an elliptic cylinder, flatter at the back.
    body_u = 0.9 * rng.uniform(0.95, 1.03)
    body_v = 0.75 * rng.uniform(0.93, 1.03)
    back = np.where(v < 0, 0.88, 1.0).astype(np.float32)
    radial = np.sqrt((u / body_u) ** 2 + (v / (body_v * back)) ** 2)
    body = radial < 1
    wall = radial < 1 - 0.1 * rng.uniform(0.8, 1.2)  # inside subcutaneous fat
    inside = radial < 1 - 0.17 * rng.uniform(0.9, 1.1)  # inside abdominal wall
    body = np.broadcast_to(body, shape)
    wall = np.broadcast_to(wall, shape)
    inside = np.broadcast_to(inside, shape)

    # Spine (vertebral body with cortical rim, canal, spinous process) and
    # the paraspinal muscles, in the posterior body wall.
    spine_v = -0.32 * body_v / 0.75
    vert = np.sqrt((u / 0.12) ** 2 + ((v - spine_v) / 0.1) ** 2)
    canal = np.sqrt((u / 0.045) ** 2 + ((v - spine_v + 0.16) / 0.04) ** 2) < 1
    process = (np.abs(u) < 0.03) & (v < spine_v - 0.2) & (v > spine_v - 0.3)
    bone = np.broadcast_to((vert < 1) | process, shape)
    canal = np.broadcast_to(canal, shape)
    paraspinal = np.broadcast_to(
        ((np.abs(u) - 0.17) / 0.12) ** 2 + ((v - spine_v + 0.19) / 0.09) ** 2 < 1,
        shape,
    )

    # Organs, centre/radii in normalised (u, v, w); u > 0 is patient's right.
    lungs = np.zeros(shape, bool)
    for side in (1, -1):
        c, r = blobs.jitter((0.45 * side, -0.08, 1.05), (0.4, 0.5, 0.5))
        lungs |= blobs.ellipsoid(c, r, rough=0.05)
    raw = {}
    raw['liver'] = blobs.ellipsoid(
        *blobs.jitter((0.42, -0.05, 0.32), (0.38, 0.42, 0.4))
    )
    raw['spleen'] = blobs.ellipsoid(
        *blobs.jitter((-0.55, -0.22, 0.3), (0.16, 0.22, 0.26))
    )
    raw['kidney_right'] = blobs.ellipsoid(
        *blobs.jitter((0.36, -0.28, -0.15), (0.15, 0.13, 0.3)), rough=0.08
    )
    raw['kidney_left'] = blobs.ellipsoid(
        *blobs.jitter((-0.36, -0.28, -0.12), (0.15, 0.13, 0.3)), rough=0.08
    )
    raw['heart'] = blobs.ellipsoid(
        *blobs.jitter((-0.12, 0.18, 0.9), (0.33, 0.3, 0.32)), rough=0.06
    )
    raw['pancreas'] = blobs.ellipsoid(
        *blobs.jitter((-0.05, -0.1, 0.0), (0.3, 0.075, 0.09)), rough=0.05
    )
    # Colon: an inverted U (ascending right, transverse, descending left).
    j = lambda: float(rng.normal(0, 0.03))  # noqa: E731
    flex = -0.22 + j()
    colon_v = 0.22 + j()
    points = [
        (0.62 + j(), colon_v - 0.1, -1.1),
        (0.64 + j(), colon_v - 0.05, -0.5 + j()),
        (0.6 + j(), colon_v, flex),
        (0.25 + j(), colon_v + 0.15, flex - 0.12 + j()),
        (-0.25 + j(), colon_v + 0.15, flex - 0.1 + j()),
        (-0.6 + j(), colon_v, flex + 0.02),
        (-0.64 + j(), colon_v - 0.05, -0.5 + j()),
        (-0.62 + j(), colon_v - 0.1, -1.1),
    ]
    colon_radius = 0.11 * rng.uniform(0.9, 1.1)
    colon_dist = blobs.tube(points, colon_radius)
    raw['colon'] = colon_dist < 1

    # Exclusive assignment: earlier organs keep contested voxels.
    free = inside & ~bone & ~canal & ~paraspinal
    masks: dict[str, np.ndarray] = {}
    order = ['kidney_left', 'kidney_right', 'spleen', 'colon', 'pancreas', 'heart']
    for name in [*order, 'liver']:
        region = raw[name] & free
        if name == 'pancreas' and not pancreas:
            continue
        masks[name] = region
        free = free & ~region

    hu = np.full(shape, HU['air'], np.float32)
    hu[body] = HU['fat']
    hu[wall] = HU['muscle']
    visceral = np.cos(2.5 * u + 1.7 * v + rng.uniform(0, 6)) * np.cos(
        1.9 * w + rng.uniform(0, 6)
    )
    hu[inside] = (HU['fat'] + 25 + 20 * visceral)[inside]
    hu[lungs & inside] = HU['lung']
    hu[paraspinal & wall] = HU['muscle'] + 5
    hu[bone & wall] = HU['bone']
    rim = np.broadcast_to((vert > 0.75) & (vert < 1), shape)
    hu[rim & wall] = HU['cortical_bone']
    hu[canal & wall] = HU['csf']
    for name in ('liver', 'spleen', 'heart', 'pancreas'):
        if name in masks:
            hu[masks[name]] = HU[name]
    for name in ('kidney_left', 'kidney_right'):
        hu[masks[name]] = HU['kidney']
    hu[masks['colon']] = HU['colon_wall']
    hu[masks['colon'] & (colon_dist < 0.55)] = HU['lumen']
    if noise_std > 0:
        hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(noise_std)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)

    affine = np.diag([*map(float, spacing), 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(spacing, float)
    out = {name: masks[name].astype(np.uint8) for name in TOTALSEG_STRUCTURES}
    if pancreas:
        out['pancreas'] = masks['pancreas'].astype(np.uint8)
    return Phantom(hu=hu, affine=affine, masks=out, seed=seed)


def phantom_subject(
    shape: tuple[int, int, int] = (64, 64, 48),
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0),
    seed: int = 0,
    *,
    subject_id: str | None = None,
    noise_std: float = 15.0,
) -> tio.Subject:
    """Return a phantom as a TorchIO subject with the five-class label.

    The subject has the same keys and dtypes as those of :func:`load_split`:
    ``ct`` (``int16`` HU), ``label`` (``uint8``, 0..5), ``subject_id`` and
    ``dataset`` (``'synthetic-totalseg'``: phantoms are labelled synthetic).

    Args:
        shape: Voxels along ``(I, J, K)``.
        spacing: Voxel size in mm.
        seed: Seed of the phantom.
        subject_id: Defaults to ``f'phantom{seed:04d}'``.
        noise_std: Noise standard deviation in HU.

    Example:
        >>> subject = phantom_subject((24, 24, 24), seed=2)
        >>> subject.ct.shape, subject.label.data.dtype, subject.subject_id
        ((1, 24, 24, 24), torch.uint8, 'phantom0002')
    """
    phantom = make_phantom(shape, spacing, seed, noise_std=noise_std)
    return tio.Subject(
        ct=tio.ScalarImage(
            tensor=torch.from_numpy(phantom.hu[None]), affine=phantom.affine
        ),
        label=tio.LabelMap(
            tensor=torch.from_numpy(phantom.label()[None]), affine=phantom.affine
        ),
        subject_id=subject_id or f'phantom{seed:04d}',
        dataset='synthetic-totalseg',
    )


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
        raise ValueError(
            f'Split {split!r} of {root} is empty (fractions {splits.get("fractions")}, '
            f'{sum(len(splits[n]) for n in SPLIT_NAMES)} subjects in all); TorchIO '
            'cannot hold an empty SubjectsDataset.'
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
