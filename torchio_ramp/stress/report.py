"""The stress-test report: ``report.md`` with the paper's tables, and figures.

:func:`write_report` takes results of one or more models (on one or more
datasets) and writes, per dataset: Table 5 (with 95% bootstrap CIs), Table 6,
per-family Tables 7-8 with the heatmap of Fig. 4, per-level Dice with the
curves of Fig. 5, the clean-vs-corrupted scatter of Fig. 3, Table 9
(high-severity wins), Table 10 per model with volume errors and organ bars,
and, against a baseline, mCE and paired tests. Figures need matplotlib (the
``plot`` extra); they are drawn on the Agg canvas, without ``pyplot``, so
writing a report never changes the caller's matplotlib backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from .compare import Comparison
from .compare import compare
from .compare import corruption_error_table
from .compare import default_focus
from .compare import family_table
from .compare import group_by_dataset
from .compare import high_severity_wins
from .compare import improvement_table
from .compare import level_table
from .compare import organ_table
from .compare import paired_table
from .compare import summary_table
from .metrics import BOOTSTRAP_RESAMPLES
from .metrics import Estimate
from .results import HIGH_SEVERITY
from .results import StressResults
from .store import write_atomic
from .store import write_json

REPORT_MD = 'report.md'
REPORT_HTML = 'report.html'

SYNTHETIC_WARNING = (
    '> **SYNTHETIC DATA.** These results were computed on phantom CTs'
    ' (`ramp-prep synth`), not on patients. They exercise the pipeline and say'
    ' nothing about clinical robustness.'
)


def _pyplot_free_figure():
    """``matplotlib.figure.Figure`` (Agg canvas), or a clear ImportError."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        message = (
            'the report figures need matplotlib: pip install "torchio-ramp[plot]"'
            ' (or pass --no-figures for the tables only)'
        )
        raise ImportError(message) from error
    return Figure, FigureCanvasAgg


# Markdown ----------------------------------------------------------------------


def _number(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    return f'{value:.{digits}f}'


def _signed(value: float) -> str:
    if math.isnan(value):
        return 'n/a'
    return f'{value:+.3f}'


def _ci(estimate: Estimate, digits: int = 3) -> str:
    if math.isnan(estimate.low):
        return _number(estimate.value, digits)
    return (
        f'{_number(estimate.value, digits)} '
        f'[{_number(estimate.low, digits)}, {_number(estimate.high, digits)}]'
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join(['---'] * len(header)) + '|',
    ]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]+', '_', text)


def _title(family: str) -> str:
    from ..families import FAMILIES

    return FAMILIES[family].title if family in FAMILIES else family


# Figures -----------------------------------------------------------------------


def _save(figure: Any, canvas_class: Any, path: Path) -> Path:
    canvas_class(figure)
    figure.savefig(path, dpi=120)
    return path


def plot_heatmap(comparison: Comparison, path: Path) -> Path:
    """Fig. 4: mean Dice over levels, families (rows) x models (columns).

    Example:
        >>> comparison = compare([load_results('results/ramp')])  # doctest: +SKIP
        >>> plot_heatmap(comparison, Path('heatmap.png'))  # doctest: +SKIP
        PosixPath('heatmap.png')
    """
    Figure, Canvas = _pyplot_free_figure()
    rows = family_table(comparison, comparison.names[0])
    names = comparison.names
    values = [[row['dice'][n] for n in names] for row in rows]
    size = (3.8 + 1.1 * len(names), 1.4 + 0.42 * len(rows))
    figure = Figure(figsize=size, layout='constrained')
    axes = figure.add_subplot()
    image = axes.imshow(values, vmin=0, vmax=1, cmap='viridis', aspect='auto')
    axes.set_xticks(range(len(names)), names, rotation=30, ha='right')
    axes.set_yticks(range(len(rows)), [_title(r['family']) for r in rows])
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if not math.isnan(value):
                color = 'black' if value > 0.6 else 'white'
                axes.text(j, i, f'{value:.2f}', ha='center', va='center', color=color)
    figure.colorbar(image, ax=axes, label='mean Dice')
    figure.suptitle(f'Dice per corruption family\n({comparison.dataset})')
    return _save(figure, Canvas, path)


def plot_severity(comparison: Comparison, path: Path) -> Path:
    """Fig. 5: mean Dice against severity level (0 = clean), one line per model.

    Example:
        >>> comparison = compare([load_results('results/ramp')])  # doctest: +SKIP
        >>> plot_severity(comparison, Path('severity.png'))  # doctest: +SKIP
        PosixPath('severity.png')
    """
    Figure, Canvas = _pyplot_free_figure()
    rows = level_table(comparison)
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    levels = [row['level'] for row in rows]
    for name in comparison.names:
        axes.plot(levels, [row['dice'][name] for row in rows], marker='o', label=name)
    axes.set_xlabel('severity level (0 = clean)')
    axes.set_ylabel('mean Dice')
    axes.set_ylim(0, 1.02)
    axes.set_xticks(levels)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(f'Dice vs severity ({comparison.dataset})')
    figure.tight_layout()
    return _save(figure, Canvas, path)


def plot_clean_vs_corrupted(comparison: Comparison, path: Path) -> Path:
    """Fig. 3: clean Dice (x) against mean corrupted Dice (y), with 95% CIs.

    Example:
        >>> comparison = compare([load_results('results/ramp')])  # doctest: +SKIP
        >>> plot_clean_vs_corrupted(comparison, Path('clean-vs-corrupted.png'))  # doctest: +SKIP
        PosixPath('clean-vs-corrupted.png')
    """  # noqa: E501
    Figure, Canvas = _pyplot_free_figure()
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color='grey', linestyle='--', linewidth=1)
    for row in summary_table(comparison):
        clean, corrupted = row['clean'], row['corrupted']
        x_error = [[clean.value - clean.low], [clean.high - clean.value]]
        y_error = [
            [corrupted.value - corrupted.low],
            [corrupted.high - corrupted.value],
        ]
        if math.isnan(clean.low) or math.isnan(corrupted.low):
            x_error = y_error = None
        axes.errorbar(
            clean.value,
            corrupted.value,
            xerr=x_error,
            yerr=y_error,
            marker='o',
            capsize=3,
            label=row['model'],
        )
        axes.annotate(
            row['model'],
            (clean.value, corrupted.value),
            xytext=(5, 5),
            textcoords='offset points',
        )
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel('clean Dice')
    axes.set_ylabel('mean corrupted Dice')
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(f'Clean vs corrupted ({comparison.dataset})')
    figure.tight_layout()
    return _save(figure, Canvas, path)


def plot_organs(comparison: Comparison, path: Path) -> Path:
    """Per-organ bars: mean corrupted Dice per model, clean Dice as a tick.

    Example:
        >>> comparison = compare([load_results('results/ramp')])  # doctest: +SKIP
        >>> plot_organs(comparison, Path('organs.png'))  # doctest: +SKIP
        PosixPath('organs.png')
    """
    Figure, Canvas = _pyplot_free_figure()
    names = comparison.names
    tables = {n: organ_table(comparison, n) for n in names}
    organs = [row['organ'] for row in tables[names[0]]]
    width = 0.8 / len(names)
    figure = Figure(figsize=(2 + 1.2 * len(organs), 4))
    axes = figure.add_subplot()
    for j, name in enumerate(names):
        positions = [i - 0.4 + width * (j + 0.5) for i in range(len(organs))]
        corrupted = [row['corrupted'].value for row in tables[name]]
        clean = [row['clean'].value for row in tables[name]]
        axes.bar(positions, corrupted, width=width * 0.9, label=f'{name} corrupted')
        axes.scatter(positions, clean, marker='_', s=200, color='black', zorder=3)
    axes.scatter([], [], marker='_', s=200, color='black', label='clean')
    axes.set_xticks(range(len(organs)), organs)
    axes.set_ylim(0, 1.02)
    axes.set_ylabel('Dice')
    axes.legend(fontsize='small')
    axes.set_title(f'Per-organ Dice ({comparison.dataset})')
    figure.tight_layout()
    return _save(figure, Canvas, path)


PLOTS = {
    'heatmap': plot_heatmap,
    'severity': plot_severity,
    'clean-vs-corrupted': plot_clean_vs_corrupted,
    'organs': plot_organs,
}
"""Figure kind -> drawing function ``(comparison, path) -> path``; files are
``<kind>-<dataset>.png``."""


# Report ------------------------------------------------------------------------


def _section(
    comparison: Comparison,
    focus: str,
    baseline: str | None,
    figures: dict[str, str],
) -> list[str]:
    names = comparison.names
    first = comparison.models[0]
    parts = [f'## Dataset `{comparison.dataset}`', '']
    if comparison.synthetic:
        parts += ['**Synthetic data (phantoms).**', '']
    parts.append(
        f'{len(first.subjects)} subjects x {len(first.corrupted_settings)}'
        f' corrupted settings ({len(_families_of(comparison))} families,'
        f' levels {", ".join(f"{v:g}" for v in _levels_of(comparison))})'
        f' + clean; models: {", ".join(f"`{n}`" for n in names)}.'
        f' 95% CIs: percentile bootstrap over subjects, {comparison.resamples}'
        f' resamples, seed {comparison.seed}.'
    )
    parts.append('')
    parts += [f'- Note: {note}' for note in comparison.notes]
    if comparison.notes:
        parts.append('')

    parts += ['### Summary (Table 5)', '']
    parts.append(
        _table(
            ['Model', 'Clean Dice', 'Mean corrupted Dice', 'Robustness gap',
             'Worst-case Dice'],
            [
                [f'`{r["model"]}`', _ci(r['clean']), _ci(r['corrupted']),
                 _ci(r['gap']), _ci(r['worst_case'])]
                for r in summary_table(comparison)
            ],
        )
    )  # fmt: skip
    parts.append('')
    if 'clean-vs-corrupted' in figures:
        parts += [f'![Clean vs corrupted Dice]({figures["clean-vs-corrupted"]})', '']

    if len(names) > 1:
        parts += [f'### Improvement of `{focus}` (Table 6)', '']
        parts.append(
            _table(
                ['Comparison', 'Mean corrupted Dice gain', 'Gap reduction',
                 'Relative gap reduction'],
                [
                    [f'`{focus}` vs {r["versus"]} (`{r["other"]}`)',
                     _signed(r['dice_gain']), _number(r['gap_reduction']),
                     'n/a' if math.isnan(r['relative_gap_reduction'])
                     else f'{100 * r["relative_gap_reduction"]:.1f}%']
                    for r in improvement_table(comparison, focus, baseline)
                ],
            )
        )  # fmt: skip
        parts.append('')

    parts += ['### Per corruption family (Tables 7-8, Fig. 4)', '']
    parts.append('Mean Dice over the severity levels of each family.')
    parts.append('')
    families = family_table(comparison, focus)
    header = ['Corruption', *[f'`{n}`' for n in names]]
    if len(names) > 1:
        header += ['Best other', f'Difference (`{focus}` - best other)']
    body = []
    for row in families:
        cells = [_title(row['family'])]
        cells += [_number(row['dice'][n]) for n in names]
        if len(names) > 1:
            cells += [
                f'{_number(row["best_other_dice"])} (`{row["best_other"]}`)',
                _signed(row['difference']),
            ]
        body.append(cells)
    parts += [_table(header, body), '']
    if 'heatmap' in figures:
        parts += [f'![Corruption x model heatmap]({figures["heatmap"]})', '']

    parts += ['### Per severity level (Fig. 5)', '']
    levels = level_table(comparison)
    parts.append(
        _table(
            ['Level', *[f'`{n}`' for n in names]],
            [
                ['clean' if row['level'] == 0 else f'{row["level"]:g}',
                 *[_number(row['dice'][n]) for n in names]]
                for row in levels
            ],
        )
    )  # fmt: skip
    parts.append('')
    if 'severity' in figures:
        parts += [f'![Dice vs severity]({figures["severity"]})', '']

    wins, total = high_severity_wins(comparison, HIGH_SEVERITY)
    if len(names) > 1 and total:
        parts += [f'### High-severity wins (Table 9, level >= {HIGH_SEVERITY:g})', '']
        parts.append(
            f'Settings (of {total}) in which each model has the highest mean'
            ' Dice; a tie counts for every tied model.'
        )
        parts.append('')
        parts.append(_table([f'`{n}`' for n in names], [[str(wins[n]) for n in names]]))
        parts.append('')

    parts += ['### Per organ (Table 10)', '']
    parts.append(
        'Organs the dataset annotates. Volume error: mean absolute difference'
        ' between predicted and reference volume, in mL.'
    )
    parts.append('')
    for name in names:
        parts += [f'`{name}`:', '']
        parts.append(
            _table(
                ['Organ', 'Clean Dice', 'Corrupted Dice', 'Gap', 'Worst-case Dice',
                 'Volume error clean (mL)', 'Volume error corrupted (mL)'],
                [
                    [r['organ'], _ci(r['clean']), _ci(r['corrupted']),
                     _ci(r['gap']), _ci(r['worst_case']),
                     _ci(r['volume_error_clean_ml'], 1),
                     _ci(r['volume_error_corrupted_ml'], 1)]
                    for r in organ_table(comparison, name)
                ],
            )
        )  # fmt: skip
        parts.append('')
    if 'organs' in figures:
        parts += [f'![Per-organ Dice]({figures["organs"]})', '']

    if baseline is not None and len(names) > 1:
        rows = corruption_error_table(comparison, baseline)
        families = [row['family'] for row in family_table(comparison, focus)]
        parts += [f'### Corruption error vs `{baseline}` (mCE)', '']
        parts.append(
            'CE_f = sum over levels of (1 - Dice_model) / sum over levels of'
            ' (1 - Dice_baseline); mCE = mean over families (Hendrycks &'
            ' Dietterich, 2019, with 1 - Dice as the error). Relative mCE uses'
            ' Dice_clean - Dice instead of 1 - Dice. Below 1: fewer errors than'
            ' the baseline.'
        )
        parts.append('')
        parts.append(
            _table(
                ['Model', 'mCE', 'Relative mCE',
                 *[_title(f) for f in families]],
                [
                    [f'`{r["model"]}`', _number(r['mce']),
                     _number(r['relative_mce']),
                     *[_number(r['per_family'][f], 2) for f in families]]
                    for r in rows
                ],
            )
        )  # fmt: skip
        parts.append('')
        parts += [f'### Paired tests vs `{baseline}`', '']
        parts.append(
            'Two-sided sign-flip permutation test on per-subject differences'
            ' (model - baseline) of clean, mean corrupted and worst-case subject'
            ' Dice; 95% bootstrap CI of the mean difference.'
        )
        parts.append('')
        parts.append(
            _table(
                ['Model', 'Metric', 'Mean difference [95% CI]', 'p-value', 'n',
                 'Method'],
                [
                    [f'`{r["model"]}`', r['metric'].replace('_', '-'),
                     _ci(r['test'].difference), _p(r['test'].p_value),
                     str(r['test'].n), r['test'].method]
                    for r in paired_table(comparison, baseline)
                ],
            )
        )  # fmt: skip
        parts.append('')
    return parts


def _p(value: float) -> str:
    if math.isnan(value):
        return 'n/a'
    return f'{value:.4f}' if value >= 1e-4 else f'{value:.1e}'


def _families_of(comparison: Comparison) -> list[str]:
    """Families of the compared settings."""
    settings = comparison.models[0].corrupted_settings
    return list(dict.fromkeys(s.family for s in settings))


def _levels_of(comparison: Comparison) -> list[float]:
    """Levels of the compared settings."""
    settings = comparison.models[0].corrupted_settings
    return list(dict.fromkeys(s.level for s in settings))


def _gate_section(gates: Mapping[str, Mapping[str, Any]]) -> list[str]:
    from .gate import verdict_header
    from .gate import verdict_rows

    parts = ['## Deployment gate', '']
    for model, verdict in gates.items():
        confidence = verdict.get('confidence')
        how = (
            'point estimates'
            if confidence is None
            else f'the {100 * confidence:g}% bootstrap bound'
        )
        result = 'PASS' if verdict['passed'] else 'FAIL'
        parts += [
            f'**`{model}`: {result}** (`ramp-stress gate`, checked on {how}).',
            '',
        ]
        parts.append(_table(verdict_header(verdict), verdict_rows(verdict)))
        parts.append('')
    return parts


def _manifest_spacing(results: StressResults) -> tuple[float, float, float] | None:
    """Median voxel spacing of the run's dataset (its manifest), if readable."""
    import csv
    import statistics

    for session in results.header.get('sessions', []):
        manifest = Path(str(session.get('data', ''))) / 'manifest.csv'
        if not manifest.is_file():
            continue
        try:
            with manifest.open(newline='', encoding='utf-8') as file:
                spacings = [
                    [float(v) for v in row['spacing'].split('x')]
                    for row in csv.DictReader(file)
                ]
        except (OSError, KeyError, ValueError):
            continue
        if spacings and all(len(s) == 3 for s in spacings):
            axes = [statistics.median(s[i] for s in spacings) for i in range(3)]
            return (axes[0], axes[1], axes[2])
    return None


def _units_section(
    comparison: Comparison, spacing: Sequence[float] | None
) -> list[str]:
    from .units import physical_table
    from .units import table_rows

    first = comparison.models[0]
    hu_range = first.header.get('arguments', {}).get('hu_range')
    if hu_range is None:
        return []
    if spacing is None:
        spacing = _manifest_spacing(first)
    levels = _levels_of(comparison)
    rows = physical_table(
        hu_range, spacing or 1.0, families=_families_of(comparison), levels=levels
    )
    where = (
        f'voxel spacing {" x ".join(f"{v:g}" for v in spacing)} mm'
        if spacing
        else 'voxel spacing unknown: mm values are per 1 mm voxel (pass --spacing)'
    )
    header, body = table_rows(rows)
    header = ['Corruption', 'Quantity', 'Unit', *header[3:]]
    body = [[_title(row[0]), *row[1:]] for row in body]
    return [
        '### Severity in clinical units',
        '',
        f"HU window {hu_range[0]:g} to {hu_range[1]:g} (the runs'), {where};"
        ' per-axis values X x Y x Z (`ramp-stress levels`).',
        '',
        _table(header, body),
        '',
    ]


def _pictures_section(
    comparison: Comparison,
    pictures: Mapping[str, str | Path],
    out: Path,
) -> list[str]:
    from .pictures import draw_strip
    from .pictures import load_worst

    parts: list[str] = []
    for model in comparison.names:
        if model not in pictures:
            continue
        found = load_worst(Path(pictures[model]))
        if not found:
            continue
        if not parts:
            parts += [
                '### Failure pictures',
                '',
                'Worst subjects of each family (lowest mean Dice over its'
                ' levels; `ramp-stress run --save-worst`): the slice with the'
                ' most labelled voxels, clean then each level, prediction in'
                ' colour, reference outlined in white.',
                '',
            ]
        parts += [f'#### `{model}`', '']
        for family in _families_of(comparison):
            if family not in found:
                continue
            name = (
                f'worst-{_slug(comparison.dataset)}-{_slug(model)}-{_slug(family)}.png'
            )
            draw_strip(found[family], out / name, f'{model}: {_title(family)}')
            parts += [f'![{model}: {_title(family)}]({name})', '']
    return parts


def write_report(
    results: Sequence[StressResults],
    out: str | Path,
    *,
    baseline: str | None = None,
    focus: str | None = None,
    figures: bool = True,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    sources: Sequence[str] | None = None,
    gates: Mapping[str, Mapping[str, Any]] | None = None,
    pictures: Mapping[str, str | Path] | None = None,
    spacing: Sequence[float] | None = None,
    html: bool = True,
) -> Path:
    """Write ``report.md``, ``report.html``, ``comparison.json`` and the PNG
    figures to ``out``.

    Args:
        results: Results of one or more models, on one or more datasets
            (each dataset gets its own section and figures).
        out: Report folder (created).
        baseline: Model name for Table 6, mCE and paired tests.
        focus: Model compared with the best other one in Tables 6-7
            (default: the model with the highest mean corrupted Dice).
        figures: Draw the PNG figures (needs matplotlib).
        resamples: Bootstrap resamples of the confidence intervals.
        seed: Seed of the bootstrap and the paired tests.
        sources: Where the results came from, listed in the report.
        gates: ``ramp-stress gate`` verdicts per model name (from each
            run's ``summary.json``), shown first.
        pictures: Results folder per model name whose ``worst/`` failure
            pictures (``ramp-stress run --save-worst``) are drawn as one
            strip per family (needs ``figures``).
        spacing: Voxel spacing in mm for the table of severities in
            clinical units (default: the median spacing of the dataset's
            manifest, when the run's data folder is still there).
        html: Also write the self-contained ``report.html``.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: If ``baseline`` or ``focus`` is not a model of some
            dataset, or two results of a dataset share a model name.
        ImportError: If ``figures`` is set and matplotlib is missing.

    Example:
        >>> from torchio_ramp.stress.store import load_results
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> write_report(runs, 'report', baseline='base')  # doctest: +SKIP
        PosixPath('report/report.md')
    """  # noqa: E501
    if not results:
        raise ValueError('no results to report')
    for result in results:
        if not result.subjects:
            message = (
                f'the results of {result.model!r} on {result.dataset!r} hold no'
                ' subject: nothing to report (run ramp-stress run first)'
            )
            raise ValueError(message)
    if figures:
        _pyplot_free_figure()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = group_by_dataset(results)
    every_name = {r.model for r in results}
    for name, role in ((baseline, '--baseline'), (focus, '--focus')):
        if name is not None and name not in every_name:
            message = f'{role} {name!r} is not one of the models {sorted(every_name)}'
            raise ValueError(message)
    lines = ['# Robustness stress test report', '']
    if any(r.synthetic for r in results):
        lines += [SYNTHETIC_WARNING, '']
    lines.append(
        f'Written by `ramp-stress report` (torchio-ramp {__version__}). Metric'
        ' definitions: `torchio_ramp.stress.metrics` and the README section'
        ' "Stress-test a model".'
    )
    lines.append('')
    if sources:
        lines += ['Results:', '']
        lines += [f'- `{source}`' for source in sources]
        lines.append('')
    if gates:
        lines += _gate_section(gates)
    data: dict[str, Any] = {}
    for dataset, group in groups.items():
        comparison = compare(group, resamples=resamples, seed=seed)
        names = comparison.names
        dataset_baseline = baseline if baseline in names else None
        dataset_focus = focus if focus in names else default_focus(comparison)
        drawn: dict[str, str] = {}
        if figures:
            for kind, draw in PLOTS.items():
                name = f'{kind}-{_slug(dataset)}.png'
                draw(comparison, out / name)
                drawn[kind] = name
        lines += _section(comparison, dataset_focus, dataset_baseline, drawn)
        lines += _units_section(comparison, spacing)
        if figures and pictures:
            lines += _pictures_section(comparison, pictures, out)
        data[dataset] = {
            'models': comparison.summaries,
            'notes': comparison.notes,
            'focus': dataset_focus,
            'baseline': dataset_baseline,
        }
    path = out / REPORT_MD
    text = '\n'.join(lines).rstrip() + '\n'
    write_atomic(path, text)
    if html:
        from .html import page

        write_atomic(out / REPORT_HTML, page(text, 'Robustness stress test report'))
    write_json(out / 'comparison.json', data)
    return path
