"""Cost of the CT-physics families per volume, and of the projector they use.

Each ``ct_physics`` family runs on a phantom CT in Hounsfield units (default
a clinical 512 x 512 x 64 volume of 0.7 mm pixels and 3 mm slices) at one
thread, the setting inside DataLoader workers; two of the paper's image-domain
families run on the same volume windowed to [0, 1] for scale. The projector
is matrix-free (its sparse blocks are built during each call and dropped), so
the first call of a family costs what a warm one does: both are printed. The
split says where a family's time goes: one forward projection on the
projection grid (at most 256 pixels a side), one filtered back-projection of
that sinogram onto the full grid, and one FBP of a full-detector noise
sinogram (what the noise families reconstruct); ``x FP+BP`` divides a warm
call by one forward projection plus one back-projection of the volume at the
full geometry. The load average is printed: on a shared machine timings are
only comparable within one run.

Usage:
    python benchmarks/ct_physics.py                         # 512 x 512 x 64
    python benchmarks/ct_physics.py --size 128 --slices 32 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from torchio_ramp.ct_physics import CT_PHYSICS_FAMILIES
from torchio_ramp.families import FAMILIES
from torchio_ramp.kernels.ct_geometry import SOFT_TISSUE_MTF50
from torchio_ramp.kernels.ct_geometry import simulation
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
    return first, statistics.median(warm) if warm else first


def projector_split(
    size: int, slices: int, spacing: float, repeats: int
) -> dict[str, float]:
    """Seconds of the projector's parts on ``slices`` random slices."""
    plan = simulation((size, size), (spacing, spacing))
    image = torch.rand(size, size, slices) * 0.02
    coarse = plan.coarsen(image)
    sinogram = plan.coarse.project_columns(coarse)
    noise = torch.randn(plan.fine.views, plan.fine.bins, slices)
    parts = {
        'forward projection (projection grid)': lambda _: plan.project(image),
        'FBP onto the full grid': lambda _: plan.reconstruct(sinogram.clone()),
        'noise FBP (full detector)': lambda _: plan.fine.fbp_columns(
            noise, mtf50=SOFT_TISSUE_MTF50
        ),
        'full forward projection': lambda _: plan.fine.project_columns(image),
        'full back-projection': lambda _: plan.fine.backproject_columns(noise),
    }
    return {name: _time(call, repeats)[1] for name, call in parts.items()}


def measure(
    size: int,
    repeats: int,
    slices: int | None = None,
    spacing: float = 0.7,
) -> list[tuple[str, ...]]:
    """Rows ``(family, domain, parameters, first s, warm s)`` at level 0.15."""
    slices = size if slices is None else slices
    subject = phantom_subject((size, size, slices), (spacing, spacing, 3.0), seed=0)
    hu = subject.ct.data.float()
    labels = subject['label'].data if 'label' in subject else None
    normalized = normalize_window(hu, -200.0, 300.0)
    rows = []
    for name in (*CT_PHYSICS_FAMILIES, *IMAGE_DOMAIN):
        operator = FAMILIES[name]
        arguments = operator.parameters_at(0.15)
        on_hu = operator.domain == 'hu'
        image = hu if on_hu else normalized
        extra = {}
        if on_hu:
            extra = {'spacing': subject.ct.spacing, 'affine': subject.ct.affine}
            extra['labels'] = labels

        def call(
            seed, operator=operator, image=image, extra=extra, arguments=arguments
        ):
            generator = torch.Generator().manual_seed(seed)
            return operator(image, generator=generator, **extra, **arguments)

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
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--slices', type=int, default=64)
    parser.add_argument('--spacing', type=float, default=0.7)
    parser.add_argument('--repeats', type=int, default=2)
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    size, slices, spacing = arguments.size, arguments.slices, arguments.spacing
    load = os.getloadavg()
    split = projector_split(size, slices, spacing, arguments.repeats)
    rows = measure(size, arguments.repeats, slices, spacing)
    full = split['full forward projection'] + split['full back-projection']
    print(
        f'{size} x {size} x {slices} volume, {spacing} mm pixels, 1 thread, level'
        f' 0.15, median of {arguments.repeats}; load average'
        f' {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (before the run)'
    )
    print()
    print('| projector part | warm call (s) |')
    print('|---|---|')
    for name, seconds in split.items():
        print(f'| {name} | {seconds:.2f} |')
    print()
    print('| family | domain | parameters | first call (s) | warm call (s) | x FP+BP |')
    print('|---|---|---|---|---|---|')
    for row in rows:
        print('| ' + ' | '.join(row) + f' | {float(row[4]) / full:.2f} |')
    print(f'\nload average after the run: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    main()
