"""``ramp-stress``: stress-test a segmentation model, merge shards, report.

Commands: ``run`` (evaluate a model on the clean and corrupted volumes of a
prepared dataset split), ``merge`` (combine the shard files of a run) and
``report`` (``report.md`` and figures from one or more results).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from .. import __version__
from ..arguments import device_problem
from ..cli_options import data_option
from ..cli_options import device_option
from ..cli_options import family_names
from ..cli_options import hu_range_option
from ..cli_options import progress_option
from ..cli_options import resolve_device
from ..cli_options import seed_option
from ..cli_options import size_option
from ..cli_options import split_list
from ..families import PAPER_FAMILIES
from ..integrity import VERIFY_ENV
from ..integrity import VERIFY_MODES
from ..operators import SEVERITY_LEVELS
from .protocol import DEFAULT_PROTOCOL
from .protocol import PROTOCOLS
from .store import find_results
from .store import load_results
from .store import merge_shards
from .store import parse_shard
from .store import shard_from_environment

CONTEXT = {'help_option_names': ['-h', '--help'], 'max_content_width': 100}


def _fail(error: BaseException) -> click.ClickException:
    return click.ClickException(str(error))


def _damaged(error: UnicodeDecodeError, where: Path) -> str:
    """A results file that is not UTF-8 text, named."""
    return (
        f'a results file in {where} is damaged: not UTF-8 text at byte'
        f' {error.start} ({error.reason}). Restore it, or use another --out'
    )


def _load(path: Path):
    """:func:`load_results` with a damaged file named in the error."""
    try:
        return load_results(path)
    except UnicodeDecodeError as error:
        raise ValueError(
            f'{path} is damaged: not UTF-8 text at byte {error.start}'
            f' ({error.reason}); restore it or re-run the stress test'
        ) from error


def _os_error(error: OSError, default: Path) -> str:
    """``OSError`` as one line naming the file (disk full, permissions...)."""
    where = error.filename if error.filename is not None else default
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        return f'Disk full while writing {where} ({reason})'
    return f'{where}: {reason}'


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


def _spacing(ctx, param, value: str | None) -> tuple[float, float, float] | None:
    from .units import parse_spacing

    if value is None:
        return None
    try:
        return parse_spacing(value, '--spacing')
    except ValueError as error:
        raise click.BadParameter(str(error).removeprefix('--spacing ')) from error


def _aggregation_device(value: str) -> str:
    device, problem = device_problem(value)
    if device is None:
        raise click.BadParameter(problem.removesuffix('; use --device cpu'))
    return str(device)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name='ramp-stress')
def main() -> None:
    """Pre-deployment robustness stress test of CT segmentation models.

    \b
    For each held-out subject: the clean volume plus every corruption family x
    severity level (by default the paper's families x {0.05, 0.10, 0.15, 0.20,
    0.25}), generated on the fly with a seed derived from (seed, subject,
    family) (paired severity protocol: the levels share every draw but the
    severity) or (seed, subject, family, level) (--protocol independent);
    labels unchanged.

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
    help='Model file (torch.export .pt2, ONNX, or legacy TorchScript; recognised by'
    ' content), or package.module:factory (with --weights).',
)
@click.option(
    '--nnunet',
    type=click.Path(file_okay=False, path_type=Path),
    help='Instead of --model: an nnU-Net v2 model folder'
    ' ($nnUNet_results/DatasetNNN_Name/TRAINER__PLANS__CONFIG), run through'
    " nnU-Net's own predictor (the nnunet extra).",
)
@click.option(
    '--fold',
    default='0',
    show_default=True,
    help='With --nnunet: the fold (0-4 or all).',
)
@click.option(
    '--checkpoint',
    default='checkpoint_final.pth',
    show_default=True,
    help='With --nnunet: the checkpoint file of the fold.',
)
@click.option(
    '--weights',
    type=click.Path(dir_okay=False, path_type=Path),
    help='state_dict file for --model module:factory (read with weights_only=True).',
)
@data_option(required=True)
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
    help="Corruption families or pools ('paper', 'ct_physics'), comma-separated"
    f" or repeated [default: the paper's {len(PAPER_FAMILIES)}].",
)
@click.option(
    '--levels',
    multiple=True,
    callback=_levels,
    help='Severity levels, comma-separated [default: 0.05,0.1,0.15,0.2,0.25].',
)
@seed_option(help='Base seed of the corrupted volumes.')
@click.option(
    '--protocol',
    'severity_protocol',
    type=click.Choice(list(PROTOCOLS)),
    default=DEFAULT_PROTOCOL,
    show_default=True,
    help='Severity protocol: paired (the levels of a family share every random'
    ' draw but the severity) or independent (one draw per setting; the results'
    ' of earlier versions).',
)
@click.option(
    '--name',
    help='Model name in the results [default: the model file stem; for a run'
    " folder's best.pt with config.json, the folder name].",
)
@hu_range_option(help='HU window of CTNormalize [default: the model sidecar].')
@size_option(
    '--patch-size', help='Sliding-window patch size [default: the model sidecar].'
)
@size_option(
    '--overlap',
    allow_zero=True,
    help='Patch overlap in voxels, even [default: half the patch].',
)
@click.option(
    '--batch-size',
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help='Patches per forward pass.',
)
@device_option()
@click.option('--amp', is_flag=True, help='Automatic mixed precision (CUDA only).')
@click.option(
    '--aggregation-device',
    metavar='DEVICE',
    default='cpu',
    show_default=True,
    callback=lambda ctx, param, value: _aggregation_device(value),
    help='Device holding the blended output volume (e.g. cpu with a CUDA --device:'
    ' patches on the GPU, the volume in host memory).',
)
@click.option(
    '--shard',
    help='Evaluate shard i of n (0-based, e.g. 0/4) [default: RANK/WORLD_SIZE'
    ' under torchrun, else all].',
)
@click.option(
    '--save-worst',
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar='N',
    help='Keep failure pictures (central slices: clean and every level, with the'
    ' prediction and the reference) of the N worst subjects of each family in'
    ' OUT/worst, for the report.',
)
@progress_option()
@click.option(
    '--verify',
    type=click.Choice(VERIFY_MODES),
    default=None,
    help='Check each image/label against manifest.csv before use: sha256 (size and'
    ' SHA-256) or size (size and NIfTI completeness, for huge cohorts)'
    f' [default: ${VERIFY_ENV} or sha256].',
)
def run(
    model: str | None,
    nnunet: Path | None,
    fold: str,
    checkpoint: str,
    weights: Path | None,
    data: Path,
    split: str,
    out: Path,
    families: tuple[str, ...] | None,
    levels: tuple[float, ...] | None,
    seed: int,
    severity_protocol: str,
    name: str | None,
    hu_range: tuple[float, float] | None,
    patch_size: tuple[int, int, int] | None,
    overlap: tuple[int, int, int] | None,
    batch_size: int,
    device: str,
    amp: bool,
    aggregation_device: str,
    shard: str | None,
    save_worst: int,
    progress: bool,
    verify: str | None,
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
    from .api import stress_test_model
    from .api import stress_test_nnunet

    if (model is None) == (nnunet is None):
        raise click.UsageError('pass either --model or --nnunet')
    device = str(resolve_device(device))
    common = {
        'split': split,
        'families': families,
        'levels': levels,
        'seed': seed,
        'protocol': severity_protocol,
        'name': name,
        'hu_range': hu_range,
        'device': device,
        'save_worst': save_worst,
        'progress': progress,
        'verify': verify,
        'announce': lambda line: click.echo(line, err=True),
    }
    if nnunet is not None:
        given = [
            f'--{k}'
            for k, v in {
                'weights': weights,
                'patch-size': patch_size,
                'overlap': overlap,
                'amp': amp,
            }.items()
            if v
        ]
        if given:
            raise click.UsageError(
                f'{", ".join(given)} cannot be used with --nnunet'
                " (nnU-Net's plans set them)"
            )
    with _user_errors(out):
        common['shard'] = parse_shard(shard) if shard else shard_from_environment()
        if nnunet is not None:
            outcome = stress_test_nnunet(
                nnunet, data, out, fold=fold, checkpoint=checkpoint, **common
            )
        else:
            outcome = stress_test_model(
                model,
                data,
                out,
                weights=weights,
                patch_size=patch_size,
                overlap=overlap,
                batch_size=batch_size,
                amp=amp,
                aggregation_device=aggregation_device,
                **common,
            )
    _echo_outcome(outcome)


@contextmanager
def _user_errors(out: Path) -> Iterator[None]:
    """Turn what a run raises on bad input into ``Error: ...`` (exit 1)."""
    from .runner import ModelError

    try:
        yield
    except UnicodeDecodeError as error:
        raise _fail(_damaged(error, out)) from error
    except (FileNotFoundError, ValueError, TypeError, ImportError, ModelError) as error:
        raise _fail(error) from error
    except OSError as error:  # e.g. disk full while writing the results
        raise _fail(_os_error(error, out)) from error


def _echo_outcome(outcome) -> None:
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
        summary = write_summary(_load(merged), out)
    except UnicodeDecodeError as error:
        raise _fail(_damaged(error, Path(' '.join(map(str, inputs))))) from error
    except (FileNotFoundError, ValueError) as error:
        raise _fail(error) from error
    except OSError as error:
        raise _fail(_os_error(error, out)) from error
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
@seed_option(help='Seed of the bootstrap and the permutation tests.')
@click.option('--figures/--no-figures', default=True, help='Draw the PNG figures.')
@click.option(
    '--spacing',
    callback=_spacing,
    metavar='MM|X,Y,Z',
    help='Voxel spacing in mm of the severity table in clinical units [default:'
    " the median of the dataset's manifest].",
)
def report(
    results: tuple[Path, ...],
    out: Path,
    baseline: str | None,
    focus: str | None,
    resamples: int,
    seed: int,
    figures: bool,
    spacing: tuple[float, float, float] | None,
) -> None:
    """Write report.md, report.html and figures from RESULTS (folders or CSVs).

    \b
    Tables: summary with 95% bootstrap CIs (paper Table 5), improvement
    (Table 6), per family (Tables 7-8), per level, high-severity wins
    (Table 9), per organ with volume errors (Table 10), mCE and paired tests
    vs --baseline. Figures (matplotlib, the "plot" extra): heatmap (Fig. 4),
    Dice vs severity (Fig. 5), clean vs corrupted (Fig. 3), organ bars.
    Also shown: the `ramp-stress gate` verdicts recorded in each run's
    summary.json, the severities in HU / mm, and the failure pictures of runs
    made with --save-worst. report.html is the same report as one page
    (inline style, the PNGs beside it, no JavaScript).
    """
    import json

    from .report import write_report

    try:
        files = [find_results(path) for path in results]
        loaded = [_load(path) for path in files]
        gates, pictures = {}, {}
        for file, result in zip(files, loaded, strict=True):
            summary_path = file.parent / 'summary.json'
            if summary_path.is_file():
                summary = json.loads(summary_path.read_text(encoding='utf-8'))
                if isinstance(summary, dict) and summary.get('gate'):
                    gates[result.model] = summary['gate']
            if (file.parent / 'worst').is_dir():
                pictures[result.model] = file.parent
        path = write_report(
            loaded,
            out,
            baseline=baseline,
            focus=focus,
            figures=figures,
            resamples=resamples,
            seed=seed,
            sources=[str(p) for p in files],
            gates=gates,
            pictures=pictures,
            spacing=spacing,
        )
    except (FileNotFoundError, ValueError, ImportError) as error:
        raise _fail(error) from error
    except OSError as error:
        raise _fail(_os_error(error, out)) from error
    click.echo(f'Report: {path} and {path.with_name("report.html")}')


class _BadInput(click.ClickException):
    """Bad input to ``ramp-stress gate``: exit code 2, like a usage error."""

    exit_code = 2


@main.command(context_settings=CONTEXT)
@click.argument('results', nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    '--require',
    'requirements',
    multiple=True,
    metavar='REQUIREMENT',
    help='A requirement such as "worst_case>=0.5", "gap<=0.1", "family:blur>=0.7",'
    ' "family:blur@0.25>=0.6", "level:0.25>=0.6" or "organ:kidney:corrupted>=0.8"'
    ' (repeatable; added to those of --config).',
)
@click.option(
    '--config',
    'config_path',
    type=click.Path(dir_okay=False, path_type=Path),
    help='TOML gate file: require = [...], and optionally confidence, resamples,'
    ' seed (top level or in a [gate] table).',
)
@click.option(
    '--confidence',
    type=float,
    help='Check each requirement on the bound of the two-sided bootstrap interval'
    ' at this level (e.g. 0.95): the lower bound for >=, the upper for <='
    ' [default: the point estimate].',
)
@click.option(
    '--resamples',
    type=click.IntRange(min=100),
    help='Bootstrap resamples [default: 2000].',
)
@click.option('--seed', type=click.IntRange(min=0), help='Bootstrap seed [default: 0].')
@click.option(
    '--write/--no-write',
    default=True,
    show_default=True,
    help="Record the verdict under 'gate' in each results folder's summary.json.",
)
def gate(
    results: tuple[Path, ...],
    requirements: tuple[str, ...],
    config_path: Path | None,
    confidence: float | None,
    resamples: int | None,
    seed: int | None,
    write: bool,
) -> None:
    """Pass/fail requirements on stress-test RESULTS (folders or CSV files).

    \b
    Exit status: 0 when every requirement holds for every model, 1 when one
    fails, 2 on bad input (syntax, unknown family or organ, missing or
    incomplete results). Requirement syntax: METRIC OP NUMBER with
      METRIC  clean | corrupted | gap | worst_case        (the model)
              family:NAME | family:NAME@LEVEL | level:LEVEL  (Dice)
              organ:NAME[:clean|corrupted|gap|worst_case]
      OP      >= | > | <= | <
    """
    from .gate import GateError
    from .gate import evaluate
    from .gate import parse_requirements
    from .gate import read_config
    from .gate import verdict_header
    from .gate import verdict_rows
    from .metrics import BOOTSTRAP_RESAMPLES
    from .metrics import check_confidence
    from .store import SUMMARY_JSON
    from .store import write_json

    try:
        config = read_config(config_path) if config_path is not None else {}
        parsed = parse_requirements([*config.get('require', []), *requirements])
        if confidence is not None:
            try:
                confidence = check_confidence(confidence)
            except ValueError as error:
                raise GateError(f'--confidence: {error}') from error
        else:
            confidence = config.get('confidence')
        resamples = resamples or config.get('resamples', BOOTSTRAP_RESAMPLES)
        seed = config.get('seed', 0) if seed is None else seed
        files = [find_results(path) for path in results]
        loaded = [load_results(path) for path in files]
        verdicts = [
            evaluate(
                result, parsed, confidence=confidence, resamples=resamples, seed=seed
            )
            for result in loaded
        ]
    except (GateError, FileNotFoundError, ValueError) as error:
        raise _BadInput(str(error)) from error
    for path, verdict in zip(files, verdicts, strict=True):
        header = verdict_header(verdict)
        rows = verdict_rows(verdict)
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        click.echo(f'{verdict["model"]} ({path}):')
        for row in [header, *rows]:
            click.echo(
                '  ' + '  '.join(c.ljust(w) for c, w in zip(row, widths, strict=True))
            )
        if write:
            summary_path = path.parent / SUMMARY_JSON
            if summary_path.is_file():
                import json

                summary = json.loads(summary_path.read_text(encoding='utf-8'))
                summary['gate'] = verdict
                write_json(summary_path, summary)
    failed = [v['model'] for v in verdicts if not v['passed']]
    total = sum(len(v['requirements']) for v in verdicts)
    if failed:
        click.echo(f'Gate: FAIL ({", ".join(failed)})')
        raise SystemExit(1)
    click.echo(f'Gate: PASS ({total} requirement check(s))')


@main.command(context_settings=CONTEXT)
@click.option(
    '--hu-range',
    nargs=2,
    type=float,
    default=(-200.0, 300.0),
    show_default=True,
    metavar='LOW HIGH',
    help="HU window of the normalisation (the model's).",
)
@click.option(
    '--spacing',
    callback=_spacing,
    default='1',
    show_default=True,
    metavar='MM|X,Y,Z',
    help='Voxel spacing in mm, in the image axis order (e.g. 1.5,1.5,3).',
)
@click.option(
    '--families',
    multiple=True,
    callback=family_names,
    help='Corruption families, comma-separated or repeated'
    " [default: the paper's pool].",
)
@click.option(
    '--levels',
    multiple=True,
    callback=_levels,
    help='Severity levels, comma-separated [default: 0.05,0.1,0.15,0.2,0.25].',
)
@click.option('--json', 'as_json', is_flag=True, help='Print JSON instead of a table.')
def levels(
    hu_range: tuple[float, float],
    spacing: tuple[float, float, float],
    families: tuple[str, ...] | None,
    levels: tuple[float, ...] | None,
    as_json: bool,
) -> None:
    """Severity levels in clinical units (HU, mm, %) for a window and spacing.

    \b
    Intensities scale with the window width (noise std, shifts, stripe
    offsets in HU); Gaussian sigmas become a FWHM in mm per axis (2.3548
    sigma x spacing); down-sampling gives an effective voxel size (slice
    thickness) in mm; relative parameters are in %. Per-axis values are
    printed X x Y x Z.

    \b
    Example:
      ramp-stress levels --hu-range -200 300 --spacing 1.5,1.5,3
    """
    import json

    from .predictors import parse_hu_range
    from .units import physical_table
    from .units import table_rows

    try:
        parse_hu_range(hu_range, 'LOW HIGH')
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--hu-range'") from error
    rows = physical_table(
        hu_range, spacing, families=families, levels=levels or SEVERITY_LEVELS
    )
    if as_json:
        data = {
            'hu_range': list(hu_range),
            'spacing': list(spacing),
            'rows': [
                {
                    'family': row['family'],
                    'quantity': row['quantity'],
                    'unit': row['unit'],
                    'values': {f'{k:g}': v for k, v in row['values'].items()},
                    'parameters': {f'{k:g}': v for k, v in row['parameters'].items()},
                }
                for row in rows
            ],
        }
        click.echo(json.dumps(data, indent=1))
        return
    header, body = table_rows(rows)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    click.echo(
        f'HU window {hu_range[0]:g} to {hu_range[1]:g}, spacing'
        f' {" x ".join(f"{s:g}" for s in spacing)} mm'
    )
    for row in [header, *body]:
        click.echo('  '.join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
