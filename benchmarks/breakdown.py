"""Where an operator's time goes: the top torch operators by self CPU time.

Runs an operator kernel (or a pipeline) a few times at one thread under
``torch.profiler`` and prints, per name, the aten operators that take most of
the time, as markdown. A companion to ``run.py`` for optimisation work.

Usage::

    python benchmarks/breakdown.py elastic bias_field 'Ramp()'
    python benchmarks/breakdown.py --size 64 --calls 20 --top 5 downsample
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Sequence

import torch
from cases import PIPELINES
from cases import make_patch
from cases import make_subject
from cases import operator_cases
from harness import markdown_table
from torch.profiler import ProfilerActivity
from torch.profiler import profile


def _callable(name: str, size: int) -> Callable[[int], object]:
    image, label = make_patch((size, size, size))
    cases = {case.name: case for case in operator_cases()}
    if name in cases:
        case = cases[name]
        if case.kernel is not None:
            return lambda i: case.run_kernel(image, i)
        subject = make_subject(image)
        return lambda i: case.transform(i)(subject)
    pipelines = {case.name: case for case in PIPELINES if not case.batch_size}
    if name not in pipelines:
        known = [*cases, *pipelines]
        raise SystemExit(f'breakdown.py: unknown name {name!r}; known: {known}')
    transform = pipelines[name].build()
    subject = make_subject(image, label)

    def run(i: int) -> object:
        torch.manual_seed(i)
        return transform(subject)

    return run


def breakdown(name: str, size: int = 128, calls: int = 10, top: int = 8) -> str:
    """Markdown table of the ``top`` aten operators of ``calls`` calls of ``name``.

    Example:
        >>> print(breakdown('gamma', size=8, calls=1, top=1))  # doctest: +ELLIPSIS
        | torch operator | calls | self CPU ms per call | share |
        ...
    """
    function = _callable(name, size)
    function(-1)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for index in range(calls):
            function(index)
    events = [e for e in profiler.key_averages() if e.key.startswith('aten::')]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    rows = [
        [
            e.key,
            f'{e.count / calls:.1f}',
            f'{e.self_cpu_time_total / 1e3 / calls:.2f}',
            f'{100 * e.self_cpu_time_total / total:.0f}%',
        ]
        for e in events[:top]
    ]
    header = ['torch operator', 'calls', 'self CPU ms per call', 'share']
    return markdown_table(header, rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('names', nargs='+', help='operators or pipelines')
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--calls', type=int, default=10)
    parser.add_argument('--top', type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.names:
        print(f'\n{name}, 1 x {args.size}^3, {args.calls} calls, one thread:\n')
        print(breakdown(name, args.size, args.calls, args.top))


if __name__ == '__main__':
    main()
