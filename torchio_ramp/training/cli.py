"""``ramp-train``: train a 3D U-Net on a ramp-prep dataset with one augmentation strategy.

Single process (CPU or one GPU)::

    ramp-train --data prepared/totalseg --strategy ramp --out runs/ramp

Several GPUs (or CPU processes) with DistributedDataParallel::

    torchrun --nproc_per_node 4 -m torchio_ramp.training --data prepared/totalseg \\
        --strategy ramp --out runs/ramp --workers 4

Continue an interrupted run (the saved options are reused)::

    ramp-train --out runs/ramp --resume

The run folder receives ``best.pt2`` (``torch.export``), ``best.pt``
(TorchScript, legacy), ``best_state_dict.pt``, ``last.pt``, ``metrics.csv`` and
``config.json``; stress-test the model with ``ramp-stress run --model
runs/ramp/best.pt2 --data prepared/totalseg --out stress/ramp``. The loop itself is :func:`torchio_ramp.training.train`.
"""  # noqa: E501

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .. import __version__
from ..cli_options import data_option
from ..cli_options import device_option
from ..cli_options import family_names
from ..cli_options import hu_range_option
from ..cli_options import progress_option
from ..cli_options import seed_option
from ..cli_options import size_option
from ..cli_options import workers_option
from ..models import UNET_PRESETS
from ..pipelines import STRATEGIES
from .config import TrainingConfig
from .data import strategy_overrides
from .distributed import DistributedContext
from .loop import train
from .run import RunFolder

CONTEXT = {'help_option_names': ['-h', '--help'], 'max_content_width': 100}

CONFIG_OPTIONS = (
    'data',
    'strategy',
    'hu_range',
    'patch_size',
    'model',
    'sampler',
    'queue_length',
    'samples_per_volume',
    'workers',
    'epochs',
    'iterations_per_epoch',
    'batch_size',
    'optimizer',
    'lr',
    'weight_decay',
    'seed',
    'val_overlap',
    'device',
    'amp',
    'init_weights',
)
"""Command-line options that are :class:`TrainingConfig` fields of the same name."""

ABLATION_OPTIONS = ('exclude_families', 'num_corruptions', 'p_corrupt')


def _out_folder(ctx, param, value: str) -> Path:
    """Refuse an empty ``--out``: ``""`` would silently mean the current folder."""
    if not value.strip():
        message = (
            f'{value!r} is not a folder name (an unset variable?); pass a path'
            ' (use . for the current folder)'
        )
        raise click.BadParameter(message)
    return Path(value)


def _finite(low: float, *, above: bool = False, high: float = math.inf):
    """Click callback: each value a finite number >= ``low`` (> if ``above``)."""
    if high < math.inf:
        bound = f' in [{low:g}, {high:g}]'
    elif low > -math.inf:
        bound = f' > {low:g}' if above else f' >= {low:g}'
    else:
        bound = ''

    def callback(ctx, param, value: float | tuple[float, ...] | None):
        for number in value if isinstance(value, tuple) else (value,):
            if number is None:
                continue
            fits = number > low if above else number >= low
            if not (math.isfinite(number) and fits and number <= high):
                message = f'must be a finite number{bound}, not {number}'
                raise click.BadParameter(message)
        return value

    return callback


def _hu_range(ctx, param, value: tuple[float, float] | None):
    value = _finite(-math.inf)(ctx, param, value)
    if value is not None and not value[0] < value[1]:
        raise click.BadParameter(f'LOW must be below HIGH, not {value[0]} {value[1]}')
    return value


def _count(ctx, param, value: str | None) -> int | tuple[int, int] | None:
    if value is None:
        return None
    text = value.replace(',', '-')
    try:
        parts = [int(v) for v in text.split('-')]
    except ValueError as error:
        raise click.BadParameter(f'expected K or LOW-HIGH, got {value!r}') from error
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return (parts[0], parts[1])
    raise click.BadParameter(f'expected K or LOW-HIGH, got {value!r}')


@click.command(context_settings=CONTEXT)
@click.version_option(__version__, prog_name='ramp-train')
@data_option(help='Dataset folder prepared by ramp-prep (required unless --resume).')
@click.option(
    '--out',
    required=True,
    type=click.Path(file_okay=False),
    callback=_out_folder,
    help='Run folder: best.pt2, best.pt, best_state_dict.pt, last.pt, metrics.csv,'
    ' config.json.',
)
@click.option(
    '--strategy',
    type=click.Choice(list(STRATEGIES)),
    default='ramp',
    show_default=True,
    help='Augmentation after CTNormalize: '
    + '; '.join(f'{name}: {text.rstrip(".")}' for name, (text, _) in STRATEGIES.items())
    + '.',
)
@click.option(
    '--exclude-families',
    '--exclude',
    'exclude_families',
    multiple=True,
    callback=family_names,
    help='Corruption families to leave out of the pool (LOCO, Table 12);'
    ' comma-separated or repeated.',
)
@click.option(
    '--num-corruptions',
    callback=_count,
    metavar='K|LOW-HIGH',
    help='Corruptions per sample, k or a range (Table 13) [strategy default: 2-4].',
)
@click.option(
    '--p-corrupt',
    type=float,
    callback=_finite(0, high=1),
    help='Probability of the corruption stage, p_RAMP (Table 14) [default 0.85].',
)
@hu_range_option(default=(-200.0, 300.0), show_default=True, callback=_hu_range)
@size_option(
    '--patch-size',
    default='64',
    show_default=True,
    help='Training and sliding-window patch size (multiples of 2^(stages-1)).',
)
@click.option(
    '--model',
    type=click.Choice(list(UNET_PRESETS)),
    default='small',
    show_default=True,
    help='U-Net width: ' + ', '.join(f'{k} {list(v)}' for k, v in UNET_PRESETS.items()),
)
@click.option(
    '--sampler',
    type=click.Choice(['label', 'uniform']),
    default='label',
    show_default=True,
    help='Patch sampler: label (centres on each class equally often) or uniform.',
)
@click.option(
    '--queue-length', type=click.IntRange(min=1), default=64, show_default=True
)
@click.option(
    '--samples-per-volume', type=click.IntRange(min=1), default=8, show_default=True
)
@workers_option(
    default=0, help='Processes loading and augmenting subjects for the queue.'
)
@click.option('--epochs', type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    '--iterations-per-epoch',
    type=click.IntRange(min=1),
    help='Batches per epoch [default: one pass, subjects x samples / batch].',
)
@click.option('--batch-size', type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    '--optimizer',
    type=click.Choice(['adamw', 'sgd']),
    default='adamw',
    show_default=True,
    help='AdamW, or SGD with Nesterov momentum 0.99 (nnU-Net); poly LR decay.',
)
@click.option(
    '--lr',
    type=float,
    callback=_finite(0, above=True),
    help='Initial LR [default: adamw 1e-3, sgd 1e-2].',
)
@click.option(
    '--weight-decay', type=float, default=3e-5, show_default=True, callback=_finite(0)
)
@seed_option(help='Seed of the weights, patch sampling and augmentation.')
@size_option(
    '--val-overlap',
    allow_zero=True,
    help='Sliding-window overlap of validation [default: half the patch].',
)
@device_option()
@click.option('--amp', is_flag=True, help='bfloat16 autocast on CUDA.')
@click.option(
    '--init-weights',
    type=click.Path(exists=True, path_type=str),
    help='Start from these weights (a state_dict file or a run folder), e.g. to'
    ' fine-tune a trained model with RAMP.',
)
@click.option(
    '--resume',
    is_flag=True,
    help='Continue the run in --out from last.pt with its saved options.',
)
@progress_option()
@click.pass_context
def main(ctx: click.Context, out: Path, resume: bool, progress: bool, **options):
    """Patch-queue training of a 3D U-Net with a RAMP augmentation strategy."""
    given = {
        name
        for name in options
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }
    try:
        config = _config(out, resume, options, given)
        result = train(config, resume=resume, progress=progress)
    except (FileExistsError, FileNotFoundError, ValueError, TypeError) as error:
        raise click.ClickException(str(error)) from error
    except OSError as error:  # e.g. disk full while saving a checkpoint
        where = error.filename if error.filename is not None else out
        raise click.ClickException(f'{where}: {error.strerror or error}') from error
    if result.run.path.is_dir() and DistributedContext.from_environment().is_main:
        run = result.run
        program = run.file(RunFolder.PROGRAM)
        model = program if program.is_file() else run.file(RunFolder.TORCHSCRIPT)
        click.echo(
            f'Best epoch {result.best_epoch} of {result.epochs_completed}: val Dice'
            f' {result.best_val_dice:.4f} ({result.seconds:.0f} s this call).\n'
            f'Model: {program} (torch.export), {run.file(RunFolder.TORCHSCRIPT)}'
            f' (TorchScript), {run.file(RunFolder.STATE_DICT)};'
            f' metrics: {run.file(RunFolder.METRICS)}\n'
            f'Stress test: ramp-stress run --model {model}'
            f' --data {config.data} --out stress/{config.strategy}'
        )


def _config(
    out: Path, resume: bool, options: dict[str, Any], given: set[str]
) -> TrainingConfig:
    """The run's configuration: the saved one when resuming, else the options."""
    ablation = {name: options[name] for name in ABLATION_OPTIONS}
    if resume:
        saved = RunFolder(out).training_config()
        values = saved.to_dict()
        values['out'] = str(out)
        values.update({n: options[n] for n in CONFIG_OPTIONS if n in given})
        if given & set(ABLATION_OPTIONS):
            values['strategy_options'] = strategy_overrides(
                values['strategy'], **ablation
            )
        return TrainingConfig.from_dict(values)
    if options['data'] is None:
        raise ValueError('--data is required (unless --resume)')
    values = {n: options[n] for n in CONFIG_OPTIONS}
    values['strategy_options'] = strategy_overrides(options['strategy'], **ablation)
    return TrainingConfig(out=str(out), **values)
