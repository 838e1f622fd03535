"""Rows of a results CSV: their columns, their text and the check of a file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...metrics import metric_columns
from .layout import ResultsError

ROW_KEYS: tuple[str, ...] = (
    'model',
    'dataset',
    'subject_id',
    'family',
    'level',
    'class_id',
    'class_name',
    'annotated',
)
"""What a row is about: the model, the subject, the setting and the class."""

COLUMNS: tuple[str, ...] = ROW_KEYS + metric_columns()
"""Columns of a results CSV: :data:`ROW_KEYS`, then the columns of the
per-volume metrics (:data:`torchio_ramp.metrics.VOLUME_METRICS`). ``family``
is ``'clean'`` (``level`` 0) for the clean volume; ``annotated`` is 1 if the
dataset annotates the class (0: the row is kept for transparency and excluded
from every aggregate); ``dice`` is ``nan`` when prediction and reference are
both empty; volumes are in mL."""


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
        >>> values = dict(zip(COLUMNS, format_rows([row]).strip().split(',')))
        >>> values['dice'], values['gt_voxels'], values['gt_ml']
        ('nan', '0', '0.1')
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    for row in rows:
        writer.writerow([_format(row[column]) for column in COLUMNS])
    return buffer.getvalue()


HEADER_LINE = ','.join(COLUMNS) + '\n'


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


def expected_block(header: Mapping[str, Any]) -> list[tuple[str, float, int]]:
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
    expected = expected_block(header)
    assigned = set(header['subjects'])
    rows: list[dict[str, str]] = []
    subjects: list[str] = []
    blocks: list[str] = []
    with path.open('rb') as f:
        first = f.readline()
        if first.decode('utf-8', 'replace') != HEADER_LINE:
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
