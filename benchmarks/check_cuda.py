"""One short GPU check: CPU-vs-CUDA agreement and the batched path's throughput.

Runs in a few minutes on one GPU:

1. Kernel agreement: every kernel (the registered corruption families, the
   intensity operations and elastic) applied with the same CPU-seeded
   generator to the same image on the CPU and on the device. The kernels draw
   their random numbers on the generator's device, so the draws are identical
   and the results must agree up to float32 rounding; the largest absolute
   difference is printed and fails above :data:`TOLERANCE`. The default check
   volume (``1 x 144^3``) spans several elastic slabs, the last one partial
   (:data:`torchio_ramp.kernels.elastic.SLAB_VOXELS`), so elastic's slab by
   slab upsampling of the coarse grid is exercised; the script prints the
   number of slabs and warns when there is only one.
2. Pipeline agreement: ``BatchRampCorrupt()`` (CPU generators) on a batch on
   the device against the same module on the CPU, same seeds: whole plans
   (several families in sequence, uncorrupted samples copied), not only
   single kernels. With ``generator_device='input'`` the random stream differs
   by design, so only its range is checked.
3. Throughput: ``BatchRampCorrupt`` on a ``2 x 1 x 128^3`` batch with its
   random numbers drawn on the CPU (the default, identical to the per-subject
   transforms, bound by the CPU generator) and on the device
   (``generator_device='input'``). Call ``i`` uses seeds ``(2 i, 2 i + 1)``, so
   the calls run different plans (about 15% of samples are not corrupted, and
   plans differ in cost); the script reports the mean (what throughput
   depends on), the median and the 95th percentile, and says which variant
   meets the target (:data:`TARGET_MS` for the mean; an H100-class device).
   Each kernel on the same batch is timed for the breakdown.

Without CUDA it prints why and exits 0; without ``torchio_ramp.batch`` it
skips what needs it and says so. Exit status 1 if any kernel or the pipeline
disagrees. ``--device cpu`` runs the same code on the CPU only (agreement is
then trivial), to test the script on a machine without a GPU.

Usage::

    python benchmarks/check_cuda.py
    python benchmarks/check_cuda.py --size 64 --repeats 10 --device cpu
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from cases import make_patch
from cases import operator_cases
from cases import optional_class

from torchio_ramp.kernels import elastic

TOLERANCE = 1e-4
"""Largest CPU-vs-device difference accepted (intensities are in [0, 1]).

Interpolation and filtering round differently on the two devices; the random
numbers are the same (drawn on the generator's device). A difference above the
tolerance is reported, not hidden."""

PIPELINE_TOLERANCE = 1e-3
"""Largest CPU-vs-device difference accepted for a whole ``BatchRampCorrupt``
plan: up to four kernels in sequence, each rounding differently."""

TARGET_MS = 5.0
"""Target mean time of ``BatchRampCorrupt`` on ``2 x 1 x 128^3`` (H100 class)."""

PERCENTILE = 0.95

BATCH_VARIANTS = (
    ('BatchRampCorrupt()', {}),
    ("BatchRampCorrupt(generator_device='input')", {'generator_device': 'input'}),
)
"""Configurations of ``BatchRampCorrupt`` timed on the device (label, options)."""


@dataclass(frozen=True)
class Summary:
    """Milliseconds of repeated calls: mean, median and a high percentile.

    Example:
        >>> s = Summary.of([1.0, 2.0, 3.0, 10.0])
        >>> s.mean, s.median, s.calls
        (4.0, 2.5, 4)
        >>> round(s.high, 2)
        8.95
    """

    mean: float
    median: float
    high: float
    calls: int

    @classmethod
    def of(cls, milliseconds: Sequence[float]) -> Summary:
        if not milliseconds:
            raise ValueError('no timings to summarise')
        return cls(
            mean=statistics.fmean(milliseconds),
            median=statistics.median(milliseconds),
            high=quantile(milliseconds, PERCENTILE),
            calls=len(milliseconds),
        )

    def cells(self) -> str:
        return f'{self.mean:.2f} | {self.median:.2f} | {self.high:.2f}'


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between order statistics.

    Example:
        >>> quantile([0.0, 10.0], 0.95)
        9.5
    """
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def elastic_slabs(shape: Sequence[int]) -> int:
    """How many slabs :func:`torchio_ramp.kernels.elastic.sample` uses for ``shape``.

    Example:
        >>> elastic_slabs((128, 128, 128)), elastic_slabs((144, 144, 144))
        (4, 6)
        >>> elastic_slabs((8, 8, 8))
        1
    """
    depth, height, width = shape[-3:]
    rows = max(1, elastic.SLAB_VOXELS // (height * width))
    return -(-depth // rows)


@dataclass(frozen=True)
class Agreement:
    """How far two results are apart."""

    max_difference: float
    voxels_off: int
    tolerance: float

    @classmethod
    def between(
        cls,
        expected: torch.Tensor,
        actual: torch.Tensor,
        tolerance: float = TOLERANCE,
    ) -> Agreement:
        """Compare on the CPU; shapes must match. ``voxels_off``: above 1e-3.

        Example:
            >>> a = torch.zeros(4)
            >>> Agreement.between(a, a + torch.tensor([0, 0, 0, 0.01])).agrees
            False
        """
        if expected.shape != actual.shape:
            message = f'shapes differ: {tuple(expected.shape)} vs {tuple(actual.shape)}'
            raise ValueError(message)
        difference = (expected.cpu().float() - actual.cpu().float()).abs()
        if not bool(torch.isfinite(difference).all()):
            return cls(math.inf, int((~torch.isfinite(difference)).sum()), tolerance)
        worst = float(difference.max()) if difference.numel() else 0.0
        return cls(worst, int((difference > 1e-3).sum()), tolerance)

    @property
    def agrees(self) -> bool:
        return self.max_difference <= self.tolerance

    def merge(self, other: Agreement) -> Agreement:
        return Agreement(
            max(self.max_difference, other.max_difference),
            self.voxels_off + other.voxels_off,
            max(self.tolerance, other.tolerance),
        )


def _kernel_cases():
    return [case for case in operator_cases() if case.kernel is not None]


def check_agreement(device: str, size: int, seeds: int = 2) -> bool:
    """Print CPU-vs-``device`` differences per kernel; ``True`` if all agree."""
    image, _ = make_patch((size, size, size))
    slabs = elastic_slabs(image.shape)
    print(
        f'Kernels, CPU vs {device}, 1 x {size}^3, {seeds} seeds (elastic samples'
        f' in {slabs} slab{"s" if slabs > 1 else ""}):\n'
    )
    if slabs == 1:
        print(
            f'WARNING: {size}^3 fits in one elastic slab; use --check-size 144'
            ' or more to exercise the slab path.\n'
        )
    print('| operator | max abs diff | voxels off by > 1e-3 | agrees |')
    print('|:---|---:|---:|:---|')
    all_agree = True
    for case in _kernel_cases():
        result = None
        for seed in range(seeds):
            on_cpu = case.run_kernel(image, seed)
            on_device = case.run_kernel(image.to(device), seed)
            found = Agreement.between(on_cpu, on_device)
            result = found if result is None else result.merge(found)
        all_agree &= result.agrees
        verdict = 'yes' if result.agrees else 'NO'
        print(
            f'| {case.name} | {result.max_difference:.1e} | {result.voxels_off} |'
            f' {verdict} |'
        )
    return all_agree


def check_pipeline_agreement(
    device: str,
    size: int,
    batch: int = 2,
    calls: int = 4,
) -> bool | None:
    """``BatchRampCorrupt()`` on ``device`` vs on the CPU, same seeds.

    Returns ``None`` when ``torchio_ramp.batch`` is not available.
    """
    module_class = optional_class('torchio_ramp.batch', 'BatchRampCorrupt')
    if module_class is None:
        print('\nSKIPPED pipeline agreement: torchio_ramp.batch is not available.')
        return None
    image, _ = make_patch((size, size, size))
    x = image.expand(batch, *image.shape).contiguous()
    print(
        f'\nBatchRampCorrupt(), CPU vs {device}, {batch} x 1 x {size}^3,'
        f' {calls} calls (seeds 0-{batch * calls - 1}):\n'
    )
    print('| seeds | families per sample | max abs diff | voxels off by > 1e-3 |')
    print('|:---|:---|---:|---:|')
    module = module_class()
    all_agree = True
    for call in range(calls):
        seeds = list(range(call * batch, (call + 1) * batch))
        plans = module.plans(seeds)
        on_cpu = module(x, seeds=seeds)
        on_device = module(x.to(device), seeds=seeds)
        result = Agreement.between(on_cpu, on_device, PIPELINE_TOLERANCE)
        all_agree &= result.agrees
        names = '; '.join(
            ', '.join(family for family, _, _ in plan) or '(none)' for plan in plans
        )
        print(
            f'| {seeds} | {names} | {result.max_difference:.1e} | {result.voxels_off} |'
        )
    variant = module_class(generator_device='input')
    out = variant(x.to(device), seeds=list(range(batch)))
    in_range = bool(((out >= 0) & (out <= 1)).all())
    print(
        "\ngenerator_device='input' (a different stream by design): output in"
        f' [0, 1]: {"yes" if in_range else "NO"}.'
    )
    verdict = 'agrees' if all_agree else 'DISAGREES'
    print(f'Pipeline {verdict} within {PIPELINE_TOLERANCE:g}.')
    return all_agree and in_range


def time_calls(
    function: Callable[[int], object],
    device: str,
    repeats: int,
    warmup: int = 5,
) -> list[float]:
    """Milliseconds of ``function(i)`` for ``i`` in ``range(repeats)``.

    The device is synchronised before and after each call, so each time is
    the call's complete work. Warm-up calls use indices ``-1, -2, ...``.
    """

    def synchronize() -> None:
        if device.startswith('cuda'):
            torch.cuda.synchronize()

    for index in range(warmup):
        function(-1 - index)
    times = []
    for index in range(repeats):
        synchronize()
        start = time.perf_counter()
        function(index)
        synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return times


def batch_seeds(index: int, batch: int) -> list[int]:
    """Seeds of call ``index`` (warm-up calls have negative indices).

    Example:
        >>> batch_seeds(0, 2), batch_seeds(3, 2), batch_seeds(-1, 2)
        ([0, 1], [6, 7], [1000000, 1000001])
    """
    base = index * batch if index >= 0 else 1_000_000 + (-1 - index) * batch
    return list(range(base, base + batch))


def fastest_meeting_target(
    results: Sequence[tuple[str, Summary]],
    target: float = TARGET_MS,
) -> tuple[str, Summary] | None:
    """The variant with the lowest mean if that mean meets ``target``.

    Example:
        >>> a, b = Summary(6.0, 5.0, 9.0, 50), Summary(3.0, 2.9, 4.0, 50)
        >>> fastest_meeting_target([('cpu', a), ('device', b)])[0]
        'device'
        >>> fastest_meeting_target([('cpu', a)]) is None
        True
    """
    if not results:
        return None
    label, summary = min(results, key=lambda item: item[1].mean)
    return (label, summary) if summary.mean <= target else None


def time_batched(device: str, size: int, batch: int, repeats: int) -> bool | None:
    """Time every kernel and ``BatchRampCorrupt`` on a batch on ``device``.

    Returns whether a ``BatchRampCorrupt`` variant meets :data:`TARGET_MS` on
    its mean (``None`` if the module is not available).
    """
    image, _ = make_patch((size, size, size))
    x = image.expand(batch, *image.shape).contiguous().to(device)
    high = f'p{round(100 * PERCENTILE)}'
    print(f'\n{batch} x 1 x {size}^3 on {device}, {repeats} calls each (ms):\n')
    print(
        f'| what | CPU generators: mean | median | {high} |'
        f' device generators: mean | median | {high} |'
    )
    print('|:---|---:|---:|---:|---:|---:|---:|')
    for case in _kernel_cases():
        parameters = {
            key: [value] * batch if isinstance(value, float) else value
            for key, value in case.parameters.items()
        }
        cells = []
        for generator_device in ('cpu', device):

            def run(
                index: int,
                kernel=case.kernel,
                parameters=parameters,
                generator_device=generator_device,
            ) -> object:
                generators = [
                    torch.Generator(generator_device).manual_seed(seed)
                    for seed in batch_seeds(index, batch)
                ]
                return kernel(x, generator=generators, **parameters)

            cells.append(Summary.of(time_calls(run, device, repeats)).cells())
        print(f'| {case.name} (kernel) | {cells[0]} | {cells[1]} |')
    module_class = optional_class('torchio_ramp.batch', 'BatchRampCorrupt')
    if module_class is None:
        print('\nSKIPPED BatchRampCorrupt: torchio_ramp.batch is not available.')
        return None
    results = []
    for label, options in BATCH_VARIANTS:
        module = module_class(**options).to(device)

        def run_module(index: int, module=module) -> object:
            return module(x, seeds=batch_seeds(index, batch))

        summary = Summary.of(time_calls(run_module, device, repeats))
        results.append((label, summary))
        print(f'| {label} | {summary.cells()} | - | - | - |')
    timed_seeds = [seed for i in range(repeats) for seed in batch_seeds(i, batch)]
    plans = module_class().plans(timed_seeds)
    idle = sum(not plan for plan in plans) / len(plans)
    name = torch.cuda.get_device_name() if device.startswith('cuda') else device
    print(
        f'\n{100 * idle:.0f}% of the {batch * repeats} timed samples drew no'
        ' corruption (expected about 15%).'
    )
    met = fastest_meeting_target(results)
    for label, summary in results:
        verdict = 'meets' if summary.mean <= TARGET_MS else 'MISSES'
        print(
            f'{label}: mean {summary.mean:.2f} ms, median {summary.median:.2f},'
            f' {high} {summary.high:.2f}: {verdict} the {TARGET_MS:g} ms target'
            f' (mean) on {name}.'
        )
    if met is None:
        print(f'No generator variant meets the {TARGET_MS:g} ms target on {name}.')
    else:
        print(f'Target met by: {met[0]} (mean {met[1].mean:.2f} ms).')
    return met is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=int, default=128, help='timing volume edge')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument(
        '--check-size',
        type=int,
        default=144,
        help='agreement volume edge (144: several elastic slabs, the last partial)',
    )
    parser.add_argument('--device', default='cuda')
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print('SKIPPED: CUDA is not available on this machine; nothing to check.')
        return 0
    start = time.perf_counter()
    if args.device.startswith('cuda'):
        print(f'{torch.cuda.get_device_name()}, torch {torch.__version__}\n')
    kernels_agree = check_agreement(args.device, args.check_size)
    pipeline_agrees = check_pipeline_agreement(args.device, args.check_size, args.batch)
    time_batched(args.device, args.size, args.batch, args.repeats)
    print(f'\nTotal {time.perf_counter() - start:.0f} s.')
    if not kernels_agree or pipeline_agrees is False:
        print('FAILED: results differ between the CPU and the device.')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
