#!/usr/bin/env python
"""Your first real CTs: prepare a handful of scans and check what you have.

    python examples/first_real_ct.py SRC              # SRC: TotalSegmentator layout
    python examples/first_real_ct.py SRC --out first-real-ct

SRC holds a few scans in the TotalSegmentator v2 layout (``<id>/ct.nii.gz``,
``<id>/segmentations/<structure>.nii.gz`` and ``meta.csv``): a handful of
subjects of the release, or your own scans and masks written that way. Three
steps, each the in-process equivalent of the command it prints:

1. ``ramp-prep totalseg SRC OUT/prepared --release-split``: the five-class
   dataset, keeping the split the release gives in ``meta.csv``. A cohort
   this small leaves a split empty; ramp-prep says which, what it is needed
   for, and the ``ramp-prep split`` command that fills it.
2. Every prepared file is read back through ``load_split`` (checked against
   the SHA-256 of ``manifest.csv``), and each subject is described: split,
   size, voxel spacing, HU range, and the voxels of each organ (an organ
   outside the field of view has none).
3. What the split allows: training needs a train and a val subject,
   ``ramp-stress run`` a test subject; the commands for each.

Rerunning skips what is done. See docs/first-real-ct.md.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import click
import torch

from ramp_prep.cli import main as ramp_prep
from ramp_prep.splits import empty_split_warnings
from torchio_ramp.datasets import load_split
from torchio_ramp.datasets import read_dataset_info
from torchio_ramp.datasets import read_splits
from torchio_ramp.labels import CLASS_NAMES

SPLITS = ('train', 'val', 'test')


def command(program: str, args: list[str]) -> str:
    return ' '.join([program, *(shlex.quote(str(a)) for a in args)])


def step(number: int, title: str, line: str | None = None) -> None:
    click.secho(f'\n[{number}/3] {title}', bold=True)
    if line:
        click.echo(f'    $ {line}')


def describe(prepared: Path) -> list[str]:
    """One line per prepared subject, read back and verified."""
    annotated = read_dataset_info(prepared)['annotated_classes']
    splits = read_splits(prepared)
    lines = []
    for name in SPLITS:
        if not splits[name]:
            continue
        for subject in load_split(prepared, name):  # verified against the manifest
            ct, label = subject['ct'], subject['label'].data
            counts = torch.bincount(label.flatten().long(), minlength=6)
            organs = ', '.join(
                f'{CLASS_NAMES[c]} {int(counts[c])}' for c in annotated if counts[c]
            )
            absent = [CLASS_NAMES[c] for c in annotated if not counts[c]]
            spacing = 'x'.join(f'{s:g}' for s in ct.spacing)
            lines.append(
                f'{subject["subject_id"]} ({name}): '
                + 'x'.join(str(n) for n in ct.spatial_shape)
                + f' voxels of {spacing} mm, HU {int(ct.data.min())} to'
                f' {int(ct.data.max())}; organ voxels: {organs}'
                + (f'; none of: {", ".join(absent)}' if absent else '')
            )
    return lines


def next_steps(prepared: Path) -> list[str]:
    """What the split allows now, as commands."""
    splits = read_splits(prepared)
    root = shlex.quote(str(prepared))
    if splits['train'] and splits['val']:
        train = f'ramp-train --data {root} --strategy ramp --out runs/ramp'
    else:
        train = 'not yet: it needs a train and a val subject'
        if empty_split_warnings(splits, prepared):
            train += ' (the WARNING above gives the ramp-prep split command)'
    if splits['test']:
        stress = f'ramp-stress run --model MODEL.pt2 --data {root} --out results/MODEL'
    else:
        stress = 'not yet: it needs a test subject'
    return [f'Train: {train}', f'Stress-test a trained model: {stress}']


def run(src: Path, out: Path) -> float:
    """The three steps; returns the seconds they took."""
    started = time.perf_counter()
    prepared = out / 'prepared'
    args = ['totalseg', str(src), str(prepared), '--release-split']
    step(
        1,
        "Prepare the five-class dataset with the release's split",
        command('ramp-prep', args),
    )
    ramp_prep.main(
        [*args, '--no-progress'], standalone_mode=False, prog_name='ramp-prep'
    )

    step(2, 'Read every prepared file back (verified) and describe it')
    for line in describe(prepared):
        click.echo(f'    {line}')

    step(3, 'What this split allows')
    for line in next_steps(prepared):
        click.echo(f'    {line}')
    seconds = time.perf_counter() - started
    click.echo(f'\nDone in {seconds:.1f} s. Dataset: {prepared}')
    return seconds


@click.command(context_settings={'help_option_names': ['-h', '--help']})
@click.argument('src', type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    '--out',
    type=click.Path(file_okay=False, path_type=Path),
    default='first-real-ct',
    show_default=True,
    help='Folder for the prepared dataset.',
)
def main(src: Path, out: Path) -> None:
    """Prepare the real CTs in SRC (TotalSegmentator layout) and describe them."""
    run(src, out)


if __name__ == '__main__':
    sys.exit(main())
