"""``tio.Queue`` throughput with ``Ramp()``, in patches per second.

Phantom CT volumes (``torchio_ramp.phantoms.phantom_subject``, int16 HU plus the
five-class label) go through a ``tio.SubjectsDataset`` whose transform is
``CTNormalize()`` followed by ``Ramp()``; a ``tio.Queue`` with a
``UniformSampler`` draws patches. TorchIO runs the transform on whole volumes
in the queue's subject-loading workers (each DataLoader worker uses one torch
thread). By default the volumes are exactly one patch (128^3) and
``samples_per_volume=1``, so every patch costs one ``Ramp()`` on a 128^3
volume: the number to compare with the training step. The same queue with
``CTNormalize()`` alone measures the loading overhead.

The first patches (worker start-up, queue filling) are not timed.

Usage::

    python benchmarks/queue_throughput.py              # 1 and 2 workers
    python benchmarks/queue_throughput.py --patches 20 --volume 96 96 96
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchio as tio

from torchio_ramp import CTNormalize
from torchio_ramp import Ramp
from torchio_ramp.phantoms import phantom_subject

UNIQUE_PHANTOMS = 4
"""Distinct phantoms; the dataset cycles through them (each item is a deep copy)."""


@dataclass(frozen=True)
class QueueResult:
    """Patches per second of one queue configuration."""

    augmentation: str
    workers: int
    patches: int
    seconds: float

    @property
    def patches_per_second(self) -> float:
        return self.patches / self.seconds


def make_dataset(
    volume: Sequence[int],
    length: int,
    augment: bool,
) -> tio.SubjectsDataset:
    """``length`` phantom subjects (cycling :data:`UNIQUE_PHANTOMS`), 1 mm voxels."""
    phantoms = [
        phantom_subject(tuple(volume), spacing=(1.0, 1.0, 1.0), seed=seed)
        for seed in range(UNIQUE_PHANTOMS)
    ]
    subjects = [phantoms[i % UNIQUE_PHANTOMS] for i in range(length)]
    steps: list[tio.Transform] = [CTNormalize()]
    if augment:
        steps.append(Ramp())
    return tio.SubjectsDataset(subjects, transform=tio.Compose(steps))


def measure_queue(
    workers: int,
    augment: bool = True,
    patches: int = 40,
    warmup: int = 4,
    volume: Sequence[int] = (128, 128, 128),
    patch: Sequence[int] = (128, 128, 128),
    samples_per_volume: int = 1,
) -> QueueResult:
    """Time ``patches`` patches out of a ``tio.Queue`` after ``warmup`` patches.

    Example:
        >>> result = measure_queue(1, patches=2, warmup=1, volume=(16, 16, 16),
        ...                        patch=(16, 16, 16))
        >>> result.patches, result.workers
        (2, 1)
    """
    total = warmup + patches
    volumes = -(-total // samples_per_volume)
    torch.manual_seed(0)
    queue = tio.Queue(
        make_dataset(volume, volumes, augment),
        # One volume's patches at a time: every timed patch waits for its
        # volume's transform (the workers prefetch the next volumes).
        max_length=samples_per_volume,
        samples_per_volume=samples_per_volume,
        sampler=tio.UniformSampler(tuple(patch)),
        num_workers=workers,
        shuffle_subjects=False,
        shuffle_patches=False,
    )
    iterator = iter(queue)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(patches):
        next(iterator)
    seconds = time.perf_counter() - start
    name = 'CTNormalize + Ramp()' if augment else 'CTNormalize only'
    return QueueResult(name, workers, patches, seconds)


def main(argv: Sequence[str] | None = None) -> None:
    from harness import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--patches', type=int, default=40)
    parser.add_argument('--warmup', type=int, default=4)
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--volume', type=int, nargs=3, default=(128, 128, 128))
    parser.add_argument('--patch', type=int, nargs=3, default=(128, 128, 128))
    parser.add_argument('--samples-per-volume', type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for workers in args.workers:
        cells = [str(workers)]
        for augment in (False, True):
            result = measure_queue(
                workers,
                augment,
                patches=args.patches,
                warmup=args.warmup,
                volume=args.volume,
                patch=args.patch,
                samples_per_volume=args.samples_per_volume,
            )
            cells.append(f'{result.patches_per_second:.1f}')
        rows.append(cells)
    header = ['workers', 'CTNormalize only (patches/s)', 'CTNormalize + Ramp()']
    print(markdown_table(header, rows))


if __name__ == '__main__':
    main()
