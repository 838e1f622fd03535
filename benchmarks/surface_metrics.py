"""NSD and HD95 of a five-class CT label map: torchio-ramp against MONAI.

The reference is a phantom CT's label map (``torchio_ramp.phantoms``, liver,
spleen, kidneys, heart and colon; default 256 x 256 x 160 voxels of 0.8 x 0.8 x
3 mm); the prediction is that map moved by one or two voxels along each axis
with the liver eroded and a 24 x 24 x 24 mm false-positive liver island far
from the liver. Timed, round-robin in the same process (one call of each in
turn, so a burst of load slows both alike), on the CPU at one thread:

* ``torchio-ramp``: :func:`torchio_ramp.segmentation_metrics.surface_scores`
  (NSD at 3 mm and HD95 of every class in one call, from label maps);
* ``MONAI``: ``compute_surface_dice`` (3 mm) then
  ``compute_hausdorff_distance(percentile=95)``, the two calls a MONAI user
  makes for the same two numbers, on one-hot tensors made outside the timing;
* ``false-positive components``: :func:`false_positive_components` (MONAI has
  no equivalent), for the total per-volume cost.

The report gives the median of each, the ratio to MONAI within the run, the
load average at the start and the end (the machine may be shared: compare
ratios, not seconds, across runs) and the largest difference of the values
from MONAI's over the classes (MONAI computes in float32).

Usage::

    python benchmarks/surface_metrics.py                   # 256 x 256 x 160, 3 rounds
    python benchmarks/surface_metrics.py --shape 64 64 40 --rounds 1
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch

from torchio_ramp.labels import CLASS_NAMES
from torchio_ramp.phantoms import make_phantom
from torchio_ramp.segmentation_metrics import false_positive_components
from torchio_ramp.segmentation_metrics import surface_scores

TOLERANCE_MM = 3.0


def shifted(labels, offsets):
    """``labels`` moved by whole voxels, background coming in at the edges."""
    result = np.zeros_like(labels)
    source, target = [], []
    for k, n in zip(offsets, labels.shape, strict=True):
        source.append(slice(max(0, -k), n - max(0, k)))
        target.append(slice(max(0, k), n - max(0, -k)))
    result[tuple(target)] = labels[tuple(source)]
    return result


def label_maps(shape, spacing, seed=0):
    """The phantom's label map and a shifted, eroded prediction with an island."""
    reference = make_phantom(tuple(shape), tuple(spacing), seed, noise_std=0).label()
    prediction = shifted(reference, (2, 1, 1))
    liver = prediction == 1
    interior = liver.copy()
    for axis in range(3):  # erode the liver by one voxel (face neighbours)
        interior &= np.roll(liver, 1, axis) & np.roll(liver, -1, axis)
    prediction[liver & ~interior] = 0
    # a liver island (24 mm, or a sixth of a small image) in the air at a
    # corner of the slab
    size = [
        max(1, min(round(24 / s), n // 6)) for s, n in zip(spacing, shape, strict=True)
    ]
    island = (slice(1, 1 + size[0]), slice(1, 1 + size[1]))
    middle = shape[2] // 2
    island += (slice(middle, middle + size[2]),)
    prediction[island] = np.where(reference[island] == 0, 1, prediction[island])
    return torch.from_numpy(prediction), torch.from_numpy(reference)


def monai_scores(y_pred, y, spacing):
    from monai.metrics import compute_hausdorff_distance
    from monai.metrics import compute_surface_dice

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        nsd = compute_surface_dice(
            y_pred,
            y,
            [TOLERANCE_MM] * y.shape[1],
            include_background=True,
            spacing=spacing,
        )
        hd95 = compute_hausdorff_distance(
            y_pred, y, include_background=True, percentile=95, spacing=spacing
        )
    return nsd[0].double().numpy(), hd95[0].double().numpy()


def one_hot(labels, classes):
    hot = torch.nn.functional.one_hot(labels.long(), max(classes) + 1)
    return hot.movedim(-1, 0)[list(classes)][None].float()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shape', type=int, nargs=3, default=(256, 256, 160))
    parser.add_argument('--spacing', type=float, nargs=3, default=(0.8, 0.8, 3.0))
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    started = time.perf_counter()
    prediction, reference = label_maps(args.shape, args.spacing)
    classes = sorted(CLASS_NAMES)
    spacing = tuple(args.spacing)
    try:
        import monai  # noqa: F401

        y_pred, y = one_hot(prediction, classes), one_hot(reference, classes)
    except ImportError:
        y_pred = y = None

    calls = {
        'torchio-ramp NSD + HD95': lambda: surface_scores(
            prediction, reference, classes, spacing, TOLERANCE_MM
        ),
        'false-positive components': lambda: false_positive_components(
            prediction, reference, classes, spacing
        ),
    }
    if y is not None:
        calls['MONAI NSD + HD95'] = lambda: monai_scores(y_pred, y, spacing)
    seconds = {name: [] for name in calls}
    results = {}
    for _ in range(max(1, args.rounds)):
        for name, call in calls.items():
            tick = time.perf_counter()
            results[name] = call()
            seconds[name].append(time.perf_counter() - tick)
    load_end = os.getloadavg()

    command = ' '.join(['python', 'benchmarks/surface_metrics.py', *sys.argv[1:]])
    print('## NSD and HD95 against MONAI\n')
    print(f'Command: `{command}`  ')
    now = datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')
    print(f'Date: {now}; machine: {platform.machine()}, {os.cpu_count()} cores  ')
    print(
        f'Load average: {", ".join(f"{v:.2f}" for v in load_start)} at the start,'
        f' {", ".join(f"{v:.2f}" for v in load_end)} at the end  '
    )
    shape = ' x '.join(str(n) for n in args.shape)
    voxel = ' x '.join(f'{s:g}' for s in spacing)
    total = time.perf_counter() - started
    print(
        f'Volume: {shape} voxels of {voxel} mm, classes {classes};'
        f' {args.rounds} round(s), one thread; total {total:.0f} s\n'
    )
    print('### Time per volume\n')
    print('| implementation | median s | x MONAI |')
    print('| --- | --- | --- |')
    monai_median = (
        statistics.median(seconds['MONAI NSD + HD95']) if y is not None else math.nan
    )
    for name, values in seconds.items():
        median = statistics.median(values)
        ratio = median / monai_median if y is not None else math.nan
        print(f'| {name} | {median:.3f} | {ratio:.2f} |')
    print('\n### Values\n')
    ours = results['torchio-ramp NSD + HD95']
    components = results['false-positive components']
    print(
        '| class | NSD | HD95 mm | FP components | FP mL | MONAI NSD | MONAI HD95 mm |'
    )
    print('| --- | --- | --- | --- | --- | --- | --- |')
    monai_nsd, monai_hd95 = results.get('MONAI NSD + HD95', (None, None))
    for i, label in enumerate(classes):
        reference_nsd = '-' if monai_nsd is None else f'{monai_nsd[i]:.6f}'
        reference_hd95 = '-' if monai_hd95 is None else f'{monai_hd95[i]:.6f}'
        print(
            f'| {CLASS_NAMES[label]} | {ours.nsd[i]:.6f} | {ours.hd95[i]:.6f}'
            f' | {components.count[i]} | {components.volume_ml[i]:.3f}'
            f' | {reference_nsd} | {reference_hd95} |'
        )
    if monai_nsd is not None:
        nsd_difference = float(np.nanmax(np.abs(ours.nsd - monai_nsd)))
        hd95_difference = float(np.nanmax(np.abs(ours.hd95 - monai_hd95)))
        print(
            f'\nLargest difference from MONAI: NSD {nsd_difference:.2e},'
            f' HD95 {hd95_difference:.2e} mm'
        )
    else:
        print('\nMONAI: not installed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
