"""Cost of the CT-physics families per volume, beside image-domain families.

Each ``ct_physics`` family runs on a phantom CT in Hounsfield units (default
128^3 voxels of 1.5 mm: a 192 mm field of view) at one thread, the setting
inside DataLoader workers; two of the paper's image-domain families run on the
same volume windowed to [0, 1] for comparison. The first call of a family on a
new geometry also builds the projector's sparse matrices (cached afterwards):
it is reported separately from the median of the warm calls.

Usage:
    python benchmarks/ct_physics.py                  # 128^3, 3 warm calls
    python benchmarks/ct_physics.py --size 64 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from torchio_ramp.ct_physics import CT_PHYSICS_FAMILIES
from torchio_ramp.families import FAMILIES
from torchio_ramp.kernels import projector
from torchio_ramp.phantoms import phantom_subject
from torchio_ramp.transforms.normalization import normalize_window

IMAGE_DOMAIN = ('gaussian_noise', 'blur')
"""Paper families timed on the same volume, for scale."""


def _time(call, repeats: int) -> tuple[float, float]:
    """Seconds of the first call and the median of ``repeats`` more."""
    start = time.perf_counter()
    call(0)
    first = time.perf_counter() - start
    warm = []
    for seed in range(1, repeats + 1):
        start = time.perf_counter()
        call(seed)
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm)


def measure(size: int, repeats: int, spacing: float = 1.5) -> list[tuple[str, ...]]:
    """Rows ``(family, domain, parameters, first s, warm s)`` at level 0.15."""
    subject = phantom_subject((size, size, size), (spacing,) * 3, seed=0)
    hu = subject.ct.data.float()
    normalized = normalize_window(hu, -200.0, 300.0)
    rows = []
    for name in (*CT_PHYSICS_FAMILIES, *IMAGE_DOMAIN):
        operator = FAMILIES[name]
        arguments = operator.parameters_at(0.15)
        on_hu = operator.domain == 'hu'
        image = hu if on_hu else normalized
        extra = {'spacing': subject.ct.spacing} if on_hu else {}

        def call(
            seed, operator=operator, image=image, extra=extra, arguments=arguments
        ):
            generator = torch.Generator().manual_seed(seed)
            return operator(image, generator=generator, **extra, **arguments)

        projector._projection_blocks.cache_clear()
        projector._backprojection_blocks.cache_clear()
        first, warm = _time(call, repeats)
        shown = ', '.join(
            f'{k}={v:.3g}'
            for k, v in arguments.items()
            if k in operator.parameter_names
        )
        rows.append((name, operator.domain, shown, f'{first:.2f}', f'{warm:.2f}'))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--repeats', type=int, default=3)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    rows = measure(arguments.size, arguments.repeats)
    size = arguments.size
    print(f'{size}^3 volume, 1 thread, level 0.15, median of {arguments.repeats}')
    print()
    print('| family | domain | parameters | first call (s) | warm call (s) |')
    print('|---|---|---|---|---|')
    for row in rows:
        print('| ' + ' | '.join(row) + ' |')


if __name__ == '__main__':
    main()
