"""The results store: long-format CSV files, their header, resume and merge.

A results folder holds, per run (or per shard of a run):

* ``results.csv`` (shard ``i`` of ``n``: ``results.shard-i-of-n.csv``): one
  row per subject x setting x class with the columns :data:`COLUMNS`. A
  subject's rows are written together, in one ``write`` followed by
  ``flush`` and ``fsync``, once all its settings are done.
* ``results.json`` (or ``results.shard-i-of-n.json``): the header. Its
  ``arguments`` are everything that changes the numbers (model fingerprint,
  data fingerprint, split, protocol, patch size, overlap, AMP, name); a
  re-run with other arguments refuses to append to the file. ``subjects``
  lists the subjects this file must cover; ``sessions`` records when, where
  (device, batch size) and with which versions each (re)start ran.
* ``summary.json``: :func:`~torchio_ramp.stress.results.summarize` of a
  complete run or of merged shards.

Re-running with the same arguments skips subjects whose rows are complete.
Rows of a subject cut short by a crash can only be at the end of the file
(each subject is one write): they are cut off before resuming, so the final
file equals that of an uninterrupted run byte for byte.

Shard files of one run merge (:func:`merge_shards`) into ``results.csv``
with the subjects in sorted order, exactly as a single process writes them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from ..files import FileLock
from ..files import LockHeld
from ..files import append_synced
from ..files import file_sha256  # noqa: F401 - part of this module's interface
from ..files import json_safe
from ..files import write_atomic
from ..files import write_json
from .protocol import Setting
from .results import StressResults

FORMAT = 'ramp-stress-results'
"""Value of ``format`` in every header written by this module."""

FORMAT_VERSION = 1
"""Version of the results layout."""

RESULTS_STEM = 'results'
SUMMARY_JSON = 'summary.json'

COLUMNS: tuple[str, ...] = (
    'model',
    'dataset',
    'subject_id',
    'family',
    'level',
    'class_id',
    'class_name',
    'annotated',
    'dice',
    'gt_voxels',
    'pred_voxels',
    'intersection_voxels',
    'gt_ml',
    'pred_ml',
    'abs_volume_error_ml',
)
"""Columns of a results CSV. ``family`` is ``'clean'`` (``level`` 0) for the
clean volume; ``annotated`` is 1 if the dataset annotates the class (0: the
row is kept for transparency and excluded from every aggregate); ``dice`` is
``nan`` when prediction and reference are both empty; volumes are in mL."""

_SHARD_NAME = re.compile(r'results\.shard-(\d+)-of-(\d+)\.(csv|json)$')


class ResultsError(ValueError):
    """A results file is damaged or does not belong to this run.

    Example:
        >>> issubclass(ResultsError, ValueError)
        True
    """


# File names ------------------------------------------------------------------


def results_stem(shard: tuple[int, int] | None) -> str:
    """File stem of a run's results (``results`` or ``results.shard-i-of-n``).

    Example:
        >>> results_stem(None), results_stem((1, 4))
        ('results', 'results.shard-1-of-4')
    """
    if shard is None:
        return RESULTS_STEM
    index, count = shard
    return f'{RESULTS_STEM}.shard-{index}-of-{count}'


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``'i/n'`` (0-based index ``i`` of ``n`` shards).

    Raises:
        ValueError: Naming ``--shard`` and the accepted form.

    Example:
        >>> parse_shard('2/4')
        (2, 4)
    """
    match = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', text)
    if not match:
        raise ValueError(f'--shard must look like i/n (e.g. 0/4), not {text!r}')
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        message = f'--shard {text}: need 0 <= i < n (shards are numbered from 0)'
        raise ValueError(message)
    return index, count


def shard_from_environment(
    environ: Mapping[str, str] | None = None,
) -> tuple[int, int] | None:
    """Shard of this process under ``torchrun`` (``RANK``/``WORLD_SIZE``).

    Returns ``None`` outside a multi-process launch (no variables, or a world
    size of 1).

    Example:
        >>> shard_from_environment({'RANK': '1', 'WORLD_SIZE': '4'})
        (1, 4)
        >>> shard_from_environment({}) is None
        True
    """
    environ = os.environ if environ is None else environ
    if 'RANK' not in environ or 'WORLD_SIZE' not in environ:
        return None
    try:
        shard = int(environ['RANK']), int(environ['WORLD_SIZE'])
    except ValueError as error:
        message = (
            f'RANK={environ["RANK"]!r} and WORLD_SIZE={environ["WORLD_SIZE"]!r}'
            ' must be integers'
        )
        raise ValueError(message) from error
    if shard[1] <= 1:
        return None
    return parse_shard(f'{shard[0]}/{shard[1]}')


def shard_subjects(subject_ids: Iterable[str], shard: tuple[int, int] | None):
    """This shard's subjects: ``sorted(ids)[i::n]`` (all, sorted, if no shard).

    Example:
        >>> shard_subjects(['c', 'a', 'b', 'd'], (1, 2))
        ['b', 'd']
    """
    ids = sorted(subject_ids)
    if shard is None:
        return ids
    index, count = shard
    return ids[index::count]


# Rows ------------------------------------------------------------------------


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text of ``rows`` (no header line); floats round-trip exactly.

    Example:
        >>> row = dict.fromkeys(COLUMNS, 0) | {'dice': float('nan'), 'gt_ml': 0.1}
        >>> format_rows([row]).split(',')[8:13]
        ['nan', '0', '0', '0', '0.1']
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    for row in rows:
        writer.writerow([_format(row[column]) for column in COLUMNS])
    return buffer.getvalue()


_HEADER_LINE = ','.join(COLUMNS) + '\n'


def _parse(line: str, path: Path, number: int) -> dict[str, str]:
    values = next(csv.reader([line]))
    if len(values) != len(COLUMNS):
        raise ResultsError(f'{path}:{number}: expected {len(COLUMNS)} columns')
    return dict(zip(COLUMNS, values, strict=True))


@dataclass
class ScannedResults:
    """What :func:`scan_results` found in a CSV file.

    Attributes:
        rows: Parsed rows of the complete subjects, in file order.
        subjects: Complete subjects, in file order.
        blocks: The CSV text of each complete subject, as written.
        valid_bytes: Length of the file up to the last complete subject.
        damaged_tail: Whether bytes after ``valid_bytes`` exist (a subject
            cut short by a crash).

    Example:
        >>> scan_results(Path('results/results.csv'), header).subjects  # doctest: +SKIP
        ['s0001', 's0002']
    """

    rows: list[dict[str, str]]
    subjects: list[str]
    blocks: list[str]
    valid_bytes: int
    damaged_tail: bool


def _expected_block(header: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    return [
        (family, float(level), int(c))
        for family, level in header['settings']
        for c in header['classes']
    ]


def scan_results(path: Path, header: Mapping[str, Any]) -> ScannedResults:
    """Read a results CSV and check every subject's rows against its header.

    A subject is complete when its rows are consecutive and cover every
    setting and class of the header, in order. An incomplete block is only
    accepted at the end of the file (a crash while writing it).

    Raises:
        ResultsError: If the header line is wrong, a subject appears twice,
            a row does not belong to the run, or an incomplete block is
            followed by more rows.

    Example:
        >>> path = Path('results/results.csv')
        >>> scan_results(path, read_header(header_path(path))).damaged_tail  # doctest: +SKIP
        False
    """  # noqa: E501
    expected = _expected_block(header)
    assigned = set(header['subjects'])
    rows: list[dict[str, str]] = []
    subjects: list[str] = []
    blocks: list[str] = []
    with path.open('rb') as f:
        first = f.readline()
        if first.decode('utf-8', 'replace') != _HEADER_LINE:
            raise ResultsError(f'{path} does not start with the columns {COLUMNS}')
        valid = offset = len(first)
        block: list[dict[str, str]] = []
        text: list[str] = []
        number = 1
        damaged = False
        for raw in f:
            number += 1
            offset += len(raw)
            if not raw.endswith(b'\n'):
                damaged = True  # the last line of a cut-short write
                break
            line = raw.decode('utf-8')
            row = _parse(line, path, number)
            if block and row['subject_id'] != block[0]['subject_id']:
                raise ResultsError(
                    f'{path}:{number}: subject {block[0]["subject_id"]!r} has'
                    f' {len(block)} of {len(expected)} rows before the next one; the'
                    ' file is damaged'
                )
            block.append(row)
            text.append(line)
            position = len(block) - 1
            key = (row['family'], float(row['level']), int(row['class_id']))
            if key != expected[position]:
                raise ResultsError(
                    f'{path}:{number}: expected setting/class {expected[position]},'
                    f' found {key}; the file does not match its header'
                )
            if len(block) == 1:
                subject_id = row['subject_id']
                if subject_id not in assigned:
                    raise ResultsError(
                        f'{path}:{number}: subject {subject_id!r} is not one of the'
                        ' subjects of this run'
                    )
                if subject_id in subjects:
                    raise ResultsError(f'{path}:{number}: {subject_id!r} appears twice')
                if (row['model'], row['dataset']) != (
                    header['model'],
                    header['dataset'],
                ):
                    raise ResultsError(
                        f'{path}:{number}: model/dataset {row["model"]!r}/'
                        f'{row["dataset"]!r} differ from the header'
                    )
            if len(block) == len(expected):
                rows.extend(block)
                subjects.append(block[0]['subject_id'])
                blocks.append(''.join(text))
                block, text = [], []
                valid = offset
        damaged = damaged or bool(block)
    return ScannedResults(rows, subjects, blocks, valid, damaged)


# Headers ---------------------------------------------------------------------


def make_header(
    *,
    model: str,
    dataset: str,
    synthetic: bool,
    arguments: Mapping[str, Any],
    settings: Sequence[Setting],
    class_names: Mapping[int, str],
    annotated: Iterable[int],
    subjects: Sequence[str],
    shard: tuple[int, int] | None,
    all_subjects: Sequence[str],
) -> dict[str, Any]:
    """The header of a results file (written as ``results*.json``).

    Args:
        model: Model name (also in every row).
        dataset: Dataset name (also in every row).
        synthetic: Whether the data are phantoms.
        arguments: Everything that changes the numbers; compared on resume
            and merge.
        settings: Protocol settings, clean first.
        class_names: Scored classes and their names.
        annotated: Classes the dataset annotates.
        subjects: Subjects this file must cover.
        shard: ``(index, count)`` or ``None``.
        all_subjects: Subjects of the whole run (all shards).

    Example:
        >>> from torchio_ramp.stress.protocol import StressProtocol
        >>> header = make_header(
        ...     model='ramp', dataset='totalseg', synthetic=False,
        ...     arguments={'seed': 0}, settings=StressProtocol().settings,
        ...     class_names={1: 'liver'}, annotated=[1], subjects=['s2', 's1'],
        ...     shard=None, all_subjects=['s1', 's2'])
        >>> len(header['settings']), header['subjects']
        (66, ['s1', 's2'])
    """
    return {
        'format': FORMAT,
        'version': FORMAT_VERSION,
        'model': model,
        'dataset': dataset,
        'synthetic': bool(synthetic),
        'arguments': json_safe(dict(arguments)),
        'settings': [[s.family, float(s.level)] for s in settings],
        'classes': [int(c) for c in class_names],
        'class_names': {str(int(c)): name for c, name in class_names.items()},
        'annotated_classes': sorted(int(c) for c in annotated),
        'shard': None if shard is None else {'index': shard[0], 'count': shard[1]},
        'subjects': sorted(subjects),
        'all_subjects': len(all_subjects),
        'all_subjects_sha256': _ids_digest(all_subjects),
        'sessions': [],
    }


def _ids_digest(ids: Iterable[str]) -> str:
    return hashlib.sha256('\n'.join(sorted(ids)).encode('utf-8')).hexdigest()


_BINDING = (
    'format',
    'version',
    'model',
    'dataset',
    'arguments',
    'settings',
    'classes',
    'annotated_classes',
    'all_subjects_sha256',
)


def header_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two headers' binding fields.

    Example:
        >>> header_differences({'arguments': {'seed': 0}}, {'arguments': {'seed': 1}})
        ['arguments.seed: 0 (file) vs 1 (now)']
    """
    differences = []
    for key in _BINDING:
        a, b = old.get(key), new.get(key)
        if key == 'arguments' and isinstance(a, Mapping) and isinstance(b, Mapping):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    differences.append(
                        f'arguments.{name}: {a.get(name)!r} (file) vs {b.get(name)!r}'
                        ' (now)'
                    )
        elif a != b:
            differences.append(f'{key}: {a!r} (file) vs {b!r} (now)')
    return differences


def read_header(path: Path) -> dict[str, Any]:
    """Read and check a results header (``results*.json``).

    Raises:
        FileNotFoundError: If it is missing.
        ResultsError: If it is not a header written by ``ramp-stress``.

    Example:
        >>> read_header(Path('results/results.json'))['model']  # doctest: +SKIP
        'ramp'
    """
    if not path.is_file():
        raise FileNotFoundError(f'results header {path} not found')
    try:
        header = json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f'{path} is not valid JSON: {error}') from error
    if not isinstance(header, dict) or header.get('format') != FORMAT:
        raise ResultsError(f'{path} is not a ramp-stress results header')
    if header.get('version') != FORMAT_VERSION:
        message = (
            f'{path} has results format version {header.get("version")}; this'
            f' ramp-stress reads version {FORMAT_VERSION}'
        )
        raise ResultsError(message)
    return header


def header_path(csv_path: Path) -> Path:
    """The header beside a results CSV (``x.csv`` -> ``x.json``).

    Example:
        >>> header_path(Path('out/results.shard-0-of-2.csv')).name
        'results.shard-0-of-2.json'
    """
    return csv_path.with_suffix('.json')


# Writing ---------------------------------------------------------------------


class ResultsWriter:
    """Append complete subjects to a results CSV; resume an earlier run.

    Args:
        folder: Results folder (created).
        header: From :func:`make_header`.
        session: Facts about this (re)start (device, batch size, versions),
            appended to the header's ``sessions``.

    The file is locked (``flock``, where the OS has it) while the writer is
    open, so a second process started on the same results stops with an
    error instead of interleaving rows. Use it as a context manager or call
    :meth:`close`.

    Raises:
        ResultsError: If the folder holds results of this shard made with
            other arguments (naming what differs), a damaged file, or
            another process is writing them.

    Example:
        >>> with ResultsWriter(Path('results'), header) as writer:  # doctest: +SKIP
        ...     writer.completed
        {'s0001', 's0002'}
    """

    def __init__(
        self,
        folder: Path,
        header: Mapping[str, Any],
        session: Mapping[str, Any] | None = None,
    ):
        folder = Path(folder)
        shard = header['shard']
        stem = results_stem(None if shard is None else (shard['index'], shard['count']))
        self.csv_path = folder / f'{stem}.csv'
        self.header_path = header_path(self.csv_path)
        self.header = dict(header)
        self.truncated_bytes = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._lock: FileLock | None = _lock(
            folder / f'.{self.csv_path.name}.lock', self.csv_path
        )
        try:
            self._open(header, shard, session)
        except BaseException:
            self.close()
            raise

    def _open(
        self,
        header: Mapping[str, Any],
        shard: Mapping[str, int] | None,
        session: Mapping[str, Any] | None,
    ) -> None:
        if self.csv_path.exists():
            old = read_header(self.header_path)
            differences = header_differences(old, header)
            if old.get('subjects') != header['subjects'] or old.get('shard') != shard:
                differences.append('subjects or shard differ')
            if differences:
                raise ResultsError(
                    f'{self.csv_path} holds results made with other arguments:'
                    f' {"; ".join(differences)}. Use another --out folder, or'
                    ' delete the file to start over.'
                )
            self.header['sessions'] = list(old.get('sessions', []))
            scanned = scan_results(self.csv_path, self.header)
            if scanned.damaged_tail:
                size = self.csv_path.stat().st_size
                self.truncated_bytes = size - scanned.valid_bytes
                with self.csv_path.open('r+b') as f:
                    f.truncate(scanned.valid_bytes)
                    f.flush()
                    os.fsync(f.fileno())
            self.completed = set(scanned.subjects)
        else:
            self.completed = set()
            write_json(self.header_path, self.header)
            write_atomic(self.csv_path, _HEADER_LINE)
        if session is not None:
            started = datetime.now(UTC).isoformat(timespec='seconds')
            entry = {'started': started, **session}
            self.header['sessions'] = [*self.header['sessions'], entry]
            write_json(self.header_path, self.header)

    def close(self) -> None:
        """Release the lock (rows are on disk after every :meth:`append`)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def remaining(self) -> list[str]:
        """Subjects of this file without complete results, sorted."""
        return [s for s in self.header['subjects'] if s not in self.completed]

    def append(self, subject_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append all rows of one finished subject (one write, then fsync).

        Raises:
            ResultsError: If the subject is already stored or does not
                belong to this file, or the rows do not cover every setting
                and class in order.
        """
        if subject_id in self.completed:
            raise ResultsError(f'{subject_id!r} is already in {self.csv_path}')
        if subject_id not in self.header['subjects']:
            raise ResultsError(f'{subject_id!r} is not a subject of {self.csv_path}')
        expected = _expected_block(self.header)
        keys = [(r['family'], float(r['level']), int(r['class_id'])) for r in rows]
        if keys != expected or any(r['subject_id'] != subject_id for r in rows):
            message = f'rows of {subject_id!r} do not cover every setting and class'
            raise ResultsError(message)
        text = format_rows(rows)
        append_synced(self.csv_path, text)
        self.completed.add(subject_id)


def _lock(path: Path, what: Path) -> FileLock:
    """Take the writer's lock on ``path``, explaining a refusal."""
    try:
        return FileLock(path).acquire()
    except LockHeld as error:
        message = (
            f'another process is writing {what} (lock {path}); run each shard'
            ' once, or wait for it to finish'
        )
        raise ResultsError(message) from error


# Reading ---------------------------------------------------------------------


def find_results(path: Path) -> Path:
    """The results CSV of a folder (or the file itself).

    Raises:
        FileNotFoundError: If there is none; if the folder only holds shards,
            the message says to merge them first.

    Example:
        >>> find_results(Path('results'))  # doctest: +SKIP
        PosixPath('results/results.csv')
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f'results {path} not found')
    candidate = path / f'{RESULTS_STEM}.csv'
    if candidate.is_file():
        return candidate
    shards = sorted(p.name for p in path.glob(f'{RESULTS_STEM}.shard-*-of-*.csv'))
    if shards:
        raise FileNotFoundError(
            f'{path} holds only shard results ({", ".join(shards[:4])}...);'
            f' combine them first: ramp-stress merge {path} --out {path}'
        )
    raise FileNotFoundError(f'{path} holds no {RESULTS_STEM}.csv')


def load_results(path: Path) -> StressResults:
    """Read a results CSV (or folder) and its header into arrays.

    A subject cut short by a crash at the end of the file is ignored, and
    subjects not yet evaluated are reported by
    :attr:`StressResults.complete`.

    Raises:
        FileNotFoundError: If the CSV or its header is missing.
        ResultsError: If they are damaged or do not match.

    Example:
        >>> results = load_results(Path('results'))  # doctest: +SKIP
        >>> results.model, len(results.subjects)  # doctest: +SKIP
        ('ramp', 185)
    """
    csv_path = find_results(Path(path))
    header = read_header(header_path(csv_path))
    scanned = scan_results(csv_path, header)
    settings = [Setting(f, float(level)) for f, level in header['settings']]
    rows = [
        {
            'subject_id': row['subject_id'],
            'family': row['family'],
            'level': float(row['level']),
            'class_id': int(row['class_id']),
            'dice': float(row['dice']),
            'gt_ml': float(row['gt_ml']),
            'pred_ml': float(row['pred_ml']),
        }
        for row in scanned.rows
    ]
    return StressResults.from_rows(
        rows,
        settings,
        header['classes'],
        header['annotated_classes'],
        model=header['model'],
        dataset=header['dataset'],
        synthetic=bool(header['synthetic']),
        class_names={int(k): v for k, v in header['class_names'].items()},
        expected_subjects=tuple(header['subjects']),
        header=header,
    )


# Merging ---------------------------------------------------------------------


def _shard_files(inputs: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            found = sorted(path.glob(f'{RESULTS_STEM}.shard-*-of-*.csv'))
            if not found:
                raise FileNotFoundError(f'{path} holds no shard results to merge')
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f'shard results {path} not found')
    return list(dict.fromkeys(p.resolve() for p in files))


def merge_shards(inputs: Sequence[Path], out: Path) -> Path:
    """Combine the shard files of one run into ``out/results.csv``.

    Every shard ``0..n-1`` must be present once, complete, and made with the
    same arguments; their subjects must be disjoint and together form the
    run's subject list. The merged file lists subjects in sorted order, as a
    single process writes them, so it equals a single-process run's file.

    Args:
        inputs: Shard CSV files, or folders holding ``results.shard-*`` files.
        out: Folder of the merged ``results.csv`` / ``results.json``.

    Returns:
        The merged CSV.

    Raises:
        FileNotFoundError: If an input is missing.
        ResultsError: Naming the shard that is missing, incomplete,
            duplicated or from another run.

    Example:
        >>> merge_shards([Path('results')], Path('results'))  # doctest: +SKIP
        PosixPath('results/results.csv')
    """
    files = _shard_files(inputs)
    headers = {path: read_header(header_path(path)) for path in files}
    reference_path = files[0]
    reference = headers[reference_path]
    by_index: dict[int, Path] = {}
    count = None
    for path, header in headers.items():
        shard = header.get('shard')
        if shard is None:
            raise ResultsError(f'{path} is not a shard (it was run without --shard)')
        differences = header_differences(reference, header)
        if differences:
            raise ResultsError(
                f'{path} and {reference_path} come from different runs:'
                f' {"; ".join(differences)}'
            )
        if count is None:
            count = shard['count']
        if shard['count'] != count:
            raise ResultsError(
                f'{path} is shard {shard["index"]} of {shard["count"]}, but'
                f' {reference_path} is one of {count}'
            )
        if shard['index'] in by_index:
            raise ResultsError(
                f'shard {shard["index"]} given twice: {by_index[shard["index"]]}'
                f' and {path}'
            )
        by_index[shard['index']] = path
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        raise ResultsError(
            f'shards {missing} of {count} are missing (have {sorted(by_index)})'
        )
    blocks: dict[str, str] = {}
    for index in range(count):
        path = by_index[index]
        header = headers[path]
        scanned = scan_results(path, header)
        absent = [s for s in header['subjects'] if s not in set(scanned.subjects)]
        if absent:
            raise ResultsError(
                f'{path} (shard {index} of {count}) is incomplete: {len(absent)}'
                f' subject(s) without results, e.g. {absent[0]!r}; finish it by'
                ' re-running the same command'
            )
        for subject_id, text in zip(scanned.subjects, scanned.blocks, strict=True):
            if subject_id in blocks:
                raise ResultsError(f'subject {subject_id!r} is in two shards')
            blocks[subject_id] = text
    if _ids_digest(blocks) != reference['all_subjects_sha256']:
        raise ResultsError('the shards do not cover the subjects of the run')
    out = Path(out)
    merged = {**reference, 'shard': None, 'subjects': sorted(blocks)}
    merged['sessions'] = [
        {**session, 'shard': index}
        for index in range(count)
        for session in headers[by_index[index]].get('sessions', [])
    ]
    target = out / f'{RESULTS_STEM}.csv'
    if target.exists():
        old = read_header(header_path(target))
        differences = header_differences(old, merged)
        if differences:
            raise ResultsError(
                f'{target} already holds results of another run:'
                f' {"; ".join(differences)}'
            )
    text = _HEADER_LINE + ''.join(blocks[s] for s in sorted(blocks))
    write_json(header_path(target), merged)
    write_atomic(target, text)
    return target


def complete_shards(folder: Path) -> list[Path] | None:
    """All shard files of one run in ``folder``, if every one is complete.

    Returns ``None`` if there are none, some are missing or unfinished, or
    they come from different runs.

    Example:
        >>> complete_shards(Path('results')) is None  # doctest: +SKIP
        True
    """
    files = sorted(Path(folder).glob(f'{RESULTS_STEM}.shard-*-of-*.csv'))
    counts = set()
    for path in files:
        match = _SHARD_NAME.search(path.name)
        if match:
            counts.add(int(match[2]))
    if len(counts) != 1 or len(files) != counts.pop():
        return None
    try:
        for path in files:
            header = read_header(header_path(path))
            scanned = scan_results(path, header)
            if set(scanned.subjects) != set(header['subjects']):
                return None
    except (OSError, ValueError):
        return None
    return files
