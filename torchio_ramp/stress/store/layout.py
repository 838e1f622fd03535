"""File names of a results folder, and the error of a damaged or foreign one."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS_STEM = 'results'

SUMMARY_JSON = 'summary.json'

SHARD_NAME = re.compile(r'results\.shard-(\d+)-of-(\d+)\.(csv|json)$')


class ResultsError(ValueError):
    """A results file is damaged or does not belong to this run.

    Example:
        >>> issubclass(ResultsError, ValueError)
        True
    """


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


def header_path(csv_path: Path) -> Path:
    """The header beside a results CSV (``x.csv`` -> ``x.json``).

    Example:
        >>> header_path(Path('out/results.shard-0-of-2.csv')).name
        'results.shard-0-of-2.json'
    """
    return csv_path.with_suffix('.json')


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
