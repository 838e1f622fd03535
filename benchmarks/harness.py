"""Timing and reporting helpers shared by the benchmark scripts.

Timings are wall-clock medians of repeated calls after a warm-up. Candidates
that are compared with each other (ours, TorchIO, plain torch) are measured
round-robin, one call of each in turn, so a burst of load from other processes
slows all of them alike instead of one.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SLOW_CALL_S = 0.25
"""Calls slower than this (seconds, in the warm-up) get ``slow_repeats`` repeats."""


@dataclass(frozen=True)
class Timing:
    """Seconds of each repeated call of one candidate.

    Example:
        >>> Timing([0.003, 0.001, 0.002]).median_ms
        2.0
    """

    seconds: Sequence[float]

    @property
    def repeats(self) -> int:
        return len(self.seconds)

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.seconds)

    @property
    def min_ms(self) -> float:
        return 1e3 * min(self.seconds)

    @property
    def mean_ms(self) -> float:
        return 1e3 * statistics.fmean(self.seconds)

    def quantile_ms(self, q: float) -> float:
        """The ``q`` quantile (0..1) in milliseconds, by linear interpolation."""
        values = sorted(self.seconds)
        position = q * (len(values) - 1)
        low = math.floor(position)
        high = min(low + 1, len(values) - 1)
        fraction = position - low
        return 1e3 * (values[low] + fraction * (values[high] - values[low]))


@contextmanager
def num_threads(count: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(count)``, then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect young garbage, then keep the collector off (as ``timeit`` does).

    A full collection takes about 0.2 s with TorchIO and SciPy loaded, and
    tensors are freed by reference counting anyway.
    """
    gc.collect(1)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class Staged:
    """A candidate with an untimed set-up: only ``run(setup(i))`` is timed.

    For peers that modify their input in place (they get a fresh copy of the
    patch per call, as they would get freshly loaded data) or seed a library's
    random state.

    Example:
        >>> staged = Staged(setup=lambda i: [i], run=lambda state: state.append(0))
        >>> time_round_robin({'append': staged}, repeats=2)['append'].repeats
        2
    """

    setup: Callable[[int], Any]
    run: Callable[[Any], object]


Candidate = Callable[[int], object] | Staged


def _call(candidate: Candidate, index: int) -> float:
    """Seconds of one timed call (the set-up of a :class:`Staged` excluded)."""
    if isinstance(candidate, Staged):
        state = candidate.setup(index)
        start = time.perf_counter()
        candidate.run(state)
    else:
        start = time.perf_counter()
        candidate(index)
    return time.perf_counter() - start


def time_round_robin(
    candidates: Mapping[str, Candidate],
    repeats: int,
    warmup: int = 2,
    slow_repeats: int = 5,
) -> dict[str, Timing]:
    """Time each candidate ``repeats`` times, one call of each in turn.

    Args:
        candidates: Name -> function of the repeat index (used as a seed), or
            a :class:`Staged` candidate.
        repeats: Timed calls per candidate.
        warmup: Untimed calls per candidate first (seeds ``-1, -2, ...``
            mapped to large positive seeds).
        slow_repeats: Timed calls for a candidate whose warm-up call took
            longer than :data:`SLOW_CALL_S` (at most ``repeats``).

    Returns:
        Name -> :class:`Timing`.

    Example:
        >>> timings = time_round_robin({'noop': lambda i: None}, repeats=3)
        >>> timings['noop'].repeats
        3
    """
    targets: dict[str, int] = {}
    with no_gc():
        for name, function in candidates.items():
            elapsed = 0.0
            for w in range(warmup):
                elapsed = _call(function, 10_000 + w)
            slow = elapsed > SLOW_CALL_S
            targets[name] = min(repeats, slow_repeats) if slow else repeats
        seconds: dict[str, list[float]] = {name: [] for name in candidates}
        for index in range(max(targets.values(), default=0)):
            for name, function in candidates.items():
                if len(seconds[name]) >= targets[name]:
                    continue
                seconds[name].append(_call(function, index))
    return {name: Timing(values) for name, values in seconds.items()}


RANDOM_OPERATORS = frozenset(
    {
        'bernoulli',
        'bernoulli_',
        'exponential_',
        'multinomial',
        'normal',
        'normal_',
        'rand',
        'rand_like',
        'randint',
        'randint_like',
        'randn',
        'randn_like',
        'random_',
        'randperm',
        'uniform_',
    }
)
"""aten operators that draw random numbers."""


class OperatorClock(TorchDispatchMode):
    """Wall time spent inside torch operators, and inside random-number ones.

    Each operator is timed around its own execution, so the clock's own
    overhead (a Python call per operator) is not counted; the rest of a call's
    wall time is Python: argument handling, TorchIO's subject and history.
    Use one clock per measured call.

    Example:
        >>> import torch
        >>> with OperatorClock() as clock:
        ...     _ = torch.randn(1000).add_(1)
        >>> clock.random_seconds > 0 and clock.seconds >= clock.random_seconds
        True
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self.random_seconds = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        result = func(*args, **(kwargs or {}))
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        if func.overloadpacket.__name__ in RANDOM_OPERATORS:
            self.random_seconds += elapsed
        return result


def run_worker(script: str | Path, arguments: Sequence[str], what: str) -> Any:
    """Run ``python script *arguments`` in a new process; its last line, as JSON.

    For measurements that need a process of their own (peak memory). The
    worker runs from the script's folder, so it imports its sibling modules.

    Raises:
        RuntimeError: If the worker fails, naming ``what`` and ending with its
            error output.
    """
    path = Path(script).resolve()
    completed = subprocess.run(
        [sys.executable, str(path), *arguments],
        capture_output=True,
        text=True,
        check=False,
        cwd=path.parent,
    )
    if completed.returncode != 0:
        message = f'{path.name} worker for {what} failed:\n{completed.stderr[-2000:]}'
        raise RuntimeError(message)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. ``'0.52, 0.61, 0.70'``."""
    return ', '.join(f'{value:.2f}' for value in os.getloadavg())


def machine_summary() -> str:
    """One line: CPU model, core count, Python, torch and TorchIO versions."""
    import torchio

    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f'{model}, {os.cpu_count()} cores; Python {platform.python_version()},'
        f' torch {torch.__version__}, TorchIO {torchio.__version__}'
    )


def code_version() -> str:
    """The git commit of the checkout, noting uncommitted library changes."""
    root = Path(__file__).resolve().parents[1]

    def git(*arguments: str) -> str:
        completed = subprocess.run(
            ['git', *arguments], cwd=root, capture_output=True, text=True, check=False
        )
        return completed.stdout.strip() if completed.returncode == 0 else ''

    commit = git('rev-parse', '--short', 'HEAD')
    if not commit:
        return 'unknown (not a git checkout)'
    dirty = git('status', '--porcelain', '--', 'torchio_ramp')
    return f'git {commit}' + (
        ' with uncommitted changes in torchio_ramp/' if dirty else ''
    )


def format_ms(value: float | None) -> str:
    """Milliseconds with 3 significant digits; ``'-'`` when missing.

    Example:
        >>> format_ms(0.01234), format_ms(12.345), format_ms(1234.5), format_ms(None)
        ('0.012', '12.3', '1234', '-')
    """
    if value is None or math.isnan(value):
        return '-'
    if value >= 100:
        return f'{value:.0f}'
    if value >= 10:
        return f'{value:.1f}'
    if value >= 1:
        return f'{value:.2f}'
    return f'{value:.3f}'


def format_ratio(value: float | None) -> str:
    """A ratio as ``'1.23x'`` (``'-'`` when missing)."""
    if value is None or math.isnan(value):
        return '-'
    return f'{value:.2f}x' if value < 10 else f'{value:.0f}x'


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


_NUMBER = re.compile(r'^[-+]?(\d|\.\d)')


def _numeric(cells: Sequence[str]) -> bool:
    """Whether every non-empty cell of a column starts like a number or is '-'."""
    values = [cell for cell in cells if cell not in ('', '-')]
    return bool(values) and all(_NUMBER.match(cell) for cell in values)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table; numeric columns (after the first) align right.

    Example:
        >>> print(markdown_table(['op', 'ms'], [['blur', '14.7']]))
        | op | ms |
        |:---|---:|
        | blur | 14.7 |
    """
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f'row {row!r} has {len(row)} cells, not {len(header)}')
    alignments = [
        '---:' if column and _numeric([row[column] for row in rows]) else ':---'
        for column in range(len(header))
    ]
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join(alignments) + '|',
    ]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)
