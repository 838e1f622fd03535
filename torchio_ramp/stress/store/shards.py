"""Shards of a run: which subjects each process takes, and their merge."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from ...files import write_atomic
from ...files import write_json
from .header import header_differences
from .header import ids_digest
from .header import read_header
from .layout import RESULTS_STEM
from .layout import SHARD_NAME
from .layout import ResultsError
from .layout import header_path
from .rows import HEADER_LINE
from .rows import scan_results


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
    if ids_digest(blocks) != reference['all_subjects_sha256']:
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
    text = HEADER_LINE + ''.join(blocks[s] for s in sorted(blocks))
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
        match = SHARD_NAME.search(path.name)
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
