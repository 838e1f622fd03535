#!/usr/bin/env python
"""Quickstart: a baseline and a RAMP model on synthetic phantoms, end to end.

    python examples/quickstart.py                # a few minutes on 2 CPU cores
    python examples/quickstart.py --smoke        # seconds (what CI runs)

Offline, on a CPU, six steps, each the in-process equivalent of the command it
prints (so you can rerun any step by hand):

1. ``ramp-prep synth``: phantom CTs in the TotalSegmentator v2 layout;
2. ``ramp-prep totalseg``: the five-class dataset with its 70/15/15 split;
3. ``ramp-train --strategy baseline``: a small 3D U-Net trained without
   augmentation: the shared starting point of both compared models;
4. ``ramp-train --init-weights`` from it, twice with the same schedule
   and seed: ``baseline`` continues without augmentation, ``ramp`` continues
   with RAMP. Both models get the same number of iterations; only the last half
   differs. (Trained from scratch, RAMP's much harder training distribution
   needs several times more iterations than a few CPU minutes allow before its
   clean Dice catches up; ``examples/reproduce_phantom.py`` trains from scratch.)
5. ``ramp-stress run`` for each model (its ``best.pt2`` torch.export archive,
   keeping failure pictures of the 2 worst subjects per family): the test split,
   clean and under every corruption family of the paper x its five severity
   levels (the full grid);
6. ``ramp-stress report``: ``report.md`` and ``report.html``, tables, figures
   and failure pictures comparing the two models.

It prints the headline table and where the report is. The data are SYNTHETIC
phantoms and the models are tiny and briefly trained: the numbers show the
pipeline working, not clinical robustness. Rerunning continues where an
interrupted run stopped (finished steps are skipped); delete ``--out`` to
start over. ``examples/reproduce_phantom.py`` runs the five-strategy
comparison at a larger size.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from ramp_prep.cli import main as ramp_prep
from torchio_ramp.families import PAPER_FAMILIES
from torchio_ramp.operators import SEVERITY_LEVELS
from torchio_ramp.stress.cli import main as ramp_stress
from torchio_ramp.training import RunFolder
from torchio_ramp.training import TrainingConfig
from torchio_ramp.training import train

STRATEGIES = ('baseline', 'ramp')
SMOKE_VARIABLE = 'RAMP_QUICKSTART_SMOKE'


@dataclass(frozen=True)
class Size:
    """Dataset, training and evaluation sizes of a quickstart mode."""

    subjects: int
    shape: int
    spacing: float
    patch: int
    shared_epochs: int
    epochs: int
    iterations: int
    batch_size: int
    samples_per_volume: int
    lr: float
    stress_batch_size: int


SIZES = {
    # 16 phantoms (11 train, 2 val, 3 test) of 30^3 voxels of 6 mm; 24^3 patches
    # (sliding windows with the default half-patch overlap: 8 per volume).
    'full': Size(
        subjects=16,
        shape=30,
        spacing=6.0,
        patch=24,
        shared_epochs=8,
        epochs=8,
        iterations=40,
        batch_size=2,
        samples_per_volume=4,
        lr=3e-3,
        stress_batch_size=8,
    ),
    # 7 phantoms (4 train, 1 val, 2 test) of 16^3: one patch per volume.
    'smoke': Size(
        subjects=7,
        shape=16,
        spacing=12.0,
        patch=16,
        shared_epochs=1,
        epochs=1,
        iterations=2,
        batch_size=2,
        samples_per_volume=2,
        lr=3e-3,
        stress_batch_size=2,
    ),
}


def _command(program: str, args: Sequence[str]) -> str:
    return ' '.join([program, *(shlex.quote(str(a)) for a in args)])


class Steps:
    """Numbered steps that print their command and time."""

    def __init__(self, total: int):
        self.total = total
        self.number = 0
        self.times: dict[str, float] = {}

    def start(self, title: str, command: str) -> float:
        self.number += 1
        click.secho(f'\n[{self.number}/{self.total}] {title}', bold=True)
        click.echo(f'    $ {command}')
        return time.perf_counter()

    def done(self, title: str, started: float) -> None:
        self.times[title] = time.perf_counter() - started
        click.echo(f'    ({self.times[title]:.1f} s)')


def training_config(
    size: Size,
    data: Path,
    out: Path,
    strategy: str,
    *,
    init_weights: Path | None = None,
) -> TrainingConfig:
    """A quickstart run: the shared start, or a continuation from ``init_weights``."""
    return TrainingConfig(
        data=str(data),
        out=str(out),
        strategy=strategy,
        init_weights=None if init_weights is None else str(init_weights),
        patch_size=size.patch,
        model='tiny',
        epochs=size.shared_epochs if init_weights is None else size.epochs,
        iterations_per_epoch=size.iterations,
        batch_size=size.batch_size,
        samples_per_volume=size.samples_per_volume,
        queue_length=4 * size.samples_per_volume,
        lr=size.lr,
        seed=0,
        device='cpu',
    )


def train_command(config: TrainingConfig) -> str:
    """The ``ramp-train`` command line of ``config``."""
    args = ['--data', config.data, '--strategy', config.strategy, '--out', config.out]
    args += ['--model', config.model, '--patch-size', str(config.patch_size[0])]
    args += ['--epochs', str(config.epochs)]
    args += ['--iterations-per-epoch', str(config.iterations_per_epoch)]
    args += ['--batch-size', str(config.batch_size)]
    args += ['--samples-per-volume', str(config.samples_per_volume)]
    args += ['--queue-length', str(config.queue_length), '--lr', f'{config.lr:g}']
    args += ['--device', 'cpu']
    if config.init_weights is not None:
        args += ['--init-weights', config.init_weights]
    return _command('ramp-train', args)


def headline(stress: dict[str, Path]) -> tuple[str, dict[str, dict]]:
    """Markdown table of clean / corrupted / gap / worst case per model."""
    rows = ['| model | clean Dice | mean corrupted Dice | gap | worst-case Dice |']
    rows.append('|---|---|---|---|---|')
    summaries = {}
    for name, folder in stress.items():
        summary = json.loads((folder / 'summary.json').read_text(encoding='utf-8'))
        summaries[name] = summary
        values = summary['robustness']
        cells = [
            'n/a' if values[key]['value'] is None else f'{values[key]["value"]:.3f}'
            for key in ('clean', 'corrupted', 'gap', 'worst_case')
        ]
        rows.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows), summaries


def run_quickstart(out: Path, size: Size, *, progress: bool = True) -> dict[str, float]:
    """Run the six steps into ``out``; return the seconds of each step."""
    out = Path(out)
    source, prepared = out / 'source', out / 'prepared'
    steps = Steps(total=4 + 2 * len(STRATEGIES))
    started_all = time.perf_counter()

    shape = ','.join([str(size.shape)] * 3)
    spacing = ','.join([f'{size.spacing:g}'] * 3)
    args = ['synth', str(source), '--layout', 'totalseg']
    args += ['--subjects', str(size.subjects), '--shape', shape, '--spacing', spacing]
    started = steps.start('Synthesise phantom CTs', _command('ramp-prep', args))
    if (source / 'meta.csv').is_file():
        click.echo(f'    {source} exists; kept')
    else:
        ramp_prep.main(args, standalone_mode=False, prog_name='ramp-prep')
    steps.done('synthesise', started)

    args = ['totalseg', str(source), str(prepared)]
    started = steps.start('Prepare the five-class dataset', _command('ramp-prep', args))
    ramp_prep.main(
        [*args, '--no-progress'], standalone_mode=False, prog_name='ramp-prep'
    )
    steps.done('prepare', started)

    shared = training_config(size, prepared, out / 'runs' / 'shared-start', 'baseline')
    started = steps.start(
        'Train the shared starting model (no augmentation)', train_command(shared)
    )
    start = RunFolder(shared.out)
    result = train(shared, resume=start.exists(), progress=progress)
    click.echo(
        f'    best epoch {result.best_epoch}: val Dice {result.best_val_dice:.3f}'
    )
    steps.done('train shared start', started)

    runs = {}
    for strategy in STRATEGIES:
        config = training_config(
            size, prepared, out / 'runs' / strategy, strategy, init_weights=start.path
        )
        started = steps.start(
            f'Continue with strategy {strategy!r}', train_command(config)
        )
        run = RunFolder(config.out)
        result = train(config, resume=run.exists(), progress=progress)
        click.echo(
            f'    best epoch {result.best_epoch}: val Dice {result.best_val_dice:.3f}'
        )
        runs[strategy] = run
        steps.done(f'train {strategy}', started)

    stress = {}
    for strategy, run in runs.items():
        folder = out / 'stress' / strategy
        args = ['run', '--model', str(run.file(RunFolder.PROGRAM))]
        args += ['--data', str(prepared), '--out', str(folder), '--name', strategy]
        args += ['--batch-size', str(size.stress_batch_size), '--device', 'cpu']
        args += ['--save-worst', '2']
        title = (
            f'Stress-test {strategy!r}: clean + {len(PAPER_FAMILIES)} families x'
            f' {len(SEVERITY_LEVELS)} levels'
        )
        started = steps.start(title, _command('ramp-stress', args))
        ramp_stress.main(
            [*args, '--no-progress'] if not progress else args,
            standalone_mode=False,
            prog_name='ramp-stress',
        )
        stress[strategy] = folder
        steps.done(f'stress {strategy}', started)

    report = out / 'report'
    args = ['report', *map(str, stress.values()), '--out', str(report)]
    args += ['--baseline', 'baseline', '--focus', 'ramp']
    started = steps.start('Compare in a report', _command('ramp-stress', args))
    ramp_stress.main(args, standalone_mode=False, prog_name='ramp-stress')
    steps.done('report', started)

    table, summaries = headline(stress)
    total = time.perf_counter() - started_all
    subjects = summaries['baseline']['subjects']
    settings = summaries['baseline']['settings']
    click.secho(
        f'\nSYNTHETIC phantom results ({subjects} test subjects, clean + {settings}'
        ' corrupted settings each; tiny models, briefly trained; both continued'
        ' from the same starting model, without and with RAMP):',
        bold=True,
    )
    click.echo(table)
    click.echo(f'\nReport: {report / "report.md"} and report.html (figures beside)')
    click.echo(
        f'Total {total:.0f} s on {torch.get_num_threads()} thread(s): '
        + ', '.join(f'{name} {seconds:.0f} s' for name, seconds in steps.times.items())
    )
    return {**steps.times, 'total': total}


@click.command(context_settings={'help_option_names': ['-h', '--help']})
@click.option(
    '--out',
    type=click.Path(file_okay=False, path_type=Path),
    default='ramp-quickstart',
    show_default=True,
    help='Folder for the data, runs, stress results and report.',
)
@click.option(
    '--smoke',
    is_flag=True,
    default=lambda: os.environ.get(SMOKE_VARIABLE, '') not in ('', '0'),
    help=f'Tiny sizes that run in seconds (also ${SMOKE_VARIABLE}=1); the'
    ' numbers are meaningless.',
)
@click.option(
    '--threads',
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help='torch intra-op threads. One is the fastest for these tiny patches when'
    ' the cores are shared (more threads contend); try 2+ on an idle machine.',
)
@click.option('--progress/--no-progress', default=True, help='Show progress bars.')
def main(out: Path, smoke: bool, threads: int, progress: bool) -> None:
    """Baseline vs RAMP on synthetic phantoms: data, training, stress test, report."""
    torch.set_num_threads(threads)
    mode = 'smoke' if smoke else 'full'
    click.echo(
        f'torchio-ramp quickstart ({mode} mode) in {out}. SYNTHETIC phantom data,'
        ' CPU only, offline.'
    )
    run_quickstart(out, SIZES[mode], progress=progress)


if __name__ == '__main__':
    sys.exit(main())
