"""Find the subjects of a TotalSegmentator v2 or AbdomenCT-1K release.

Discovery only looks at file names (no image is opened), so it is fast even
on 1228 subjects. The *cohort* it returns is the list the split is computed
on: for TotalSegmentator every subject with ``ct.nii.gz`` and the six masks,
for AbdomenCT-1K every mask with its image. Everything else is *excluded*
and listed with the reason.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from torchio_ramp.labels import TOTALSEG_STRUCTURES
from torchio_ramp.labels import TOTALSEG_V1_HEART_STRUCTURES

from .errors import PrepError
from .errors import describe_os_error
from .errors import require_regular_file

SYNTHETIC_MARKER = 'SYNTHETIC.txt'
"""File at the root of folders written by ``ramp-prep synth``."""

TOTALSEG_V2_URL = 'https://zenodo.org/records/10047292'
NII_SUFFIXES = ('.nii.gz', '.nii')


@dataclass(frozen=True)
class SubjectSource:
    """Source files of one subject.

    Attributes:
        id: Subject id (TotalSegmentator ``s0001``, AbdomenCT-1K
            ``Case_00001``).
        image: The CT file.
        masks: Structure name -> mask file (TotalSegmentator), or
            ``{'labels': path}`` for a multi-label mask (AbdomenCT-1K).
        source_split: Split given by the release (``meta.csv``), if any.
    """

    id: str
    image: Path
    masks: dict[str, Path]
    source_split: str = ''

    def files(self) -> list[Path]:
        """All source files, image first."""
        return [self.image, *self.masks.values()]


@dataclass
class Cohort:
    """Subjects found in a source folder.

    Attributes:
        dataset: ``'totalseg'`` or ``'abdomenct1k'``.
        src: The source folder.
        subjects: Convertible subjects, sorted by id.
        excluded: Subject id -> why it is not in the cohort.
        notes: Remarks for the report (e.g. ``meta.csv`` mismatches).
        synthetic: Whether ``src`` was written by ``ramp-prep synth``.
    """

    dataset: str
    src: Path
    subjects: list[SubjectSource]
    excluded: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False

    @property
    def ids(self) -> list[str]:
        """Cohort ids, sorted."""
        return [s.id for s in self.subjects]


def _require_dir(src: Path) -> None:
    if not src.exists():
        raise PrepError(f'SRC {src} does not exist')
    if not src.is_dir():
        raise PrepError(f'SRC {src} is not a folder')


def _listdir(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir())
    except OSError as error:
        raise describe_os_error(error, folder, 'listing') from error


def _looks_like_abdomenct1k(src: Path) -> bool:
    names = set(_listdir(src))
    return bool(
        {'images', 'masks', 'Mask'} & names
        or any(n.startswith('AbdomenCT-1K-ImagePart') for n in names)
        or any(n.endswith('_0000.nii.gz') for n in names)
    )


def read_meta_csv(path: Path) -> dict[str, dict[str, str]]:
    """Read TotalSegmentator's ``meta.csv`` (``;``-separated, maybe a BOM).

    Returns:
        ``image_id`` -> row.

    Raises:
        PrepError: If the file is not a regular file (a FIFO is never
            opened), cannot be parsed or has no ``image_id``.

    Example:
        >>> src = Path('Totalsegmentator_dataset_v201')
        >>> rows = read_meta_csv(src / 'meta.csv')  # doctest: +SKIP
        >>> rows['s0001']['split']  # doctest: +SKIP
        'train'
    """
    require_regular_file(path)
    try:
        text = path.read_text(encoding='utf-8-sig')
    except UnicodeDecodeError as error:
        raise PrepError(f'{path}: not UTF-8 text ({error})') from error
    except OSError as error:
        raise describe_os_error(error, path, 'reading') from error
    first = text.split('\n', 1)[0]
    delimiter = ';' if ';' in first else ','
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if not reader.fieldnames or 'image_id' not in reader.fieldnames:
        raise PrepError(
            f'{path}: no image_id column (columns: {reader.fieldnames}); '
            'expected the TotalSegmentator meta.csv with ";" separators'
        )
    return {row['image_id'].strip(): row for row in reader if row.get('image_id')}


def discover_totalseg(src: Path) -> Cohort:
    """Find TotalSegmentator v2 subjects under ``src``.

    A subject is a folder ``<id>/`` with ``ct.nii.gz``; it is in the cohort
    when ``segmentations/`` has the six masks the head needs. A subject with
    ``heart_myocardium.nii.gz`` (etc.) but no ``heart.nii.gz`` is v1 data.

    Raises:
        PrepError: If ``src`` is missing, has no subjects, or is entirely
            TotalSegmentator v1 (with what to do instead).

    Example:
        >>> src = Path('Totalsegmentator_dataset_v201')
        >>> cohort = discover_totalseg(src)  # doctest: +SKIP
        >>> len(cohort.subjects)  # doctest: +SKIP
        1228
    """
    _require_dir(src)
    subjects: list[SubjectSource] = []
    excluded: dict[str, str] = {}
    v1: list[str] = []
    candidates = 0
    for name in _listdir(src):
        folder = src / name
        if not folder.is_dir():
            continue
        ct = folder / 'ct.nii.gz'
        seg = folder / 'segmentations'
        if not ct.exists() and not seg.is_dir():
            continue
        candidates += 1
        if not ct.exists():
            excluded[name] = 'missing ct.nii.gz'
            continue
        present = set(_listdir(seg)) if seg.is_dir() else set()
        missing = [s for s in TOTALSEG_STRUCTURES if f'{s}.nii.gz' not in present]
        if not missing:
            masks = {s: seg / f'{s}.nii.gz' for s in TOTALSEG_STRUCTURES}
            subjects.append(SubjectSource(name, ct, masks))
            continue
        v1_parts = [s for s in TOTALSEG_V1_HEART_STRUCTURES if f'{s}.nii.gz' in present]
        if 'heart' in missing and v1_parts:
            v1.append(name)
            excluded[name] = (
                'TotalSegmentator v1 layout (has '
                + ', '.join(f'{p}.nii.gz' for p in v1_parts[:2])
                + ' but no heart.nii.gz)'
            )
        elif not seg.is_dir():
            excluded[name] = 'missing segmentations/ folder'
        else:
            excluded[name] = 'missing segmentations/' + ', '.join(
                f'{s}.nii.gz' for s in missing
            )
    if candidates == 0:
        if (src / 'ct.nii.gz').exists():
            raise PrepError(
                f'SRC {src} is a single subject folder; pass the folder that '
                'contains the subject folders (<id>/ct.nii.gz)'
            )
        hint = ''
        if _looks_like_abdomenct1k(src):
            hint = ' It looks like AbdomenCT-1K: use `ramp-prep abdomenct1k`.'
        raise PrepError(
            f'SRC {src} has no TotalSegmentator subjects: expected '
            f'<id>/ct.nii.gz and <id>/segmentations/<structure>.nii.gz.{hint}'
        )
    if v1 and not subjects:
        raise PrepError(
            f'SRC {src} is TotalSegmentator v1: {v1[0]}/segmentations has the v1 '
            'heart parts (heart_myocardium, heart_atrium_*, heart_ventricle_*) '
            'but no heart.nii.gz, which the five-class head needs. Download '
            f"TotalSegmentator v2 ({TOTALSEG_V2_URL}, the paper's data) and run "
            'ramp-prep on it. The v1 parts are not merged automatically: their '
            'union is not the v2 heart label.'
        )
    cohort = Cohort('totalseg', src, subjects, excluded)
    if v1:
        cohort.notes.append(
            f'{len(v1)} subject(s) have the TotalSegmentator v1 layout and were '
            'excluded; mixing releases is not supported.'
        )
    _attach_meta(cohort, src / 'meta.csv', candidates)
    cohort.synthetic = (src / SYNTHETIC_MARKER).exists()
    return cohort


def _attach_meta(cohort: Cohort, path: Path, candidates: int) -> None:
    if not path.exists():
        cohort.notes.append(f'{path} not found; the source split is not recorded.')
        return
    meta = read_meta_csv(path)
    for i, subject in enumerate(cohort.subjects):
        row = meta.get(subject.id)
        if row is not None:
            split = (row.get('split') or '').strip()
            cohort.subjects[i] = SubjectSource(
                subject.id, subject.image, subject.masks, split
            )
    folders = {s.id for s in cohort.subjects} | set(cohort.excluded)
    without_folder = sorted(set(meta) - folders)
    if without_folder:
        cohort.notes.append(
            f'{len(without_folder)} id(s) in meta.csv have no subject folder: '
            + ', '.join(without_folder[:20])
            + (' ...' if len(without_folder) > 20 else '')
        )
    without_meta = sorted(folders - set(meta))
    if without_meta:
        cohort.notes.append(
            f'{len(without_meta)} subject folder(s) are not in meta.csv: '
            + ', '.join(without_meta[:20])
            + (' ...' if len(without_meta) > 20 else '')
        )


def _strip_suffix(name: str) -> str | None:
    for suffix in NII_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _scan(folders: list[Path]) -> list[Path]:
    files = []
    for folder in folders:
        for path in sorted(folder.rglob('*')):
            if _strip_suffix(path.name) is not None and not path.name.startswith('.'):
                files.append(path)
    return files


def discover_abdomenct1k(src: Path) -> Cohort:
    """Pair AbdomenCT-1K images with their masks.

    Images are ``<id>_0000.nii.gz`` under ``images/`` or
    ``AbdomenCT-1K-ImagePart*/``; masks are ``<id>.nii.gz`` under ``masks/``
    or ``Mask/``. The cohort is every mask with its image (the release has
    1062 images but 1000 masks); images without a mask and masks without an
    image are excluded and listed.

    Raises:
        PrepError: If ``src`` is missing, has neither folder layout, has no
            mask folder, or has two images with the same id.

    Example:
        >>> cohort = discover_abdomenct1k(Path('AbdomenCT-1K'))  # doctest: +SKIP
        >>> len(cohort.subjects), len(cohort.excluded)  # doctest: +SKIP
        (1000, 62)
    """
    _require_dir(src)
    names = _listdir(src)
    image_dirs = [
        src / n
        for n in names
        if n == 'images' or n.startswith('AbdomenCT-1K-ImagePart')
    ]
    image_dirs = [d for d in image_dirs if d.is_dir()]
    mask_dirs = [src / n for n in names if n in ('masks', 'Mask', 'Masks')]
    mask_dirs = [d for d in mask_dirs if d.is_dir()]
    if not image_dirs:
        hint = ''
        if any((src / n / 'ct.nii.gz').exists() for n in names):
            hint = ' It looks like TotalSegmentator: use `ramp-prep totalseg`.'
        raise PrepError(
            f'SRC {src} is not an AbdomenCT-1K folder: expected images/ and '
            f'masks/, or AbdomenCT-1K-ImagePart*/ and Mask/.{hint}'
        )
    if not mask_dirs:
        raise PrepError(
            f'SRC {src} has images but no masks/ (or Mask/) folder; download '
            'the AbdomenCT-1K masks and put them beside the images.'
        )
    images: dict[str, Path] = {}
    for path in _scan(image_dirs):
        stem = _strip_suffix(path.name)
        if not stem.endswith('_0000'):
            continue
        case = stem[: -len('_0000')]
        if case in images:
            raise PrepError(
                f'Two images for {case}: {images[case]} and {path}; remove one.'
            )
        images[case] = path
    masks: dict[str, Path] = {}
    for path in _scan(mask_dirs):
        case = _strip_suffix(path.name)
        if case.endswith('_0000'):
            continue  # an image placed among the masks
        if case in masks:
            raise PrepError(
                f'Two masks for {case}: {masks[case]} and {path}; remove one.'
            )
        masks[case] = path
    if not images and not masks:
        raise PrepError(
            f'SRC {src} has no <id>_0000.nii.gz images and no <id>.nii.gz masks'
        )
    subjects = [
        SubjectSource(case, images[case], {'labels': masks[case]})
        for case in sorted(masks)
        if case in images
    ]
    excluded = {}
    for case in sorted(set(images) - set(masks)):
        excluded[case] = (
            f'image without mask ({images[case].relative_to(src)}), not converted'
        )
    for case in sorted(set(masks) - set(images)):
        excluded[case] = f'mask without image ({masks[case].relative_to(src)})'
    cohort = Cohort('abdomenct1k', src, subjects, excluded)
    cohort.synthetic = (src / SYNTHETIC_MARKER).exists()
    return cohort


DISCOVER = {'totalseg': discover_totalseg, 'abdomenct1k': discover_abdomenct1k}
