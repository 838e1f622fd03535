#!/usr/bin/env python
"""Reproduce the paper's five-strategy comparison on SYNTHETIC phantoms (CPU).

    python examples/reproduce_phantom.py --out phantom-reproduction \\
        --results examples/results

Baseline, intensity, geometric, artifact and RAMP (paper section 2.4, Table 5)
train the same 3D U-Net with the same schedule and seed on the same phantom
dataset, keep their best-validation checkpoint, and are stress-tested on the
held-out test split with the full protocol: clean plus every corruption family
of the paper x its five severity levels. Then ``ramp-stress report`` compares
them and this script writes, under ``--results``:

* ``README.md``: settings, wall time, Table 5 (clean, mean corrupted, gap,
  worst case, with 95% bootstrap CIs), Table 6, per-family Dice (Tables 7-8),
  per-level Dice, high-severity wins (Table 9) and an automatic check of the
  paper's claims against these numbers;
* ``report.md`` and its figures (heatmap, severity curves, clean vs
  corrupted, organs), ``comparison.json``;
* ``training/<strategy>.csv``: each model's training curve;
* ``settings.json``: everything needed to regenerate the numbers.

Jobs run in parallel processes (``--jobs``, one torch thread each by default):
training is many small convolutions, which scale better across processes than
across threads on two cores. On the CPU every model is reproducible for a
given seed (see :mod:`torchio_ramp.training`). Rerunning continues an
interrupted run: finished training and stress-test steps are skipped.

Everything here is SYNTHETIC phantom data (``ramp-prep synth``): the numbers
say how the strategies behave on this toy task, not on patients.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import click
import torch

from torchio_ramp.families import PAPER_FAMILIES
from torchio_ramp.families import severity_grid
from torchio_ramp.operators import SEVERITY_LEVELS

STRATEGIES = ('baseline', 'intensity', 'geometric', 'artifact', 'ramp')
"""The compared strategies of the paper's Table 5, in its order."""

PAPER_TABLE_5 = {
    # Five-organ TotalSegmentator subset: clean, mean corrupted, gap, worst case
    'baseline': (0.874, 0.610, 0.264, 0.001),
    'intensity': (0.864, 0.662, 0.202, 0.086),
    'geometric': (0.902, 0.481, 0.422, 0.000),
    'artifact': (0.889, 0.553, 0.336, 0.000),
    'ramp': (0.816, 0.753, 0.064, 0.439),
}
"""The paper's Table 5 (five-organ benchmark), shown beside our numbers."""

PAPER_RAMP_WINS = (
    'bias_field',
    'compound',
    'gaussian_noise',
    'rician_noise',
    'salt_pepper',
    'stripe',
)
"""Families where the paper's RAMP beat the best other strategy (Table 7)."""


@dataclass(frozen=True)
class Settings:
    """The reproduction's dataset, training and evaluation sizes."""

    subjects: int = 60
    shape: int = 30
    spacing: float = 6.0
    patch: int = 24
    model: str = 'tiny'
    epochs: int = 50
    iterations: int = 50
    batch_size: int = 2
    samples_per_volume: int = 4
    queue_length: int = 16
    lr: float = 3e-3
    optimizer: str = 'adamw'
    seed: int = 0
    stress_batch_size: int = 8
    stress_seed: int = 0


def _command(program: str, args: list[str]) -> str:
    return ' '.join([program, *(shlex.quote(str(a)) for a in args)])


def _log(strategy: str, message: str) -> None:
    stamp = datetime.now().strftime('%H:%M:%S')
    print(f'{stamp} [{strategy}] {message}', flush=True)


def train_and_stress(
    strategy: str,
    settings: Settings,
    out: str,
    threads: int,
) -> dict[str, float]:
    """Train one strategy, then stress-test its best checkpoint (one process)."""
    torch.set_num_threads(threads)
    from torchio_ramp.stress.cli import main as ramp_stress
    from torchio_ramp.training import RunFolder
    from torchio_ramp.training import TrainingConfig
    from torchio_ramp.training import train

    root = Path(out)
    prepared = root / 'prepared'
    config = TrainingConfig(
        data=str(prepared),
        out=str(root / 'runs' / strategy),
        strategy=strategy,
        patch_size=settings.patch,
        model=settings.model,
        epochs=settings.epochs,
        iterations_per_epoch=settings.iterations,
        batch_size=settings.batch_size,
        samples_per_volume=settings.samples_per_volume,
        queue_length=settings.queue_length,
        lr=settings.lr,
        optimizer=settings.optimizer,
        seed=settings.seed,
        device='cpu',
    )
    run = RunFolder(config.out)
    started = time.perf_counter()
    result = train(
        config,
        resume=run.exists(),
        progress=False,
        log=lambda line: _log(strategy, line),
    )
    trained = time.perf_counter() - started
    _log(
        strategy, f'best epoch {result.best_epoch}: val Dice {result.best_val_dice:.4f}'
    )

    args = ['run', '--model', str(run.file(RunFolder.PROGRAM))]
    args += ['--data', str(prepared), '--out', str(root / 'stress' / strategy)]
    args += ['--name', strategy, '--batch-size', str(settings.stress_batch_size)]
    args += ['--seed', str(settings.stress_seed), '--device', 'cpu', '--no-progress']
    _log(strategy, _command('ramp-stress', args))
    started = time.perf_counter()
    ramp_stress.main(args, standalone_mode=False, prog_name='ramp-stress')
    return {'train_seconds': trained, 'stress_seconds': time.perf_counter() - started}


def prepare_data(settings: Settings, out: Path) -> Path:
    """Synthesise the phantoms and prepare them with ramp-prep (in-process)."""
    from ramp_prep.cli import main as ramp_prep

    source, prepared = out / 'source', out / 'prepared'
    shape = ','.join([str(settings.shape)] * 3)
    spacing = ','.join([f'{settings.spacing:g}'] * 3)
    args = ['synth', str(source), '--layout', 'totalseg']
    args += ['--subjects', str(settings.subjects), '--shape', shape]
    args += ['--spacing', spacing]
    _log('data', _command('ramp-prep', args))
    if not (source / 'meta.csv').is_file():
        ramp_prep.main(args, standalone_mode=False, prog_name='ramp-prep')
    args = ['totalseg', str(source), str(prepared), '--no-progress']
    _log('data', _command('ramp-prep', args))
    ramp_prep.main(args, standalone_mode=False, prog_name='ramp-prep')
    return prepared


# Results ------------------------------------------------------------------------


def _ci(estimate: Any) -> str:
    if estimate.low != estimate.low:  # NaN: a single subject
        return f'{estimate.value:.3f}'
    return f'{estimate.value:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]'


def _protocol(comparison: Any) -> str:
    """The runs' severity protocol with its version, e.g. ``paired v2``."""
    from torchio_ramp.stress.protocol import describe_protocol

    protocols = {result.protocol for result in comparison.models}
    return ', '.join(describe_protocol(name) for name in sorted(protocols))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |']
    lines.append('|' + '---|' * len(header))
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return lines


def claims(comparison: Any) -> list[tuple[str, str, bool]]:
    """The paper's claims (five-organ benchmark), checked on these results.

    Returns:
        ``(claim, what we measured, holds)`` rows.
    """
    from torchio_ramp.stress.compare import family_table
    from torchio_ramp.stress.compare import high_severity_wins
    from torchio_ramp.stress.compare import summary_table

    rows = {row['model']: row for row in summary_table(comparison)}
    others = [name for name in rows if name != 'ramp']

    def value(name: str, key: str) -> float:
        return rows[name][key].value

    def best(key: str, highest: bool = True) -> str:
        pick = max if highest else min
        return pick(rows, key=lambda name: value(name, key))

    result = []
    for key, text, highest in (
        ('corrupted', 'RAMP has the highest mean corrupted Dice', True),
        ('gap', 'RAMP has the smallest robustness gap', False),
        ('worst_case', 'RAMP has the highest worst-case Dice', True),
    ):
        winner = best(key, highest)
        result.append(
            (
                text,
                f'best: {winner} ({value(winner, key):.3f}); RAMP'
                f' {value("ramp", key):.3f}',
                winner == 'ramp',
            )
        )
    best_clean = max(others, key=lambda name: value(name, 'clean'))
    result.append(
        (
            'RAMP trades clean Dice for robustness (lower clean Dice than the best'
            ' other strategy)',
            f'RAMP {value("ramp", "clean"):.3f}; best other: {best_clean}'
            f' {value(best_clean, "clean"):.3f}',
            value('ramp', 'clean') < value(best_clean, 'clean'),
        )
    )
    gain = value('ramp', 'corrupted') - value('baseline', 'corrupted')
    result.append(
        (
            'RAMP improves mean corrupted Dice over the baseline (paper: +0.143)',
            f'{gain:+.3f}',
            gain > 0,
        )
    )
    wins, total = high_severity_wins(comparison)
    leader = max(wins, key=wins.get)
    result.append(
        (
            'RAMP wins the most high-severity settings (paper: 21 of 39)',
            ', '.join(f'{n} {w}' for n, w in wins.items()) + f' (of {total})',
            leader == 'ramp' and list(wins.values()).count(wins['ramp']) == 1,
        )
    )
    families = family_table(comparison, 'ramp')
    won = sorted(row['family'] for row in families if row['difference'] > 0)
    agree = sum(
        (row['family'] in PAPER_RAMP_WINS) == (row['difference'] > 0)
        for row in families
    )
    result.append(
        (
            'RAMP beats the best other strategy on bias field, compound, Gaussian,'
            ' Rician, salt-and-pepper and stripe, and loses on the other 7 families'
            ' (Table 7)',
            f'RAMP wins {len(won)} families: {", ".join(won) or "none"};'
            f' {agree} of {len(families)} families agree with Table 7',
            agree == len(families),
        )
    )
    return result


def write_results(
    stress: dict[str, Path],
    report: Path,
    results: Path,
    runs: Path,
    settings: Settings,
    timing: dict[str, Any],
    command: str,
) -> Path:
    """Copy the report and write ``README.md`` with the tables to ``results``."""
    from torchio_ramp.stress.compare import compare
    from torchio_ramp.stress.compare import family_table
    from torchio_ramp.stress.compare import high_severity_wins
    from torchio_ramp.stress.compare import improvement_table
    from torchio_ramp.stress.compare import level_table
    from torchio_ramp.stress.compare import summary_table
    from torchio_ramp.stress.store import load_results

    results.mkdir(parents=True, exist_ok=True)
    for path in report.iterdir():
        if path.suffix in ('.md', '.png', '.json'):
            shutil.copy2(path, results / path.name)
    (results / 'training').mkdir(exist_ok=True)
    best_epochs = {}
    for strategy in stress:
        shutil.copy2(
            runs / strategy / 'metrics.csv', results / 'training' / f'{strategy}.csv'
        )
        document = json.loads((runs / strategy / 'config.json').read_text())
        best_epochs[strategy] = (document['best_epoch'], document['best_val_dice'])

    comparison = compare([load_results(folder) for folder in stress.values()])
    subjects = comparison.summaries['ramp']['subjects']
    lines = [
        '# Five strategies on SYNTHETIC phantoms: a CPU reproduction of Table 5',
        '',
        '> **SYNTHETIC DATA.** Phantom CTs from `ramp-prep synth`, not patients;'
        ' a tiny U-Net trained for minutes on a CPU. These numbers show how the'
        ' strategies behave on this toy task; they are not evidence about clinical'
        ' robustness and are not comparable in absolute value with the paper.',
        '',
        f'Regenerate (code {timing["code"]}, {timing["date"]}; wall time'
        f' {timing["total_seconds"] / 60:.1f} min, measured'
        f' on {timing["machine"]}; {timing["jobs"]} parallel jobs x'
        f' {timing["threads"]} torch thread(s) at niceness {timing["niceness"]};'
        ' other work shared the machine):',
        '',
        '```',
        command,
        '```',
        '',
        '## Settings',
        '',
    ]
    lines += _table(
        ['setting', 'value'],
        [
            [
                'data',
                f'{settings.subjects} phantoms of {settings.shape}^3 voxels'
                f' ({settings.spacing:g} mm), TotalSegmentator layout, ramp-prep split'
                f' seed 42 -> {subjects} test subjects',
            ],
            [
                'model',
                f'UNet3d `{settings.model}` (torchio_ramp.models), same seed'
                f' ({settings.seed}) for every strategy',
            ],
            [
                'training',
                f'{settings.epochs} epochs x {settings.iterations} iterations, batch'
                f' {settings.batch_size} of {settings.patch}^3 patches (LabelSampler,'
                f' {settings.samples_per_volume} per volume, queue'
                f' {settings.queue_length}), {settings.optimizer} lr {settings.lr:g}'
                ' with poly decay, Dice + CE; best validation epoch kept',
            ],
            [
                'stress test',
                f'clean + {len(PAPER_FAMILIES)} families x {len(SEVERITY_LEVELS)}'
                f' levels ({SEVERITY_LEVELS[0]:g}-{SEVERITY_LEVELS[-1]:g}) ='
                f' {len(severity_grid())} settings per subject, sliding windows of'
                f' {settings.patch}^3 with half-patch overlap, seed'
                f' {settings.stress_seed}, severity protocol {_protocol(comparison)}',
            ],
        ],
    )
    lines += ['', '## Table 5: clean, mean corrupted, gap, worst case', '']
    lines.append(
        f'Mean over the {subjects} test subjects (95% bootstrap CI over subjects);'
        " the paper's five-organ numbers for reference."
    )
    lines.append('')
    table = []
    for row in summary_table(comparison):
        name = row['model']
        paper = PAPER_TABLE_5.get(name)
        epoch, val = best_epochs[name]
        table.append(
            [
                f'`{name}`',
                _ci(row['clean']),
                _ci(row['corrupted']),
                _ci(row['gap']),
                _ci(row['worst_case']),
                f'{epoch} ({val:.3f})',
                ' / '.join(f'{v:.3f}' for v in paper) if paper else '',
            ]
        )
    lines += _table(
        [
            'strategy',
            'clean Dice',
            'mean corrupted Dice',
            'gap',
            'worst-case Dice',
            'best epoch (val Dice)',
            'paper: clean / corrupted / gap / worst',
        ],
        table,
    )
    lines += ['', '## Table 6: improvement of RAMP', '']
    lines += _table(
        ['versus', 'model', 'mean corrupted Dice gain', 'gap reduction', 'relative'],
        [
            [
                row['versus'],
                f'`{row["other"]}`',
                f'{row["dice_gain"]:+.3f}',
                f'{row["gap_reduction"]:+.3f}',
                f'{100 * row["relative_gap_reduction"]:.1f}%',
            ]
            for row in improvement_table(comparison, 'ramp', 'baseline')
        ],
    )
    lines += ['', '## Per family: mean Dice over the 5 levels (Tables 7-8, Fig. 4)', '']
    families = family_table(comparison, 'ramp')
    lines += _table(
        ['family', *[f'`{n}`' for n in comparison.names], 'RAMP - best other'],
        [
            [
                row['family'],
                *[f'{row["dice"][n]:.3f}' for n in comparison.names],
                f'{row["difference"]:+.3f} (vs `{row["best_other"]}`)',
            ]
            for row in families
        ],
    )
    lines += ['', '## Per severity level (Fig. 5; level 0 is clean)', '']
    lines += _table(
        ['level', *[f'`{n}`' for n in comparison.names]],
        [
            [f'{row["level"]:g}', *[f'{row["dice"][n]:.3f}' for n in comparison.names]]
            for row in level_table(comparison)
        ],
    )
    wins, total = high_severity_wins(comparison)
    lines += ['', f'## Table 9: wins among the {total} settings with level >= 0.15', '']
    lines += _table([f'`{n}`' for n in wins], [[str(w) for w in wins.values()]])
    lines += ['', "## The paper's claims, checked on these numbers", '']
    lines += _table(
        ['claim (paper, five-organ benchmark)', 'measured here', 'holds'],
        [[c, m, 'yes' if ok else 'no'] for c, m, ok in claims(comparison)],
    )
    lines += [
        '',
        '## Files',
        '',
        '- `report.md`: the full `ramp-stress report` (Tables 5-10, mCE, paired'
        ' tests) with the figures `heatmap-*.png` (Fig. 4), `severity-*.png`'
        ' (Fig. 5), `clean-vs-corrupted-*.png` (Fig. 3), `organs-*.png`;',
        '- `comparison.json`: every number of the report;',
        '- `training/<strategy>.csv`: loss, validation Dice per class, learning'
        ' rate and seconds per epoch;',
        '- `settings.json`: settings and measured wall times.',
        '',
        '## Wall time',
        '',
    ]
    lines += _table(
        ['step', 'seconds'],
        [['data', f'{timing["data_seconds"]:.0f}']]
        + [
            [
                f'{name}: train / stress',
                f'{t["train_seconds"]:.0f} / {t["stress_seconds"]:.0f}',
            ]
            for name, t in timing['strategies'].items()
        ]
        + [
            ['report', f'{timing["report_seconds"]:.0f}'],
            ['total (wall)', f'{timing["total_seconds"]:.0f}'],
        ],
    )
    lines += [
        '',
        'Train/stress seconds are per job; jobs overlap, so they add up to more'
        ' than the total. Timings depend on the load of the machine.',
        '',
    ]
    path = results / 'README.md'
    path.write_text('\n'.join(lines), encoding='utf-8')
    document = {
        'settings': asdict(settings),
        'command': command,
        'timing': timing,
        'best_epochs': {
            k: {'epoch': e, 'val_dice': v} for k, (e, v) in best_epochs.items()
        },
    }
    (results / 'settings.json').write_text(json.dumps(document, indent=2) + '\n')
    return path


@click.command(context_settings={'help_option_names': ['-h', '--help']})
@click.option(
    '--out',
    type=click.Path(file_okay=False, path_type=Path),
    default='phantom-reproduction',
    show_default=True,
    help='Working folder: data, runs, stress results, report.',
)
@click.option(
    '--results',
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(__file__).resolve().parent / 'results',
    show_default='examples/results',
    help='Where the tables, figures and README.md go.',
)
@click.option(
    '--jobs',
    type=click.IntRange(min=1),
    default=len(STRATEGIES),
    show_default=True,
    help='Strategies trained and stress-tested at the same time (processes); all'
    ' five at once keeps both cores busy until the end.',
)
@click.option(
    '--threads',
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help='torch threads per job.',
)
@click.option('--subjects', type=click.IntRange(min=7), default=Settings.subjects)
@click.option('--epochs', type=click.IntRange(min=1), default=Settings.epochs)
@click.option('--iterations', type=click.IntRange(min=1), default=Settings.iterations)
@click.option('--seed', type=int, default=Settings.seed)
def main(
    out: Path,
    results: Path,
    jobs: int,
    threads: int,
    subjects: int,
    epochs: int,
    iterations: int,
    seed: int,
) -> None:
    """Baseline vs intensity vs geometric vs artifact vs RAMP on phantoms."""
    from torchio_ramp.stress.cli import main as ramp_stress

    settings = Settings(
        subjects=subjects, epochs=epochs, iterations=iterations, seed=seed
    )
    command = _command('python examples/reproduce_phantom.py', sys.argv[1:])
    started_all = time.perf_counter()
    version = code_version()
    out.mkdir(parents=True, exist_ok=True)
    _log('setup', f'SYNTHETIC phantom reproduction: {settings}')

    started = time.perf_counter()
    prepare_data(settings, out)
    data_seconds = time.perf_counter() - started

    per_strategy: dict[str, dict[str, float]] = {}
    context = get_context('spawn')  # no fork after torch's thread pools exist
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {
            name: pool.submit(train_and_stress, name, settings, str(out), threads)
            for name in STRATEGIES
        }
        for name, future in futures.items():
            per_strategy[name] = future.result()

    stress = {name: out / 'stress' / name for name in STRATEGIES}
    report = out / 'report'
    args = ['report', *map(str, stress.values()), '--out', str(report)]
    args += ['--baseline', 'baseline', '--focus', 'ramp']
    _log('report', _command('ramp-stress', args))
    started = time.perf_counter()
    ramp_stress.main(args, standalone_mode=False, prog_name='ramp-stress')
    report_seconds = time.perf_counter() - started

    timing = {
        'machine': f'{platform.machine()}, {_cpus()} CPU cores, torch'
        f' {torch.__version__}',
        'date': datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'),
        'code': version,
        'niceness': os.nice(0),
        'jobs': jobs,
        'threads': threads,
        'data_seconds': data_seconds,
        'strategies': per_strategy,
        'report_seconds': report_seconds,
        'total_seconds': time.perf_counter() - started_all,
    }
    path = write_results(
        stress, report, results, out / 'runs', settings, timing, command
    )
    _log('done', f'{path} ({timing["total_seconds"] / 60:.1f} min)')
    print(path.read_text(encoding='utf-8'))


def code_version() -> str:
    """``git`` commit of the checkout, ``+dirty`` if the library has local edits."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ['git', 'status', '--porcelain', 'torchio_ramp', 'prep'],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown (not a git checkout)'
    return commit + ('+dirty' if dirty else '')


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else 0


if __name__ == '__main__':
    main()
