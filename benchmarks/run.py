"""torchio-ramp benchmarks: the single entry point.

Prints markdown tables: every operator (our kernel, our TorchIO transform,
TorchIO's closest built-in, a plain-torch reference; ratios; two-thread time;
new buffers; peak memory on a large CT), our transforms against the same
augmentation in TorchIO, MONAI and batchgeneratorsv2 (the last two optional),
where each operator's time goes (transform shell, kernel, random numbers), the
RAMP pipelines against the same pipelines built from TorchIO's built-ins and
against one ``torch.randn`` of the patch in the same run, reference costs (one
memory pass, random numbers, TorchIO's deep copy), ``tio.Queue`` throughput,
peak memory, the elastic field's equivalence with the dense definition, and a
summary of the targets (met or missed, by how much).

Method: a 1 x 128^3 float32 phantom CT patch in [0, 1] (1 mm voxels),
``torch.set_num_threads(1)`` (the setting inside DataLoader workers) except in
the two-thread columns, warm-up calls then the median of N repeats. Ours,
TorchIO and plain torch are timed in the same run, round-robin (one call of
each in turn), with the same seeds for our kernel and the reference.

Usage::

    python benchmarks/run.py                  # full run, about 5-10 minutes
    python benchmarks/run.py --quick          # small sizes, a smoke test
    python benchmarks/run.py --sections operators,pipelines --json out.json
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

import elastic_equivalence
import memory
import peers
import queue_throughput
import torch
from cases import PIPELINES
from cases import OperatorCase
from cases import PipelineCase
from cases import make_patch
from cases import make_subject
from cases import operator_cases
from harness import Candidate
from harness import OperatorClock
from harness import Staged
from harness import Timing
from harness import code_version
from harness import format_ms
from harness import format_ratio
from harness import load_average
from harness import machine_summary
from harness import markdown_table
from harness import num_threads
from harness import ratio
from harness import time_round_robin

from torchio_ramp.kernels.base import check_intensities

SECTIONS = ('operators', 'pipelines', 'queue', 'memory', 'elastic')
PLAIN_TARGET = 1.5
MEMORY_TARGET = 3.0
ELASTIC_TARGET_MS = 100.0
PIPELINE_SPEEDUP_TARGET = 5.0
PEER_TARGET = 1.0
FLOOR = 'torch.randn'


@dataclass(frozen=True)
class Config:
    """Sizes and repeats of one benchmark run."""

    shape: tuple[int, int, int] = (128, 128, 128)
    repeats: int = 21
    warmup: int = 2
    slow_repeats: int = 5
    pipeline_repeats: int = 60
    memory_shape: tuple[int, int, int] = memory.DEFAULT_SHAPE
    memory_names: tuple[str, ...] | None = None
    memory_jobs: int = 2
    queue_patches: int = 40
    queue_warmup: int = 4
    elastic_size: int = 128
    elastic_sigma: float = 10.0
    elastic_seeds: int = 4
    sections: tuple[str, ...] = SECTIONS


QUICK = Config(
    shape=(32, 32, 32),
    repeats=3,
    warmup=1,
    slow_repeats=2,
    pipeline_repeats=4,
    memory_shape=(32, 32, 16),
    memory_names=('Ramp()',),
    queue_patches=2,
    queue_warmup=1,
    elastic_size=24,
    elastic_sigma=6.0,
    elastic_seeds=1,
)


@dataclass
class OperatorResult:
    """Everything measured for one operator."""

    case: OperatorCase
    timings: dict[str, Timing]
    two_threads: Timing
    max_difference: float
    buffers: list[memory.Allocation] = field(default_factory=list)
    peers: tuple[peers.Peer, ...] = ()
    clock: OperatorTiming | None = None

    def median(self, name: str) -> float | None:
        timing = self.timings.get(name)
        return None if timing is None else timing.median_ms

    def fastest_peer(self) -> tuple[str, float] | None:
        """(label, median ms) of the fastest TorchIO / MONAI / bgv2 transform."""
        found = [
            (label, timing.median_ms)
            for label, timing in self.timings.items()
            if label == 'torchio' or label in peers.LIBRARIES
        ]
        if not found:
            return None
        label, value = min(found, key=lambda item: item[1])
        return _PEER_LABELS.get(label, label), value


_PEER_LABELS = {'torchio': 'TorchIO'}


@dataclass
class OperatorTiming:
    """Seconds inside torch operators and random-number operators, per call."""

    seconds: list[float] = field(default_factory=list)
    random_seconds: list[float] = field(default_factory=list)

    def record(self, clock: OperatorClock) -> None:
        self.seconds.append(clock.seconds)
        self.random_seconds.append(clock.random_seconds)

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.seconds)

    @property
    def random_median_ms(self) -> float:
        return 1e3 * statistics.median(self.random_seconds)


@dataclass
class PipelineResult:
    """Per-patch timings of one pipeline (``None`` when it is not available)."""

    case: PipelineCase
    ours: Timing | None
    two_threads: Timing | None
    torchio: Timing | None
    floor: Timing | None = None
    clock: OperatorTiming | None = None

    @property
    def floor_ratio(self) -> float | None:
        """Our median over the median of one ``torch.randn`` of the patch."""
        if self.ours is None or self.floor is None:
            return None
        return ratio(self.ours.median_ms, self.floor.median_ms)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Measurements ---------------------------------------------------------------


def measure_operator(
    case: OperatorCase,
    image: torch.Tensor,
    config: Config,
) -> OperatorResult:
    """Time ours / TorchIO / peers / plain torch round-robin, then at two threads.

    One more candidate runs our kernel under an :class:`OperatorClock`, for the
    time inside torch operators and random-number draws (its wall time, which
    includes the clock's overhead, is not reported).
    """
    subject = make_subject(image)
    candidates: dict[str, Callable[[int], object] | Staged] = {}
    clock = OperatorTiming()
    if case.kernel is not None:
        candidates['kernel'] = lambda i: case.run_kernel(image, i)

        def clocked(i: int) -> None:
            with OperatorClock() as operator_clock:
                case.run_kernel(image, i)
            clock.record(operator_clock)

        candidates['clocked kernel'] = clocked
    candidates['transform'] = lambda i: case.transform(i)(subject)
    if case.reference is not None:
        candidates['reference'] = lambda i: case.run_reference(image, i)
    torchio_transform = case.torchio_transform()
    if torchio_transform is not None:
        candidates['torchio'] = lambda i: torchio_transform(subject)
    present = peers.peers_for(case.name)
    for peer in present:
        candidates[peer.library] = _peer_candidate(peer, case, image)
    timings = time_round_robin(
        candidates, config.repeats, config.warmup, config.slow_repeats
    )
    timings.pop('clocked kernel', None)
    main = 'kernel' if case.kernel is not None else 'transform'
    with num_threads(2):
        two = time_round_robin(
            {main: candidates[main]},
            config.repeats,
            config.warmup,
            config.slow_repeats,
        )[main]

    def ours(seed: int) -> torch.Tensor:
        if case.kernel is not None:
            return case.run_kernel(image, seed)
        return case.transform(seed)(subject).ct.data

    difference = math.nan  # no plain-torch reference to compare with
    if case.reference is not None:
        difference = max(
            float((ours(seed) - case.run_reference(image, seed)).abs().max())
            for seed in range(3)
        )
    buffers = []
    if case.kernel is not None:
        volume_bytes = image.numel() * image.element_size()
        buffers = memory.count_allocations(
            lambda: case.run_kernel(image, 0), volume_bytes
        )
    return OperatorResult(
        case,
        timings,
        two,
        difference,
        buffers,
        peers=present,
        clock=clock if clock.seconds else None,
    )


def _peer_candidate(
    peer: peers.Peer, case: OperatorCase, image: torch.Tensor
) -> Staged:
    """A peer's call, with its seeding (and input copy) outside the timed region."""
    call = peer.build(case.parameters, tuple(image.shape))

    def setup(index: int) -> torch.Tensor:
        call.seed(index)
        return image.clone() if peer.in_place else image

    return Staged(setup, call)


def measure_floors(
    image: torch.Tensor,
    label: torch.Tensor,
    config: Config,
) -> dict[str, Timing]:
    """What no operator can beat: a memory pass, random numbers, copies."""
    generator = torch.Generator().manual_seed(0)
    image_only = make_subject(image)
    with_label = make_subject(image, label)
    voxels = image.numel()
    candidates = {
        'one memory pass (x.clone())': lambda i: image.clone(),
        'in-place pass (x.mul_(1))': lambda i: image.mul_(1.0),
        f'torch.randn, {voxels:,} values': lambda i: torch.randn(
            image.shape, generator=generator
        ),
        f'torch.rand, {voxels:,} values': lambda i: torch.rand(
            image.shape, generator=generator
        ),
        'input check of every kernel (check_intensities: one integer aminmax)': (
            lambda i: check_intensities(image)
        ),
        'TorchIO deep copy of the subject (ct)': lambda i: copy.deepcopy(image_only),
        'TorchIO deep copy of the subject (ct + uint8 label)': lambda i: copy.deepcopy(
            with_label
        ),
    }
    return time_round_robin(candidates, config.repeats, config.warmup)


def measure_pipeline(
    case: PipelineCase,
    image: torch.Tensor,
    label: torch.Tensor,
    config: Config,
) -> PipelineResult:
    """Per-patch timings of ours and of the TorchIO-built pipeline.

    Call ``i`` of each runs after ``torch.manual_seed(i)``, so ours and the
    TorchIO-built pipeline draw the same random plan where their sampling
    agrees (``RampCorrupt``: the same ``k`` and families).
    """
    ours = case.build()
    if ours is None:
        return PipelineResult(case, None, None, None)
    subject = make_subject(image, label)
    data = subject
    if case.batch_size:
        data = image.expand(case.batch_size, *image.shape).contiguous()

    # seeding is set-up, not timed: torch.manual_seed also queues the seed
    # of lazily initialised devices, which formats a stack trace (~0.2 ms)
    def seed(i: int) -> int:
        torch.manual_seed(i)
        return i

    run_ours = Staged(setup=seed, run=lambda i: ours(data))
    clock = OperatorTiming()

    def clocked(i: int) -> None:
        with OperatorClock() as operator_clock:
            ours(data)
        clock.record(operator_clock)

    generator = torch.Generator().manual_seed(0)
    candidates: dict[str, Candidate] = {
        'ours': run_ours,
        FLOOR: lambda i: torch.randn(image.shape, generator=generator),
        'clocked': Staged(setup=seed, run=clocked),
    }
    if case.torchio is not None:
        theirs = case.torchio()
        candidates['torchio'] = Staged(setup=seed, run=lambda i: theirs(subject))
    repeats = config.pipeline_repeats
    timings = time_round_robin(candidates, repeats, config.warmup, repeats)
    with num_threads(2):
        two = time_round_robin({'ours': run_ours}, repeats, config.warmup, repeats)
    per_patch = max(1, case.batch_size)

    def scaled(timing: Timing | None) -> Timing | None:
        if timing is None:
            return None
        return Timing([s / per_patch for s in timing.seconds])

    per_patch_clock = OperatorTiming(
        [s / per_patch for s in clock.seconds],
        [s / per_patch for s in clock.random_seconds],
    )
    return PipelineResult(
        case,
        scaled(timings['ours']),
        scaled(two['ours']),
        scaled(timings.get('torchio')),
        floor=timings[FLOOR],
        clock=per_patch_clock,
    )


def measure_queue(config: Config) -> list[queue_throughput.QueueResult]:
    results = []
    for workers in (1, 2):
        for augment in (False, True):
            _progress(f'queue: {workers} worker(s), augment={augment}')
            results.append(
                queue_throughput.measure_queue(
                    workers,
                    augment,
                    patches=config.queue_patches,
                    warmup=config.queue_warmup,
                    volume=config.shape,
                    patch=config.shape,
                )
            )
    return results


def measure_memory(config: Config) -> dict[str, memory.MemoryResult]:
    names = list(config.memory_names or memory.all_names())
    _progress(f'memory: {len(names)} subprocesses, {config.memory_jobs} at a time')
    with ThreadPoolExecutor(max_workers=config.memory_jobs) as pool:
        results = pool.map(
            lambda name: memory.measure(name, config.memory_shape), names
        )
        return {result.name: result for result in results}


# Report ---------------------------------------------------------------------


def _timing_cell(timing: Timing | None, config: Config) -> str:
    if timing is None:
        return '-'
    marker = '*' if timing.repeats < config.repeats else ''
    return format_ms(timing.median_ms) + marker


def operators_table(
    results: Sequence[OperatorResult],
    memory_results: dict[str, memory.MemoryResult],
    config: Config,
) -> str:
    header = [
        'operator',
        'ours kernel ms',
        'ours transform ms †',
        'TorchIO ms †',
        'plain torch ms',
        'ours / plain',
        'TorchIO / ours †',
        'max abs diff vs plain',
        'new buffers (volumes)',
        'peak memory (x volume)',
    ]
    rows = []
    for result in results:
        kernel = result.median('kernel')
        transform = result.median('transform')
        buffers = result.buffers
        volume_bytes = math.prod(config.shape) * 4
        buffer_cell = (
            f'{len(buffers)} ({sum(b.nbytes for b in buffers) / volume_bytes:.1f})'
            if result.case.kernel is not None
            else '-'
        )
        if any(b.dtype == torch.float64 for b in buffers):
            buffer_cell += ' float64!'
        peak = memory_results.get(result.case.name)
        rows.append(
            [
                result.case.name,
                _timing_cell(result.timings.get('kernel'), config),
                _timing_cell(result.timings.get('transform'), config),
                _timing_cell(result.timings.get('torchio'), config),
                _timing_cell(result.timings.get('reference'), config),
                format_ratio(ratio(kernel, result.median('reference'))),
                format_ratio(ratio(result.median('torchio'), transform)),
                '-'
                if math.isnan(result.max_difference)
                else f'{result.max_difference:.0e}',
                buffer_cell,
                _memory_cell(peak),
            ]
        )
    return markdown_table(header, rows)


def _memory_cell(result: memory.MemoryResult | None) -> str:
    if result is None:
        return '-'
    return f'{result.multiple:.2f}' + ('' if result.reliable else ' ?')


def equivalents_table(results: Sequence[OperatorResult]) -> str:
    """Every peer transform used, with what differs from our operator."""
    rows = []
    for result in results:
        equivalent = result.case.torchio
        found = []
        if equivalent is not None:
            found.append(('TorchIO', equivalent.description, equivalent.difference))
        found += [(p.library, p.description, p.difference) for p in result.peers]
        if not found:
            rows.append([result.case.name, 'none', '-', ''])
        for library, description, difference in found:
            rows.append([result.case.name, library, description, difference])
    return markdown_table(['operator', 'library', 'transform', 'difference'], rows)


def peer_table(results: Sequence[OperatorResult], config: Config) -> str:
    """Our transform against the fastest transform of the same augmentation."""
    header = [
        'operator',
        'ours transform ms',
        'TorchIO ms',
        'MONAI ms',
        'batchgeneratorsv2 ms',
        'fastest peer',
        f'ours / fastest peer (target <= {PEER_TARGET:g})',
    ]
    rows = []
    for result in results:
        transform = result.median('transform')
        fastest = result.fastest_peer()
        rows.append(
            [
                result.case.name,
                _timing_cell(result.timings.get('transform'), config),
                _timing_cell(result.timings.get('torchio'), config),
                _timing_cell(result.timings.get('MONAI'), config),
                _timing_cell(result.timings.get('batchgeneratorsv2'), config),
                fastest[0] if fastest else 'none',
                format_ratio(ratio(transform, fastest[1]) if fastest else None),
            ]
        )
    return markdown_table(header, rows)


def breakdown_table(results: Sequence[OperatorResult]) -> str:
    """Where each operator's time goes: shell, kernel, random numbers."""
    header = [
        'operator',
        'transform ms',
        'kernel ms',
        'shell ms (transform - kernel)',
        'shell share',
        'random numbers ms',
        'other torch operators ms',
        'random share of kernel',
    ]
    rows = []
    for result in results:
        transform = result.median('transform')
        kernel = result.median('kernel')
        clock = result.clock
        if kernel is None or transform is None or clock is None:
            rows.append(
                [result.case.name, format_ms(transform), '-', '-', '-', '-', '-', '-']
            )
            continue
        shell = transform - kernel
        random_ms = clock.random_median_ms
        other = max(0.0, kernel - random_ms)
        rows.append(
            [
                result.case.name,
                format_ms(transform),
                format_ms(kernel),
                format_ms(shell),
                f'{100 * shell / transform:.0f}%',
                format_ms(random_ms),
                format_ms(other),
                f'{100 * min(random_ms, kernel) / kernel:.0f}%',
            ]
        )
    return markdown_table(header, rows)


def floors_table(floors: dict[str, Timing]) -> str:
    rows = [[name, format_ms(timing.median_ms)] for name, timing in floors.items()]
    return markdown_table(['operation (1 thread)', 'median ms'], rows)


def pipelines_table(results: Sequence[PipelineResult]) -> str:
    header = [
        'pipeline (per patch)',
        'ours median ms',
        'ours mean ms',
        'ours p90 ms',
        f'{FLOOR} median ms',
        f'ours / {FLOOR} (median)',
        'TorchIO-built median ms',
        'TorchIO-built mean ms',
        'TorchIO-built / ours (median)',
        'TorchIO-built / ours (mean)',
        'target (1 thread)',
    ]
    rows = []
    for result in results:
        case = result.case
        target = (
            '-'
            if case.floor_target is None
            else f'median <= {case.floor_target:g}x {FLOOR}'
        )
        if result.ours is None:
            rows.append(
                [case.name, f'not available ({case.missing})'] + ['-'] * 8 + [target]
            )
            continue
        ours, theirs, floor = result.ours, result.torchio, result.floor
        rows.append(
            [
                case.name,
                format_ms(ours.median_ms),
                format_ms(ours.mean_ms),
                format_ms(ours.quantile_ms(0.9)),
                format_ms(floor.median_ms if floor else None),
                format_ratio(result.floor_ratio),
                format_ms(theirs.median_ms if theirs else None),
                format_ms(theirs.mean_ms if theirs else None),
                format_ratio(
                    ratio(theirs.median_ms, ours.median_ms) if theirs else None
                ),
                format_ratio(ratio(theirs.mean_ms, ours.mean_ms) if theirs else None),
                target,
            ]
        )
    return markdown_table(header, rows)


def pipeline_breakdown_table(results: Sequence[PipelineResult]) -> str:
    """Per patch: random numbers, other torch operators, Python (the rest)."""
    header = [
        'pipeline (per patch)',
        'ours median ms',
        'random numbers ms',
        'other torch operators ms',
        'Python and TorchIO shell ms',
        f'random numbers / {FLOOR}',
    ]
    rows = []
    for result in results:
        if result.ours is None or result.clock is None or not result.clock.seconds:
            continue
        median = result.ours.median_ms
        operators = result.clock.median_ms
        random_ms = result.clock.random_median_ms
        floor = result.floor.median_ms if result.floor else None
        rows.append(
            [
                result.case.name,
                format_ms(median),
                format_ms(random_ms),
                format_ms(max(0.0, operators - random_ms)),
                format_ms(max(0.0, median - operators)),
                format_ratio(ratio(random_ms, floor)),
            ]
        )
    return markdown_table(header, rows)


def threads_table(
    operators: Sequence[OperatorResult],
    pipelines: Sequence[PipelineResult],
) -> str:
    """1 vs 2 threads for our kernels (transform for flip) and pipelines.

    Call ``i`` does the same work at one and two threads (same seed), so the
    speed-up is also given as the median of the per-call ratios.
    """
    pairs: list[tuple[str, Timing, Timing]] = []
    for result in operators:
        main = 'kernel' if result.case.kernel is not None else 'transform'
        pairs.append((result.case.name, result.timings[main], result.two_threads))
    for result in pipelines:
        if result.ours is not None and result.two_threads is not None:
            pairs.append((result.case.name, result.ours, result.two_threads))
    rows = []
    for name, one, two in pairs:
        # the two runs may differ in length when one counts as slow
        calls = zip(one.seconds, two.seconds, strict=False)
        paired = [a / b for a, b in calls if b > 0]
        rows.append(
            [
                name,
                format_ms(one.median_ms),
                format_ms(two.median_ms),
                format_ratio(one.median_ms / two.median_ms),
                format_ratio(statistics.median(paired)),
            ]
        )
    header = [
        'ours',
        '1 thread median ms',
        '2 threads median ms',
        'speed-up (medians)',
        'speed-up (median of paired calls)',
    ]
    return markdown_table(header, rows)


def queue_table(results: Sequence[queue_throughput.QueueResult]) -> str:
    by_workers: dict[int, dict[str, float]] = {}
    for result in results:
        by_workers.setdefault(result.workers, {})[result.augmentation] = (
            result.patches_per_second
        )
    header = [
        'workers',
        'CTNormalize only (patches/s)',
        'CTNormalize + Ramp() (patches/s)',
    ]
    rows = [
        [
            str(workers),
            f'{values.get("CTNormalize only", float("nan")):.1f}',
            f'{values.get("CTNormalize + Ramp()", float("nan")):.1f}',
        ]
        for workers, values in sorted(by_workers.items())
    ]
    return markdown_table(header, rows)


def memory_table(results: dict[str, memory.MemoryResult]) -> str:
    rows = []
    for name, result in results.items():
        if not result.reliable:
            verdict = 'unreliable (see memory.py)'
        else:
            verdict = 'ok' if result.multiple <= MEMORY_TARGET else 'MISS'
        rows.append(
            [name, f'{result.extra_mib:.0f}', f'{result.multiple:.2f}', verdict]
        )
    header = [
        'operator',
        'peak above input (MiB)',
        'x volume',
        f'<= {MEMORY_TARGET:g}x',
    ]
    return markdown_table(header, rows)


def targets_table(
    operators: Sequence[OperatorResult],
    pipelines: Sequence[PipelineResult],
    memory_results: dict[str, memory.MemoryResult],
) -> str:
    """One row per target; misses name the operator and the excess."""
    rows: list[list[str]] = []

    def verdict(met: bool, value: float, target: float, lower_is_better: bool) -> str:
        if met:
            return 'met'
        excess = value / target if lower_is_better else target / value
        return f'MISSED ({excess:.2f}x the target)'

    if operators:
        checked = 0
        for result in operators:
            main = result.median('kernel')
            value = ratio(main, result.median('reference'))
            if value is None:
                continue
            checked += 1
            if value > PLAIN_TARGET:
                rows.append(
                    [
                        f'{result.case.name}: ours / plain torch <= {PLAIN_TARGET}',
                        f'{format_ms(main)} / {format_ms(result.median("reference"))}'
                        f' ms = {value:.2f}x',
                        verdict(False, value, PLAIN_TARGET, True),
                    ]
                )
        misses = len(rows)
        rows.insert(
            0,
            [
                f'every operator: ours / plain torch <= {PLAIN_TARGET}',
                f'{checked - misses} of {checked} within',
                'met' if misses == 0 else f'MISSED by {misses} (rows below)',
            ],
        )
        elastic = next((r for r in operators if r.case.name == 'elastic'), None)
        if elastic is not None and elastic.median('kernel') is not None:
            value = elastic.median('kernel')
            rows.append(
                [
                    f'elastic (alpha 80, sigma 10) <= {ELASTIC_TARGET_MS:g} ms',
                    f'{format_ms(value)} ms',
                    verdict(value <= ELASTIC_TARGET_MS, value, ELASTIC_TARGET_MS, True),
                ]
            )
        float64 = [
            r.case.name
            for r in operators
            if any(b.dtype == torch.float64 for b in r.buffers)
        ]
        rows.append(
            [
                'no per-voxel float64 buffer',
                ', '.join(float64) if float64 else 'none found',
                'met' if not float64 else 'MISSED',
            ]
        )
        rows += _peer_target_rows(operators)
    for result in pipelines:
        case = result.case
        if case.target_ms is None:
            continue
        if result.ours is None:
            rows.append(
                [f'{case.name} median <= {case.target_ms:g} ms', case.missing, '-']
            )
            continue
        value = result.ours.median_ms
        rows.append(
            [
                f'{case.name} median <= {case.target_ms:g} ms',
                f'{format_ms(value)} ms',
                verdict(value <= case.target_ms, value, case.target_ms, True),
            ]
        )
        floor_ratio = result.floor_ratio
        if case.floor_target is not None and floor_ratio is not None:
            rows.append(
                [
                    f'{case.name} median <= {case.floor_target:g}x {FLOOR} (same run)',
                    f'{format_ms(value)} / {format_ms(result.floor.median_ms)} ms'
                    f' = {floor_ratio:.2f}x',
                    verdict(
                        floor_ratio <= case.floor_target,
                        floor_ratio,
                        case.floor_target,
                        True,
                    ),
                ]
            )
        if result.torchio is not None:
            speedup = result.torchio.median_ms / value
            rows.append(
                [
                    f'{case.name}: TorchIO-built / ours >= {PIPELINE_SPEEDUP_TARGET:g}'
                    ' (median)',
                    format_ratio(speedup),
                    verdict(
                        speedup >= PIPELINE_SPEEDUP_TARGET,
                        speedup,
                        PIPELINE_SPEEDUP_TARGET,
                        False,
                    ),
                ]
            )
    reliable = {n: r for n, r in memory_results.items() if r.reliable}
    if memory_results and not reliable:
        rows.append(
            [
                f'peak memory <= {MEMORY_TARGET:g}x the volume',
                'not measurable (volume too small)',
                '-',
            ]
        )
    memory_results = reliable
    if memory_results:
        over = {
            n: r.multiple
            for n, r in memory_results.items()
            if r.multiple > MEMORY_TARGET
        }
        shape = next(iter(memory_results.values())).shape
        rows.append(
            [
                f'peak memory <= {MEMORY_TARGET:g}x the volume'
                f' (1 x {" x ".join(map(str, shape))})',
                f'{len(memory_results) - len(over)} of {len(memory_results)} within',
                'met' if not over else f'MISSED by {len(over)} (rows below)',
            ]
        )
        for name, multiple in over.items():
            rows.append(
                [
                    f'{name}: peak memory <= {MEMORY_TARGET:g}x',
                    f'{multiple:.2f}x',
                    verdict(False, multiple, MEMORY_TARGET, True),
                ]
            )
    rows.append(
        [
            'BatchRampCorrupt on CUDA, 2 x 1 x 128^3 <= 5 ms (H100)',
            'not measurable here',
            'run benchmarks/check_cuda.py on a GPU machine',
        ]
    )
    return markdown_table(['target', 'measured', 'verdict'], rows)


def _peer_target_rows(operators: Sequence[OperatorResult]) -> list[list[str]]:
    """'Every transform <= the fastest peer', then one row per miss."""
    misses = []
    compared = 0
    for result in operators:
        fastest = result.fastest_peer()
        transform = result.median('transform')
        if fastest is None or transform is None:
            continue
        compared += 1
        value = transform / fastest[1]
        if value > PEER_TARGET:
            misses.append(
                [
                    f'{result.case.name}: ours / fastest peer <= {PEER_TARGET:g}',
                    f'{format_ms(transform)} / {format_ms(fastest[1])} ms'
                    f' ({fastest[0]}) = {value:.2f}x',
                    f'MISSED ({value / PEER_TARGET:.2f}x the target)',
                ]
            )
    libraries = ', '.join(
        ['TorchIO', *(name for name in peers.LIBRARIES if peers.available(name))]
    )
    head = [
        f'every transform <= {PEER_TARGET:g}x the fastest peer transform ({libraries})',
        f'{compared - len(misses)} of {compared} within',
        'met' if not misses else f'MISSED by {len(misses)} (rows below)',
    ]
    return [head, *misses]


# Main -----------------------------------------------------------------------


def peer_summary() -> str:
    """Which peer libraries are installed, with versions.

    Example:
        >>> 'TorchIO' in peer_summary()
        True
    """
    import torchio

    parts = [f'TorchIO {torchio.__version__}']
    for library in peers.LIBRARIES:
        found = peers.version(library)
        parts.append(f'{library} {found}' if found else f'{library} not installed')
    return ', '.join(parts)


def parse_arguments(argv: Sequence[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--quick', action='store_true', help='small sizes, few repeats')
    parser.add_argument(
        '--sections',
        default=','.join(SECTIONS),
        help=f'comma-separated subset of {",".join(SECTIONS)}',
    )
    parser.add_argument('--repeats', type=int, help='timed calls per operator')
    parser.add_argument('--pipeline-repeats', type=int, help='timed pipeline calls')
    parser.add_argument('--memory-jobs', type=int, help='memory subprocesses at a time')
    parser.add_argument('--json', help='also write the raw numbers to this file')
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    sections = tuple(s.strip() for s in args.sections.split(',') if s.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(
            f'unknown section {unknown[0]!r}; choose from {", ".join(SECTIONS)}'
        )
    overrides: dict[str, Any] = {'sections': sections}
    if args.repeats:
        overrides['repeats'] = args.repeats
    if args.pipeline_repeats:
        overrides['pipeline_repeats'] = args.pipeline_repeats
    if args.memory_jobs:
        overrides['memory_jobs'] = args.memory_jobs
    return replace(config, **overrides), args


def main(argv: Sequence[str] | None = None) -> None:
    config, args = parse_arguments(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    command = ' '.join(['python', 'benchmarks/run.py', *(argv or sys.argv[1:])])
    load_start = load_average()
    image, label = make_patch(config.shape)
    shape_text = ' x '.join(map(str, config.shape))
    raw: dict[str, Any] = {'config': config.__dict__, 'command': command}

    operators: list[OperatorResult] = []
    floors: dict[str, Timing] = {}
    pipelines: list[PipelineResult] = []
    queue_results: list[queue_throughput.QueueResult] = []
    memory_results: dict[str, memory.MemoryResult] = {}
    elastic_stats: list[elastic_equivalence.Statistic] = []

    if 'operators' in config.sections:
        for case in operator_cases():
            _progress(f'operator: {case.name}')
            operators.append(measure_operator(case, image, config))
        floors = measure_floors(image, label, config)
    if 'pipelines' in config.sections:
        for case in PIPELINES:
            _progress(f'pipeline: {case.name}')
            pipelines.append(measure_pipeline(case, image, label, config))
    if 'queue' in config.sections:
        queue_results = measure_queue(config)
    if 'memory' in config.sections:
        memory_results = measure_memory(config)
    if 'elastic' in config.sections:
        _progress('elastic equivalence')
        elastic_stats = elastic_equivalence.compare(
            config.elastic_size, 80.0, config.elastic_sigma, config.elastic_seeds
        )
    load_end = load_average()
    minutes = (time.perf_counter() - started) / 60

    out = []
    out.append('## torchio-ramp benchmarks\n')
    out.append(f'Command: `{command}`  ')
    out.append(f'Date: {datetime.datetime.now().isoformat(timespec="minutes")}  ')
    out.append(f'Code: {code_version()}  ')
    out.append(f'Machine: {machine_summary()}  ')
    out.append(
        f'Load average (1, 5, 15 min): {load_start} at the start,'
        f' {load_end} at the end; run time {minutes:.1f} min.  '
    )
    out.append(f'Peer libraries: {peer_summary()}  ')
    out.append(
        f'Input: 1 x {shape_text} float32 phantom CT patch in [0, 1], 1 mm voxels;'
        ' one torch thread unless a column says otherwise.\n'
    )
    if operators:
        out.append('### Operators\n')
        out.append(
            f'Median of N = {config.repeats} calls after {config.warmup} warm-up'
            f' calls (* = N = {config.slow_repeats}: calls over 0.25 s), ours /'
            ' TorchIO / plain torch round-robin in the same run. Parameters: the'
            ' middle of each training range; random axes and counts follow the'
            ' seed (the same seeds for our kernel and plain torch). "ours kernel":'
            ' the pure tensor function; "†": through a TorchIO transform on a'
            " `tio.Subject`: ours copies the subject's structure, not its voxels;"
            " TorchIO's built-ins deep-copy it (see Reference costs); both"
            ' include the [0, 1] check and the history; TorchIO /'
            ' ours compares the two transforms. "ours / plain": our kernel over'
            ' the plain-torch reference of the same math (flip has no kernel: it'
            " is TorchIO's Flip underneath)"
            ' (`benchmarks/references.py`; target <= 1.5); "max abs diff vs plain":'
            ' largest difference between their outputs over seeds 0-2. "new'
            ' buffers": tensors of at least 1/8 of the volume that one kernel call'
            ' allocates (count, total in volumes). "peak memory": peak resident'
            ' memory above the input on a 1 x'
            f' {" x ".join(map(str, config.memory_shape))} volume, in volumes'
            ' (target <= 3; see Memory).\n'
        )
        out.append(operators_table(operators, memory_results, config))
        out.append('\n### Peer transforms\n')
        out.append(
            'Our deterministic transform on a `tio.Subject` (the copy of the'
            " subject's structure, the [0, 1] check, the history included)"
            ' against the'
            ' same augmentation in TorchIO (also on a subject, deep copy'
            ' included), MONAI (array transforms on the tensor,'
            ' `set_track_meta(False)`) and batchgeneratorsv2 (on'
            " `{'image': tensor}`; in-place transforms get a fresh copy of the"
            ' patch before each call, outside the timed region), all in the same'
            ' round-robin as the operator table. "-": the library has no such'
            ' transform or is not installed (see Peer libraries above).\n'
        )
        out.append(peer_table(operators, config))
        out.append('\nPeer transforms used (1 mm voxels, so mm = voxels):\n')
        out.append(equivalents_table(operators))
        out.append('\n### Where the time goes (operators)\n')
        out.append(
            'Medians of the same round-robin. "shell": our transform minus our'
            ' kernel (subject copy, [0, 1] check, argument checks, history).'
            ' "random numbers": time inside random-number operators during the'
            ' kernel, measured with `harness.OperatorClock` (a dispatch-mode'
            ' timer around each torch operator) on separate calls of the same'
            ' round-robin; "other torch operators": kernel minus random numbers.\n'
        )
        out.append(breakdown_table(operators))
        out.append('\n### Reference costs\n')
        out.append(floors_table(floors))
    if pipelines:
        out.append('\n### Pipelines\n')
        out.append(
            f'Per 1 x {shape_text} patch with a uint8 label map, N ='
            f' {config.pipeline_repeats} calls, call i after torch.manual_seed(i)'
            ' (outside the timed region) for every column. TorchIO-built: the'
            " same sampling with TorchIO's"
            ' built-ins where they exist (our operators elsewhere), one deep copy'
            ' per call (`benchmarks/torchio_equivalents.py`); ours copies the'
            " subject's structure once and no voxels."
            f' {FLOOR}: `torch.randn(1, {", ".join(map(str, config.shape))})`,'
            ' timed in the same round-robin, the floor of any pipeline that'
            ' draws Gaussian noise for the patch. Ramp() applies the elastic'
            ' deformation with p = 0.15, so its mean and p90 include it more'
            ' than its median.\n'
        )
        out.append(pipelines_table(pipelines))
        out.append('\n### Where the time goes (pipelines)\n')
        out.append(
            'Per patch, medians over the same calls (same seeds) run under'
            ' `harness.OperatorClock`: time inside random-number operators,'
            ' inside the other torch operators, and the rest of the call'
            ' (Python: sampling, TorchIO subject handling and history). The'
            f' last column compares the random numbers with one {FLOOR} of the'
            ' patch in the same run.\n'
        )
        out.append(pipeline_breakdown_table(pipelines))
    if operators or pipelines:
        out.append('\n### Thread scaling\n')
        out.append(
            'torch.set_num_threads(1) vs (2), same calls and seeds, measured'
            ' after the one-thread runs. Two threads only help when the second'
            ' core is idle: when another process holds it, every parallel region'
            ' waits for a descheduled thread and small operators become several'
            ' times slower.\n'
        )
        out.append(threads_table(operators, pipelines))
    if queue_results:
        out.append('\n### tio.Queue throughput\n')
        out.append(
            f'Phantom CT volumes of {shape_text} (int16 HU + label), one'
            f' {shape_text} patch per volume (samples_per_volume = 1), so each'
            ' patch costs one CTNormalize + Ramp() in a subject-loading worker'
            f' (one torch thread each); {config.queue_patches} patches timed after'
            f' {config.queue_warmup}.\n'
        )
        out.append(queue_table(queue_results))
    if memory_results:
        out.append('\n### Memory\n')
        out.append(
            f'Peak resident memory above the input on a 1 x'
            f' {" x ".join(map(str, config.memory_shape))} float32 volume'
            ' (max RSS in a fresh subprocess minus the baseline after allocating'
            ' the input), one call; operators as kernels (flip as a transform);'
            ' pipelines through TorchIO with a uint8 label map, the worst of'
            f' {memory.PIPELINE_SEEDS} seeds, including the subject copy.\n'
        )
        out.append(memory_table(memory_results))
    if elastic_stats:
        out.append('\n### Elastic field vs the dense definition\n')
        out.append(
            f'alpha 80, sigma {config.elastic_sigma:g}, {config.elastic_size}^3,'
            f' {config.elastic_seeds} seeds (mean ± standard error over seeds);'
            ' dense: U(-1, 1) per voxel, scipy.ndimage.gaussian_filter, no'
            ' borders (`benchmarks/elastic_equivalence.py`).\n'
        )
        out.append(elastic_equivalence.table(elastic_stats))
    out.append('\n### Targets\n')
    out.append(targets_table(operators, pipelines, memory_results))
    print('\n'.join(out))

    if args.json:
        raw['operators'] = {
            r.case.name: {
                'parameters': r.case.parameters,
                'seconds': {k: list(v.seconds) for k, v in r.timings.items()},
                'two_threads_seconds': list(r.two_threads.seconds),
                'operator_seconds': r.clock.seconds if r.clock else None,
                'random_seconds': r.clock.random_seconds if r.clock else None,
                'max_difference': r.max_difference,
                'buffers': [[b.operator, str(b.dtype), b.nbytes] for b in r.buffers],
            }
            for r in operators
        }
        raw['floors'] = {k: list(v.seconds) for k, v in floors.items()}
        raw['pipelines'] = {
            r.case.name: {
                'ours': list(r.ours.seconds) if r.ours else None,
                'two_threads': list(r.two_threads.seconds) if r.two_threads else None,
                'torchio': list(r.torchio.seconds) if r.torchio else None,
                'floor': list(r.floor.seconds) if r.floor else None,
                'operator_seconds': r.clock.seconds if r.clock else None,
                'random_seconds': r.clock.random_seconds if r.clock else None,
            }
            for r in pipelines
        }
        raw['queue'] = [r.__dict__ for r in queue_results]
        raw['memory'] = {k: v.__dict__ for k, v in memory_results.items()}
        raw['elastic'] = [s.__dict__ for s in elastic_stats]
        raw['load_average'] = [load_start, load_end]
        with open(args.json, 'w') as stream:
            json.dump(raw, stream, indent=1, default=str)


if __name__ == '__main__':
    main()
