"""Peak memory of each operator and of ``Ramp()`` on a large CT volume.

``tracemalloc`` does not see torch's allocations, so each measurement runs in a
fresh subprocess: it allocates the input volume (default ``1 x 512 x 512 x
256`` float32, 256 MiB), takes the resident set size as the baseline, runs the
operator once and reads the peak resident set size. The difference is the
operator's peak memory above its input (output included), reported in MiB and as
a multiple of the input's size; the target is at most 3.

The peak is the kernel's high-water mark ``VmHWM`` (``/proc/self/status``),
reset to the current use after the input is allocated (``echo 5 >
/proc/self/clear_refs``), so neither the imports nor the parent process count.
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the fallback where that reset
is not possible, but it is not reliable in a subprocess: Linux folds the RSS of
the process that spawned it into ``ru_maxrss`` at ``exec``, so a benchmark
parent larger than the operator's baseline hides part of the peak; such
results are flagged (``reliable``).

Operators run as kernels on the tensor; ``flip`` (a transform only) and the
pipelines run through TorchIO, so they include TorchIO's deep copy of the
subject. Pipelines get a uint8 label map too (``Ramp()`` warps it) and run with
several seeds in the same process; their peak is the largest over those seeds.

:func:`count_allocations` complements the RSS numbers without subprocesses: it
records every new buffer of at least an eighth of the input's size that the
torch operators of one call allocate, and their dtypes (target: no
per-voxel float64).

Usage::

    python benchmarks/memory.py                       # every operator, 512x512x256
    python benchmarks/memory.py --shape 64 64 32 blur Ramp()
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MIB = 2**20
DEFAULT_SHAPE = (512, 512, 256)
PIPELINE_SEEDS = 6
MIN_RELIABLE_MIB = 16.0
PIPELINE_NAMES = ('RampCorrupt()', 'Ramp()', 'subject deepcopy')


@dataclass(frozen=True)
class MemoryResult:
    """Peak resident memory of one operator above its input.

    Example:
        >>> MemoryResult('blur', (4, 4, 4), 1.0, 3.0, 0.5).multiple
        4.0
    """

    name: str
    shape: tuple[int, ...]
    baseline_mib: float
    peak_mib: float
    volume_mib: float
    hidden_mib: float = 0.0

    @property
    def reliable(self) -> bool:
        """Whether the baseline was the current memory use.

        With the ``ru_maxrss`` fallback, when the high-water mark before the
        call (from the imports or the parent process) exceeds the memory in
        use by more than 5% of the volume, part of the operation's peak is
        invisible. Volumes under :data:`MIN_RELIABLE_MIB` are not reliable
        either: first-call initialisations of a few MiB dominate.
        """
        return (
            self.volume_mib >= MIN_RELIABLE_MIB
            and self.hidden_mib <= 0.05 * self.volume_mib
        )

    @property
    def extra_mib(self) -> float:
        return self.peak_mib - self.baseline_mib

    @property
    def multiple(self) -> float:
        return self.extra_mib / self.volume_mib


def _max_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    raise OSError(f'no {field} in /proc/self/status')


def _reset_peak() -> bool:
    """Reset this process's peak RSS to the current RSS (Linux >= 4.0)."""
    try:
        with open('/proc/self/clear_refs', 'w') as clear_refs:
            clear_refs.write('5')
        return _status_mib('VmHWM') <= _status_mib('VmRSS') + 1
    except OSError:
        return False


def _current_rss_mib() -> float:
    with open('/proc/self/statm') as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf('SC_PAGE_SIZE') / MIB


def _operation(name: str, shape: Sequence[int]) -> tuple[Callable[[], object], int]:
    """The callable to measure (inputs allocated) and the input's byte size."""
    import torchio as tio
    from cases import make_subject
    from cases import operator_cases

    from torchio_ramp import Ramp
    from torchio_ramp import RampCorrupt

    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, *shape), generator=generator)
    volume_bytes = image.numel() * image.element_size()
    cases = {case.name: case for case in operator_cases()}
    if name in cases:
        case = cases[name]
        if case.kernel is not None:
            return (lambda: case.run_kernel(image, 0)), volume_bytes
        subject = make_subject(image)
        return (lambda: case.transform(0)(subject)), volume_bytes
    if name not in PIPELINE_NAMES:
        known = [*cases, *PIPELINE_NAMES]
        raise SystemExit(f'memory.py: unknown operator {name!r}; known: {known}')
    # filled in place: no temporary that would raise the high-water mark
    label = torch.empty((1, *shape), dtype=torch.uint8).random_(6, generator=generator)
    subject = make_subject(image, label)
    if name == 'subject deepcopy':
        transform: Callable = tio.Compose([])  # copies the subject, does nothing
    else:
        transform = RampCorrupt() if name == 'RampCorrupt()' else Ramp()

    def run_seeds() -> None:
        for seed in range(PIPELINE_SEEDS):
            torch.manual_seed(seed)
            transform(subject)

    return run_seeds, volume_bytes


def _worker(name: str, shape: Sequence[int]) -> None:
    torch.set_num_threads(1)
    operation, volume_bytes = _operation(name, shape)
    if _reset_peak():
        baseline, hidden = _status_mib('VmRSS'), 0.0
        operation()
        peak = _status_mib('VmHWM')
    else:
        baseline = _max_rss_mib()
        hidden = max(0.0, baseline - _current_rss_mib())
        operation()
        peak = _max_rss_mib()
    result = MemoryResult(
        name, tuple(shape), baseline, peak, volume_bytes / MIB, hidden
    )
    print(json.dumps(result.__dict__))


def measure(name: str, shape: Sequence[int] = DEFAULT_SHAPE) -> MemoryResult:
    """Peak memory of ``name`` (an operator or pipeline) in a fresh subprocess.

    Raises:
        RuntimeError: If the subprocess fails, with its error output.
    """
    from harness import run_worker

    arguments = ['--worker', '--shape', *map(str, shape), name]
    data = run_worker(__file__, arguments, repr(name))
    data['shape'] = tuple(data['shape'])
    return MemoryResult(**data)


def all_names() -> list[str]:
    """Every operator of :func:`cases.operator_cases` and the pipelines."""
    from cases import operator_cases

    return [case.name for case in operator_cases()] + list(PIPELINE_NAMES)


# Allocation counting ----------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """A new buffer created by one torch operator."""

    operator: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    nbytes: int


class AllocationWatch(TorchDispatchMode):
    """Record new buffers of at least ``min_bytes`` created by torch operators.

    A buffer is new when its storage is none of the operator's inputs' (so
    in-place operators and views are not counted). Allocations made inside a
    single aten kernel (e.g. scratch space of ``grid_sample``) are invisible;
    the RSS measurement covers those.

    Example:
        >>> x = torch.zeros(1000)
        >>> with AllocationWatch(min_bytes=1000) as watch:
        ...     y = x + 1
        ...     _ = y.mul_(2)
        >>> [(a.operator, a.nbytes) for a in watch.allocations]
        [('aten.add.Tensor', 4000)]
    """

    def __init__(self, min_bytes: int):
        super().__init__()
        self.min_bytes = min_bytes
        self.allocations: list[Allocation] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {_data_pointer(item) for item in tree_flatten((args, kwargs))[0]}
        out = func(*args, **kwargs)
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            if storage.nbytes() < self.min_bytes or storage.data_ptr() in inputs:
                continue
            self.allocations.append(
                Allocation(
                    str(func), tensor.dtype, tuple(tensor.shape), storage.nbytes()
                )
            )
        return out


def _data_pointer(item: object) -> int | None:
    if isinstance(item, torch.Tensor):
        return item.untyped_storage().data_ptr()
    if isinstance(item, (torch.UntypedStorage, torch.TypedStorage)):
        return item.data_ptr()
    return None


def count_allocations(
    operation: Callable[[], object],
    volume_bytes: int,
) -> list[Allocation]:
    """New buffers of at least ``volume_bytes / 8`` allocated by ``operation()``."""
    with AllocationWatch(min_bytes=volume_bytes // 8) as watch:
        operation()
    return watch.allocations


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('names', nargs='*', help='operators (default: all)')
    parser.add_argument('--shape', type=int, nargs=3, default=DEFAULT_SHAPE)
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        (name,) = args.names
        _worker(name, args.shape)
        return
    from harness import markdown_table

    rows = []
    results = []
    for name in args.names or all_names():
        result = measure(name, args.shape)
        results.append(result)
        multiple = f'{result.multiple:.2f}' + ('' if result.reliable else ' ?')
        rows.append([name, f'{result.extra_mib:.0f}', multiple])
        print(f'{name}: {result.multiple:.2f} volumes', file=sys.stderr)
    volume = ' x '.join(map(str, (1, *args.shape)))
    print(f'Peak memory above the input, {volume} float32, one thread:\n')
    print(markdown_table(['operator', 'MiB', 'x volume'], rows))
    if not all(result.reliable for result in results):
        print('\n? = unreliable: see the docstring of MemoryResult.reliable.')


if __name__ == '__main__':
    main()
