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
from typing import Any

import click
from click.core import ParameterSource

from .. import __version__
from ..cli_options import family_names
from ..cli_options import seed_option
from ..cli_options import size_callback
from ..operators import SEVERITY_LEVELS
from .spec import MODEL
from .spec import NNUNET
from .spec import cli_options
from .spec import from_cli
from .spec import misplaced_options
from .spec import parse_levels
from .store import find_results
from .store import load_results
from .store import merge_shards

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


_spacing = size_callback(kind=float)
"""Click callback of a voxel spacing: ``MM``, ``X,Y,Z`` or ``XxYxZ`` in mm."""

SPACING_METAVAR = 'MM|X,Y,Z|XxYxZ'
"""How a spacing option shows its value in ``--help``."""


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
@cli_options
@click.pass_context
def run(ctx: click.Context, **values: Any) -> None:
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
    from .api import run as run_spec

    if (values['model'] is None) == (values['nnunet'] is None):
        raise click.UsageError('pass either --model or --nnunet')
    kind = MODEL if values['model'] is not None else NNUNET
    given = [
        name
        for name in values
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    ]
    misplaced = misplaced_options(kind, given)
    if misplaced:
        names = ', '.join(f'--{name.replace("_", "-")}' for name in misplaced)
        why = " (nnU-Net's plans set them)" if kind == NNUNET else ''
        raise click.UsageError(f'{names} cannot be used with --{kind}{why}')
    with _user_errors(values['out']):
        spec = from_cli(values)
        outcome = run_spec(spec, announce=lambda line: click.echo(line, err=True))
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
    metavar=SPACING_METAVAR,
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
    from .statistics import BOOTSTRAP_RESAMPLES
    from .statistics import check_confidence
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
    metavar=SPACING_METAVAR,
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
    callback=parse_levels,
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

    from ..model_files import parse_hu_range
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
