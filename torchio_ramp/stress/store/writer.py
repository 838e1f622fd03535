"""Appending a run's subjects to its results file, resuming after a crash."""

from __future__ import annotations

import os
from collections.abc import Mapping
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from ...files import FileLock
from ...files import LockHeld
from ...files import append_synced
from ...files import write_atomic
from ...files import write_json
from .header import header_differences
from .header import read_header
from .layout import ResultsError
from .layout import header_path
from .layout import results_stem
from .rows import HEADER_LINE
from .rows import expected_block
from .rows import format_rows
from .rows import scan_results


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
            write_atomic(self.csv_path, HEADER_LINE)
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
        expected = expected_block(self.header)
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
