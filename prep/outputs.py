"""Output layouts, per-subject records, and the files written at the end.

Layouts (``--format``):

* ``ramp`` (default): ``OUT/images/<id>.nii.gz``, ``OUT/labels/<id>.nii.gz``.
* ``nnunet``: ``OUT/DatasetNNN_Name/imagesTr/<id>_0000.nii.gz`` and
  ``labelsTr/<id>.nii.gz`` for train and val, ``imagesTs/`` and ``labelsTs/``
  for test, plus ``splits_final.json`` (our train/val as fold 0).

Both layouts get ``dataset.json``, ``splits.json``, ``manifest.csv`` and
``report.txt`` in the dataset folder, and keep their bookkeeping in
``.ramp-prep/``: one JSON *record* per finished subject (what a re-run
checks to skip it) and ``state.json`` (the cohort and the last run's
failures, from which the four files can be rewritten).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version
from pathlib import Path
from typing import Any

from torchio_ramp.datasets import DATASET_JSON
from torchio_ramp.datasets import MANIFEST_CSV
from torchio_ramp.datasets import SPLIT_NAMES
from torchio_ramp.datasets import SPLITS_JSON
from torchio_ramp.datasets import TOOL_NAME
from torchio_ramp.datasets import dataset_name_key
from torchio_ramp.files import FileLock
from torchio_ramp.files import LockHeld
from torchio_ramp.files import json_text
from torchio_ramp.labels import ABDOMENCT1K_DROPPED
from torchio_ramp.labels import ABDOMENCT1K_MAPPING
from torchio_ramp.labels import ABDOMENCT1K_SOURCE_NAMES
from torchio_ramp.labels import ANNOTATED_CLASSES
from torchio_ramp.labels import CLASS_NAMES
from torchio_ramp.labels import OVERLAP_PRECEDENCE
from torchio_ramp.labels import SYNTHETIC_PREFIX
from torchio_ramp.labels import TOTALSEG_MAPPING

from .errors import FatalPrepError
from .errors import PrepError
from .errors import describe_os_error
from .errors import require_regular_file
from .images import write_text
from .splits import RELEASE_RULE
from .splits import RULE
from .splits import cohort_digest
from .splits import empty_split_warnings
from .splits import split_sizes

STATE_DIR = '.ramp-prep'
REPORT_TXT = 'report.txt'
SPLITS_FINAL_JSON = 'splits_final.json'
FORMATS = ('ramp', 'nnunet')
RECORD_KEYS = frozenset(
    [
        'id',
        'image',
        'label',
        'linked',
        'shape',
        'spacing',
        'voxels',
        'conflict_voxels',
        'conflicts',
        'dropped',
        'repaired',
        'resampled',
        'options',
        'source',
        'outputs',
    ]
)
RELEASES = {'totalseg': 'TotalSegmentator v2', 'abdomenct1k': 'AbdomenCT-1K'}
DEFAULT_NNUNET_NAMES = {'totalseg': 'RampTotalSeg', 'abdomenct1k': 'RampAbdomenCT1K'}


def tool_version() -> str:
    """Version of the installed ``torchio-ramp`` distribution.

    Example:
        >>> isinstance(tool_version(), str)
        True
    """
    try:
        return version('torchio-ramp')
    except PackageNotFoundError:  # pragma: no cover - running from a bare tree
        return 'unknown'


@dataclass(frozen=True)
class Layout:
    """Where a dataset's files go.

    Attributes:
        root: The dataset folder (``OUT``, or ``OUT/DatasetNNN_Name``).
        format: ``'ramp'`` or ``'nnunet'``.
    """

    root: Path
    format: str = 'ramp'

    def image_rel(self, subject_id: str, split: str) -> str:
        """Image path relative to :attr:`root`.

        Example:
            >>> Layout(Path('o'), 'nnunet').image_rel('s1', 'test')
            'imagesTs/s1_0000.nii.gz'
        """
        if self.format == 'ramp':
            return f'images/{subject_id}.nii.gz'
        folder = 'imagesTs' if split == 'test' else 'imagesTr'
        return f'{folder}/{subject_id}_0000.nii.gz'

    def label_rel(self, subject_id: str, split: str) -> str:
        """Label path relative to :attr:`root`.

        Example:
            >>> Layout(Path('o')).label_rel('s1', 'train')
            'labels/s1.nii.gz'
        """
        if self.format == 'ramp':
            return f'labels/{subject_id}.nii.gz'
        folder = 'labelsTs' if split == 'test' else 'labelsTr'
        return f'{folder}/{subject_id}.nii.gz'

    @property
    def output_folders(self) -> list[Path]:
        """Folders that hold images and labels."""
        names = (
            ('images', 'labels')
            if self.format == 'ramp'
            else ('imagesTr', 'labelsTr', 'imagesTs', 'labelsTs')
        )
        return [self.root / n for n in names]

    @property
    def state_dir(self) -> Path:
        """Bookkeeping folder."""
        return self.root / STATE_DIR

    @property
    def records_dir(self) -> Path:
        """One JSON record per finished subject."""
        return self.state_dir / 'records'


def make_layout(
    out: Path, fmt: str, dataset_id: int | None = None, name: str | None = None
) -> Layout:
    """Build the layout for ``--format``.

    Raises:
        PrepError: If the nnU-Net id or name is missing or invalid.

    Example:
        >>> make_layout(Path('out'), 'nnunet', 42, 'RampTotalSeg').root
        PosixPath('out/Dataset042_RampTotalSeg')
    """
    if fmt not in FORMATS:
        raise PrepError(f'--format must be one of {FORMATS}, got {fmt!r}')
    if fmt == 'ramp':
        return Layout(out, 'ramp')
    if dataset_id is None:
        raise PrepError('--format nnunet needs --dataset-id N (1..999)')
    if not 1 <= dataset_id <= 999:
        raise PrepError(f'--dataset-id must be between 1 and 999, got {dataset_id}')
    if not name or not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9-]*', name):
        raise PrepError(
            f'--dataset-name must be letters, digits and dashes, got {name!r}'
        )
    return Layout(out / f'Dataset{dataset_id:03d}_{name}', 'nnunet')


def find_layout(root: Path) -> Layout:
    """Layout of an existing prepared folder (reads its ``dataset.json``).

    Raises:
        PrepError: If ``root`` was not prepared by ``ramp-prep``.

    Example:
        >>> find_layout(Path('prepared/totalseg')).format  # doctest: +SKIP
        'ramp'
    """
    from torchio_ramp.datasets import read_dataset_info

    try:
        info = read_dataset_info(root)
    except (FileNotFoundError, ValueError) as error:
        raise PrepError(str(error)) from error
    return Layout(root, info.get('layout', 'ramp'))


# --------------------------------------------------------------------------
# JSON files


def write_json(path: Path, data: Any) -> None:
    """Atomically write indented JSON.

    Example:
        >>> write_json(Path('out/splits.json'), {})  # doctest: +SKIP
    """
    write_text(path, json_text(data))


def read_json(path: Path) -> Any:
    """Read JSON, raising :class:`PrepError` naming the file.

    Example:
        >>> read_json(Path('out/splits.json'))  # doctest: +SKIP
    """
    require_regular_file(path)
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PrepError(f'{path} is not valid JSON: {error}') from error
    except OSError as error:
        raise describe_os_error(error, path, 'reading') from error


def record_path(layout: Layout, subject_id: str) -> Path:
    """Record file of a subject."""
    return layout.records_dir / f'{subject_id}.json'


def write_record(layout: Layout, record: dict[str, Any]) -> None:
    """Atomically store a finished subject's record."""
    layout.records_dir.mkdir(parents=True, exist_ok=True)
    write_json(record_path(layout, record['id']), record)


def load_records(layout: Layout) -> dict[str, dict[str, Any]]:
    """All stored records (unreadable or incomplete ones are ignored: redone).

    Example:
        >>> load_records(Layout(Path('missing-folder')))
        {}
    """
    records = {}
    if layout.records_dir.is_dir():
        for path in sorted(layout.records_dir.glob('*.json')):
            with contextlib.suppress(PrepError):
                record = read_json(path)
                if (
                    isinstance(record, dict)
                    and record.get('id') == path.stem
                    and set(record) >= RECORD_KEYS
                    and {'image', 'label'} <= set(record['outputs'])
                ):
                    records[path.stem] = record
    return records


def stat_entry(path: Path) -> dict[str, int]:
    """Size and modification time (ns) of a file, following links."""
    st = path.stat()
    return {'size': st.st_size, 'mtime_ns': st.st_mtime_ns}


def source_fingerprint(files: list[Path], src: Path) -> dict[str, dict[str, int]]:
    """Size and mtime of each source file, keyed by path relative to ``src``.

    Example:
        >>> source_fingerprint([], Path('src'))
        {}
    """
    out = {}
    for path in files:
        try:
            key = path.relative_to(src).as_posix()
        except ValueError:
            key = str(path)
        out[key] = stat_entry(path)
    return out


def record_status(
    record: dict[str, Any] | None,
    layout: Layout,
    options: dict[str, Any],
    fingerprint: dict[str, dict[str, int]] | None,
) -> str | None:
    """Why a subject must be (re)done, or ``None`` if its outputs are current.

    A subject is current when its record exists, was made with the same
    options from source files of the same size and mtime, and both outputs
    still have the size and mtime recorded when they were written.

    Example:
        >>> record_status(None, Layout(Path('o')), {}, {})
        'not converted yet'
    """
    if record is None:
        return 'not converted yet'
    if record.get('options') != options:
        return 'options changed'
    if fingerprint is not None and record.get('source') != fingerprint:
        return 'source files changed'
    for key in ('image', 'label'):
        path = layout.root / record[key]
        try:
            current = stat_entry(path)
        except OSError:
            return f'{record[key]} missing'
        expected = record['outputs'][key]
        if current != {'size': expected['size'], 'mtime_ns': expected['mtime_ns']}:
            return f'{record[key]} changed since it was written'
    return None


def relocate(layout: Layout, record: dict[str, Any], split: str) -> bool:
    """Move a subject's files to where ``split`` puts them (nnU-Net).

    Returns:
        Whether the record changed (the caller stores it).
    """
    changed = False
    for key, rel in (
        ('image', layout.image_rel(record['id'], split)),
        ('label', layout.label_rel(record['id'], split)),
    ):
        if record[key] == rel:
            continue
        old, new = layout.root / record[key], layout.root / rel
        if old.exists() or old.is_symlink():
            new.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(old, new)
            except OSError as error:
                raise describe_os_error(error, new, 'writing') from error
        record[key] = rel
        changed = True
    return changed


# --------------------------------------------------------------------------
# Lock


@contextlib.contextmanager
def output_lock(layout: Layout):
    """Hold an exclusive lock on the dataset folder for the whole run.

    Raises:
        FatalPrepError: If another ``ramp-prep`` is writing the same folder.
    """
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    path = layout.state_dir / 'lock'
    try:
        lock = FileLock(path).acquire()
    except LockHeld as error:
        raise FatalPrepError(
            f'Another ramp-prep is writing {layout.root} (lock {path}); '
            'wait for it to finish.'
        ) from error
    try:
        yield
    finally:
        lock.release()


# --------------------------------------------------------------------------
# Final files


def split_method(state: dict[str, Any]) -> str:
    """``'release'`` (the release's own split) or ``'seeded'`` (the rule)."""
    return 'release' if state.get('split') == 'release' else 'seeded'


def split_rule(state: dict[str, Any]) -> str:
    """How the split was made, in words (``splits.json``, ``dataset.json``)."""
    return RELEASE_RULE if split_method(state) == 'release' else RULE


def dataset_name(state: dict[str, Any]) -> str:
    """Dataset name as shown to users (``synthetic-`` prefix for phantoms)."""
    prefix = SYNTHETIC_PREFIX if state['synthetic'] else ''
    return prefix + state['dataset']


def _source_mapping(dataset: str) -> dict[str, Any]:
    if dataset == 'totalseg':
        mapping: dict[str, list[str]] = {}
        for structure, value in TOTALSEG_MAPPING.items():
            mapping.setdefault(CLASS_NAMES[value], []).append(structure)
        return {name: ' | '.join(parts) for name, parts in mapping.items()}
    out = {
        ABDOMENCT1K_SOURCE_NAMES[source]: CLASS_NAMES.get(target, 'background')
        for source, target in ABDOMENCT1K_MAPPING.items()
        if source
    }
    return {
        f'{source} ({name})': out[name]
        for source, name in ABDOMENCT1K_SOURCE_NAMES.items()
    }


def build_dataset_json(
    layout: Layout,
    state: dict[str, Any],
    split: dict[str, list[str]],
) -> dict[str, Any]:
    """Contents of ``dataset.json`` (nnU-Net keys are added for nnU-Net)."""
    dataset = state['dataset']
    annotated = list(ANNOTATED_CLASSES[dataset])
    synthetic = state['synthetic']
    release = RELEASES[dataset]
    title = (
        f'SYNTHETIC phantom CTs in the {release} layout (not real patients)'
        if synthetic
        else f'{release}, five-class head'
    )
    info: dict[str, Any] = {
        'name': title,
        'tool': TOOL_NAME,
        'tool_version': tool_version(),
        'layout': layout.format,
        # nnU-Net reads a 'dataset' key as its case -> files mapping
        dataset_name_key(layout.format): dataset_name(state),
        'synthetic': synthetic,
        'source': {'release': release, 'path': state['src']},
        'class_names': {
            '0': 'background',
            **{str(k): v for k, v in CLASS_NAMES.items()},
        },
        'annotated_classes': annotated,
        'not_annotated_classes': [c for c in CLASS_NAMES if c not in annotated],
        'source_mapping': _source_mapping(dataset),
        'overlap_precedence': [CLASS_NAMES[c] for c in OVERLAP_PRECEDENCE],
        'seed': state['seed'],
        'fractions': state['fractions'],
        'split_rule': split_rule(state),
        'num_subjects': sum(len(split[n]) for n in SPLIT_NAMES),
        'split_sizes': {n: len(split[n]) for n in SPLIT_NAMES},
        'file_ending': '.nii.gz',
    }
    if dataset == 'abdomenct1k':
        info['dropped_source_labels'] = {
            f'{v} ({name})': 'background (no output class)'
            for v, name in ABDOMENCT1K_DROPPED.items()
        }
    if layout.format == 'nnunet':
        info['channel_names'] = {'0': 'CT'}
        info['labels'] = {'background': 0, **{v: k for k, v in CLASS_NAMES.items()}}
        info['numTraining'] = len(split['train']) + len(split['val'])
        info['description'] = (
            f'{title}. Test cases are in imagesTs/labelsTs; '
            'splits_final.json holds the train/val split as fold 0 '
            '(nnU-Net copies it into nnUNet_preprocessed when planning).'
        )
    return info


MANIFEST_FIELDS = [
    'id',
    'split',
    'image',
    'label',
    'shape',
    'spacing',
    *[f'voxels_{name}' for name in ('background', *CLASS_NAMES.values())],
    'conflict_voxels',
    'conflicts',
    'dropped_pancreas_voxels',
    'repaired',
    'resampled_masks',
    'linked',
    'source_split',
    'image_sha256',
    'label_sha256',
    'image_bytes',
    'label_bytes',
]


def build_manifest(records: list[dict[str, Any]], split_of: dict[str, str]) -> str:
    """``manifest.csv`` text, one row per prepared subject, sorted by id."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, MANIFEST_FIELDS, lineterminator='\n')
    writer.writeheader()
    for record in sorted(records, key=lambda r: r['id']):
        voxels = record['voxels']
        row = {
            'id': record['id'],
            'split': split_of[record['id']],
            'image': record['image'],
            'label': record['label'],
            'shape': 'x'.join(str(n) for n in record['shape']),
            'spacing': 'x'.join(f'{s:.6g}' for s in record['spacing']),
            'conflict_voxels': record['conflict_voxels'],
            'conflicts': ';'.join(f'{k}:{v}' for k, v in record['conflicts'].items()),
            'dropped_pancreas_voxels': record['dropped'].get('pancreas', ''),
            'repaired': 'yes' if record['repaired'] else 'no',
            'resampled_masks': ';'.join(record['resampled']),
            'linked': 'yes' if record['linked'] else 'no',
            'source_split': record.get('source_split', ''),
            'image_sha256': record['outputs']['image']['sha256'],
            'label_sha256': record['outputs']['label']['sha256'],
            'image_bytes': record['outputs']['image']['size'],
            'label_bytes': record['outputs']['label']['size'],
        }
        for name in ('background', *CLASS_NAMES.values()):
            row[f'voxels_{name}'] = voxels[name]
        writer.writerow(row)
    return buffer.getvalue()


def build_splits_json(
    state: dict[str, Any], cohort_split: dict[str, list[str]], prepared: set[str]
) -> dict[str, Any]:
    """``splits.json``: the prepared ids of each split plus the cohort."""
    cohort = [i for n in SPLIT_NAMES for i in cohort_split[n]]
    not_prepared = {
        i: {'split': n, 'reason': state['not_prepared'].get(i, 'not converted')}
        for n in SPLIT_NAMES
        for i in cohort_split[n]
        if i not in prepared
    }
    if split_method(state) == 'release':
        sizes = tuple(len(cohort_split[n]) for n in SPLIT_NAMES)
    else:
        sizes = split_sizes(len(cohort), state['fractions'])
    return {
        'seed': state['seed'],
        'fractions': state['fractions'],
        'method': split_method(state),
        'rule': split_rule(state),
        'dataset': dataset_name(state),
        **{n: [i for i in cohort_split[n] if i in prepared] for n in SPLIT_NAMES},
        'cohort': {
            'size': len(cohort),
            'sha256': cohort_digest(cohort),
            'split_sizes': dict(zip(SPLIT_NAMES, sizes, strict=True)),
            'basis': state.get('cohort_basis', 'source'),
        },
        'not_prepared': dict(sorted(not_prepared.items())),
        'duplicates': state.get('duplicates') or [],
    }


def build_report(
    layout: Layout,
    state: dict[str, Any],
    records: list[dict[str, Any]],
    splits: dict[str, Any],
) -> str:
    """Human-readable report of the prepared dataset and every problem."""
    lines: list[str] = []
    add = lines.append
    release = RELEASES[state['dataset']]
    if state['synthetic']:
        add('*** SYNTHETIC DATA: phantom CTs from `ramp-prep synth`, not patients ***')
        add('')
    add(f'ramp-prep {tool_version()} report: {release} -> {layout.root}')
    now = datetime.now(UTC)
    add(f'Written {now.strftime("%Y-%m-%d %H:%M:%S UTC")}')
    add(f'Source: {state["src"]}')
    add(f'Format: {layout.format}')
    add('')
    prepared = len(records)
    cohort = splits['cohort']['size']
    add(f'Cohort: {cohort} subjects ({_cohort_rule(state["dataset"])}).')
    how = (
        "the release's own split from meta.csv"
        if split_method(state) == 'release'
        else f'seed {state["seed"]}, fractions {state["fractions"]}'
    )
    add(
        f'Prepared: {prepared}; train {len(splits["train"])}, val '
        f'{len(splits["val"])}, test {len(splits["test"])} '
        f'({how}; full-cohort sizes '
        + '/'.join(str(v) for v in splits['cohort']['split_sizes'].values())
        + ').'
    )
    for warning in empty_split_warnings(splits, layout.root):
        add(f'WARNING: {warning}')
    failures = state.get('failures', {})
    excluded = state.get('excluded', {})
    repaired = [r for r in records if r['repaired']]
    resampled = [r for r in records if r['resampled']]
    conflicted = [r for r in records if r['conflict_voxels']]
    add(
        f'Failed: {len(failures)}. Excluded from the cohort: {len(excluded)}. '
        f'Headers repaired: {len(repaired)}. Masks resampled: {len(resampled)}. '
        f'Subjects with overlap conflicts: {len(conflicted)}.'
    )
    annotated = ANNOTATED_CLASSES[state['dataset']]
    missing = [CLASS_NAMES[c] for c in CLASS_NAMES if c not in annotated]
    if missing:
        add(
            f'Not annotated in this dataset (excluded from evaluation, not '
            f'background): {", ".join(missing)}.'
        )
    for note in state.get('notes', []):
        add(f'Note: {note}')

    def section(title: str, items: list[str]) -> None:
        add('')
        add(f'## {title} ({len(items)})')
        lines.extend(f'- {item}' for item in items) if items else add('none')

    section(
        'Failed (not written; fix and re-run)',
        [f'{k}: {v}' for k, v in sorted(failures.items())],
    )
    section(
        'Excluded from the cohort', [f'{k}: {v}' for k, v in sorted(excluded.items())]
    )
    duplicates = state.get('duplicates') or []
    if duplicates:
        section(
            'Duplicate scans (same CT SHA-256 under several ids; kept in one split)',
            [', '.join(ids) for ids in duplicates],
        )
    section(
        'Repaired headers', [f'{r["id"]}: {d}' for r in repaired for d in r['repaired']]
    )
    nonfinite = [r for r in records if r.get('nonfinite')]
    if nonfinite:
        section(
            'Non-finite CT voxels repaired (--repair-nonfinite: NaN and -Inf set to'
            ' -1024 HU, +Inf to 3071 HU)',
            [
                f'{r["id"]}: {r["nonfinite"]["nan"]} NaN, {r["nonfinite"]["posinf"]}'
                f' +Inf, {r["nonfinite"]["neginf"]} -Inf'
                for r in nonfinite
            ],
        )
    section(
        'Masks resampled onto the CT grid (nearest neighbour)',
        [f'{r["id"]}: {", ".join(r["resampled"])}' for r in resampled],
    )
    precedence = ' > '.join(CLASS_NAMES[c] for c in OVERLAP_PRECEDENCE)
    section(
        f'Overlap conflicts (precedence {precedence}; winner>loser: voxels)',
        [
            f'{r["id"]}: {r["conflict_voxels"]} voxels ('
            + ', '.join(f'{k}: {v}' for k, v in r['conflicts'].items())
            + ')'
            for r in conflicted
        ],
    )
    if state['dataset'] == 'abdomenct1k':
        dropped = [r for r in records if r['dropped'].get('pancreas')]
        total = sum(r['dropped'].get('pancreas', 0) for r in records)
        section(
            f'Pancreas voxels set to background (no output class; {total} in total)',
            [f'{r["id"]}: {r["dropped"]["pancreas"]}' for r in dropped],
        )
    empty = []
    for r in records:
        names = [CLASS_NAMES[c] for c in annotated if r['voxels'][CLASS_NAMES[c]] == 0]
        if names:
            empty.append(f'{r["id"]}: {", ".join(names)}')
    section(
        'Annotated classes with no voxels (e.g. organ outside the field of view)',
        empty,
    )
    not_prepared = splits['not_prepared']
    section(
        'Cohort subjects not in OUT',
        [f'{k} ({v["split"]}): {v["reason"]}' for k, v in not_prepared.items()],
    )
    stale = state.get('stale', [])
    if stale:
        section('Outputs of ids no longer in the source (left in place)', stale)
    return '\n'.join(lines) + '\n'


def _cohort_rule(dataset: str) -> str:
    if dataset == 'totalseg':
        return 'subjects with ct.nii.gz and the six masks'
    return 'masks paired with their image'


def finalize(
    layout: Layout,
    state: dict[str, Any],
    records: dict[str, dict[str, Any]],
    cohort_split: dict[str, list[str]],
) -> dict[str, Any]:
    """Write ``splits.json``, ``manifest.csv``, ``dataset.json``, the report.

    Also ``splits_final.json`` for nnU-Net. ``records`` holds the prepared
    subjects (current outputs) of the cohort.

    Returns:
        The written ``splits.json`` contents.
    """
    prepared = set(records)
    splits = build_splits_json(state, cohort_split, prepared)
    split_of = {i: n for n in SPLIT_NAMES for i in splits[n]}
    ordered = [records[i] for i in sorted(prepared)]
    write_json(layout.root / SPLITS_JSON, splits)
    write_text(layout.root / MANIFEST_CSV, build_manifest(ordered, split_of))
    if layout.format == 'nnunet':
        write_json(
            layout.root / SPLITS_FINAL_JSON,
            [{'train': splits['train'], 'val': splits['val']}],
        )
    write_json(layout.root / DATASET_JSON, build_dataset_json(layout, state, splits))
    write_text(layout.root / REPORT_TXT, build_report(layout, state, ordered, splits))
    return splits
