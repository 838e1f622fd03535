"""``ramp-stress``: stress-test a segmentation model, merge shards, report.

Commands: ``run`` (evaluate a model on the clean and corrupted volumes of a
prepared dataset split), ``merge`` (combine the shard files of a run) and
``report`` (``report.md`` and figures from one or more results).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import torch

from .. import __version__
from ..cli_options import family_names
from ..cli_options import split_list
from ..datasets import read_dataset_info
from ..families import PAPER_FAMILIES
from ..operators import SEVERITY_LEVELS
from .predictors import check_output
from .predictors import default_overlap
from .predictors import load_model
from .predictors import make_predictor
from .predictors import parse_patch_size
from .protocol import StressProtocol
from .store import find_results
from .store import load_results
from .store import merge_shards
from .store import parse_shard
from .store import shard_from_environment

CONTEXT = {'help_option_names': ['-h', '--help'], 'max_content_width': 100}


def _fail(error: BaseException) -> click.ClickException:
    return click.ClickException(str(error))


def _levels(ctx, param, values: tuple[str, ...]) -> tuple[float, ...] | None:
    items = split_list(values)
    if not items:
        return None
    try:
        levels = tuple(float(item) for item in items)
    except ValueError as error:
        raise click.BadParameter(f'levels must be numbers, not {items}') from error
    if any(not level > 0 or level == float('inf') for level in levels):
        raise click.BadParameter(f'levels must be positive numbers, not {items}')
    if len(set(levels)) != len(levels):
        raise click.BadParameter(f'repeated levels in {items}')
    return levels


def _triple(ctx, param, value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        parts = [int(v) for v in value.split(',')]
        return parse_patch_size(parts[0] if len(parts) == 1 else parts, param.name)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def _default_device() -> str:
    if not torch.cuda.is_available():
        return 'cpu'
    return f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name='ramp-stress')
def main() -> None:
    """Pre-deployment robustness stress test of CT segmentation models.

    \b
    For each held-out subject: the clean volume plus every corruption family x
    severity level (by default the paper's families x {0.05, 0.10, 0.15, 0.20,
    0.25}), generated on the fly with a seed derived from (seed, subject,
    family, level); labels unchanged.

    \b
    Typical use:
      ramp-stress run --model ramp.pt --data prepared/totalseg --out results/ramp
      ramp-stress run --model base.pt --data prepared/totalseg --out results/base
      ramp-stress report results/base results/ramp --out report --baseline base
    """


@main.command(context_settings=CONTEXT)
@click.option(
    '--model',
    'model',
    required=True,
    help='TorchScript file, or package.module:factory (with --weights).',
)
@click.option(
    '--weights',
    type=click.Path(dir_okay=False, path_type=Path),
    help='state_dict file for --model module:factory (read with weights_only=True).',
)
@click.option(
    '--data',
    required=True,
    type=click.Path(path_type=Path),
    help='Dataset folder prepared by ramp-prep (holds dataset.json).',
)
@click.option(
    '--split',
    type=click.Choice(['test', 'val', 'train', 'all']),
    default='test',
    show_default=True,
    help='Subjects to evaluate.',
)
@click.option(
    '--out',
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help='Results folder (results.csv, results.json, summary.json).',
)
@click.option(
    '--families',
    multiple=True,
    callback=family_names,
    help="Corruption families, comma-separated or repeated [default: the paper's"
    f' {len(PAPER_FAMILIES)}].',
)
@click.option(
    '--levels',
    multiple=True,
    callback=_levels,
    help='Severity levels, comma-separated [default: 0.05,0.1,0.15,0.2,0.25].',
)
@click.option(
    '--seed',
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help='Base seed of the corrupted volumes.',
)
@click.option(
    '--name',
    help='Model name in the results [default: the model file stem; for a run'
    " folder's best.pt with config.json, the folder name].",
)
@click.option(
    '--hu-range',
    nargs=2,
    type=float,
    metavar='LOW HIGH',
    help='HU window of CTNormalize [default: the model sidecar].',
)
@click.option(
    '--patch-size',
    callback=_triple,
    metavar='N|N,N,N',
    help='Sliding-window patch size [default: the model sidecar].',
)
@click.option(
    '--overlap',
    callback=_triple,
    metavar='N|N,N,N',
    help='Patch overlap in voxels, even [default: half the patch].',
)
@click.option(
    '--batch-size',
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help='Patches per forward pass.',
)
@click.option(
    '--device',
    default=None,
    help='Inference device [default: cuda:$LOCAL_RANK if CUDA is available, else cpu].',
)
@click.option('--amp', is_flag=True, help='Automatic mixed precision (CUDA only).')
@click.option(
    '--shard',
    help='Evaluate shard i of n (0-based, e.g. 0/4) [default: RANK/WORLD_SIZE'
    ' under torchrun, else all].',
)
@click.option('--progress/--no-progress', default=True, help='Show progress bars.')
def run(
    model: str,
    weights: Path | None,
    data: Path,
    split: str,
    out: Path,
    families: tuple[str, ...] | None,
    levels: tuple[float, ...] | None,
    seed: int,
    name: str | None,
    hu_range: tuple[float, float] | None,
    patch_size: tuple[int, int, int] | None,
    overlap: tuple[int, int, int] | None,
    batch_size: int,
    device: str | None,
    amp: bool,
    shard: str | None,
    progress: bool,
) -> None:
    """Stress-test a model on the clean and corrupted volumes of a split.

    \b
    Model sidecar: <model without suffix>.json or config.json beside it, with
    "hu_range": [low, high], "patch_size": n or [n, n, n], and optionally
    "num_classes", "strategy"; --hu-range / --patch-size override it.
    Each finished subject is appended to OUT/results.csv; re-running the same
    command resumes an interrupted run (other arguments are refused). With
    --shard i/n (or under torchrun) each process writes
    OUT/results.shard-i-of-n.csv; the last shard to finish merges them when
    they share OUT, otherwise run `ramp-stress merge`.
    """
    from .runner import run_stress_test

    device = device or _default_device()
    try:
        shard_value = parse_shard(shard) if shard else shard_from_environment()
        read_dataset_info(data)
        loaded = load_model(model, weights, device=device)
        config = loaded.config
        where = f' or add it to the sidecar {loaded.path.with_suffix(".json")}'
        if hu_range is None:
            if config.hu_range is None:
                raise ValueError(
                    f'the HU window of {loaded.path} is unknown: pass --hu-range LOW'
                    f' HIGH (the one used in training){where}'
                )
            hu_range = config.hu_range
        if patch_size is None:
            if config.patch_size is None:
                raise ValueError(
                    f'the patch size of {loaded.path} is unknown: pass --patch-size'
                    f' N{where}'
                )
            patch_size = config.patch_size
        overlap = overlap or default_overlap(patch_size)
        num_classes = check_output(
            loaded.module,
            patch_size,
            num_classes=config.num_classes,
            device=device,
            name=str(loaded.path),
        )
        protocol = StressProtocol(
            families=families,
            levels=levels or SEVERITY_LEVELS,
            seed=seed,
            hu_range=hu_range,
        )
        predictor = make_predictor(
            loaded.module,
            patch_size,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            amp=amp,
        )
        name = name or loaded.name
        model_arguments = {
            **loaded.fingerprint(),
            'patch_size': list(patch_size),
            'overlap': list(overlap),
            'amp': bool(amp and torch.device(device).type == 'cuda'),
            'num_classes': num_classes,
            'strategy': config.strategy,
        }
        session = {
            'model_path': str(loaded.path.resolve()),
            'sidecar': config.source,
            'device': str(device),
            'batch_size': batch_size,
        }
        shard_text = (
            '' if shard_value is None else f' shard {shard_value[0]}/{shard_value[1]}'
        )
        click.echo(
            f'ramp-stress: {name} on {data} ({split}){shard_text}:'
            f' {len(protocol.settings) - 1} corrupted settings + clean,'
            f' HU window {protocol.hu_range}, patch {patch_size}, overlap {overlap},'
            f' device {device}',
            err=True,
        )
        outcome = run_stress_test(
            predictor,
            data,
            out,
            split=split,
            protocol=protocol,
            name=name,
            model_arguments=model_arguments,
            session=session,
            shard=shard_value,
            progress=progress,
        )
    except (FileNotFoundError, ValueError, TypeError, ImportError) as error:
        raise _fail(error) from error
    if outcome.truncated_bytes:
        click.echo(
            f'Removed {outcome.truncated_bytes} bytes of a subject cut short by an'
            ' earlier interruption; it was evaluated again.',
            err=True,
        )
    click.echo(
        f'{len(outcome.evaluated)} subject(s) evaluated, {len(outcome.skipped)}'
        f' already done; results: {outcome.results}'
    )
    if outcome.merged is not None:
        click.echo(f'All shards complete; merged into {outcome.merged}')
    if outcome.merge_error is not None:
        message = f'All shards complete but not merged: {outcome.merge_error}'
        click.echo(message, err=True)
    if outcome.summary is not None:
        _echo_headline(outcome.summary)


def _echo_headline(summary_path: Path) -> None:
    import json

    summary = json.loads(summary_path.read_text(encoding='utf-8'))
    headline = summary['robustness']

    def show(key: str) -> str:
        value = headline[key]
        if value['value'] is None:
            return 'n/a'
        if value['low'] is None:
            return f'{value["value"]:.3f}'
        return f'{value["value"]:.3f} [{value["low"]:.3f}, {value["high"]:.3f}]'

    synthetic = ' (SYNTHETIC data)' if summary['synthetic'] else ''
    click.echo(
        f'{summary["model"]} on {summary["dataset"]}{synthetic},'
        f' {summary["subjects"]} subjects: clean Dice {show("clean")}, mean'
        f' corrupted {show("corrupted")}, gap {show("gap")}, worst-case'
        f' {show("worst_case")}; summary: {summary_path}'
    )


@main.command(context_settings=CONTEXT)
@click.argument('inputs', nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    '--out',
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help='Folder of the merged results.csv / results.json / summary.json.',
)
def merge(inputs: tuple[Path, ...], out: Path) -> None:
    """Merge the shard files of one run (INPUTS: shard CSVs or folders).

    All shards 0..n-1 must be present, complete and made with the same
    arguments; the merged file equals that of a single-process run.
    """
    from .runner import write_summary

    try:
        merged = merge_shards(list(inputs), out)
        summary = write_summary(load_results(merged), out)
    except (FileNotFoundError, ValueError) as error:
        raise _fail(error) from error
    click.echo(f'Merged into {merged}')
    _echo_headline(summary)


@main.command(context_settings=CONTEXT)
@click.argument('results', nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    '--out',
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help='Report folder (report.md, comparison.json, PNG figures).',
)
@click.option('--baseline', help='Model name for mCE, paired tests and Table 6.')
@click.option(
    '--focus',
    help='Model compared with the best other one (Tables 6-7) [default: highest'
    ' mean corrupted Dice].',
)
@click.option(
    '--resamples',
    type=click.IntRange(min=100),
    default=2000,
    show_default=True,
    help='Bootstrap resamples of the 95% confidence intervals.',
)
@click.option(
    '--seed',
    type=int,
    default=0,
    show_default=True,
    help='Seed of the bootstrap and the permutation tests.',
)
@click.option('--figures/--no-figures', default=True, help='Draw the PNG figures.')
def report(
    results: tuple[Path, ...],
    out: Path,
    baseline: str | None,
    focus: str | None,
    resamples: int,
    seed: int,
    figures: bool,
) -> None:
    """Write report.md and figures from RESULTS (results folders or CSV files).

    \b
    Tables: summary with 95% bootstrap CIs (paper Table 5), improvement
    (Table 6), per family (Tables 7-8), per level, high-severity wins
    (Table 9), per organ with volume errors (Table 10), mCE and paired tests
    vs --baseline. Figures (matplotlib, the "plot" extra): heatmap (Fig. 4),
    Dice vs severity (Fig. 5), clean vs corrupted (Fig. 3), organ bars.
    """
    from .report import write_report

    try:
        files = [find_results(path) for path in results]
        loaded = [load_results(path) for path in files]
        path = write_report(
            loaded,
            out,
            baseline=baseline,
            focus=focus,
            figures=figures,
            resamples=resamples,
            seed=seed,
            sources=[str(p) for p in files],
        )
    except (FileNotFoundError, ValueError, ImportError) as error:
        raise _fail(error) from error
    click.echo(f'Report: {path}')
