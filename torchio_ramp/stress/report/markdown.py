"""The text of the stress-test report: Markdown sections of the paper's tables.

Per dataset (:func:`dataset_section`): Table 5 (with 95% bootstrap CIs),
Table 6, per-family Tables 7-8, per-level Dice, Table 9 (high-severity wins),
Table 10 per model with volume errors and, against a baseline, mCE and paired
tests; the severities in clinical units (:func:`units_section`); the
``ramp-stress gate`` verdicts (:func:`gate_section`). Each section is a list
of lines; :func:`~torchio_ramp.stress.report.writer.write_report` joins them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...families import FAMILIES
from ..compare import Comparison
from ..compare import corruption_error_table
from ..compare import family_table
from ..compare import high_severity_wins
from ..compare import improvement_table
from ..compare import level_table
from ..compare import organ_table
from ..compare import paired_table
from ..compare import summary_table
from ..gate import verdict_header
from ..gate import verdict_rows
from ..results import HIGH_SEVERITY
from ..results import StressResults
from ..statistics import Estimate
from ..units import physical_table
from ..units import table_rows

SYNTHETIC_WARNING = (
    '> **SYNTHETIC DATA.** These results were computed on phantom CTs'
    ' (`ramp-prep synth`), not on patients. They exercise the pipeline and say'
    ' nothing about clinical robustness.'
)


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


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A pipe table."""
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '|'.join(['---'] * len(header)) + '|',
    ]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def slug(text: str) -> str:
    """``text`` with every run of other characters than ``[A-Za-z0-9._-]`` as ``_``."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', text)


def family_title(family: str) -> str:
    """The family's title in the registry (its name if it is not registered)."""
    return FAMILIES[family].title if family in FAMILIES else family


def dataset_section(
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
        f' corrupted settings ({len(families_of(comparison))} families,'
        f' levels {", ".join(f"{v:g}" for v in levels_of(comparison))})'
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
        markdown_table(
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
            markdown_table(
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
        cells = [family_title(row['family'])]
        cells += [_number(row['dice'][n]) for n in names]
        if len(names) > 1:
            cells += [
                f'{_number(row["best_other_dice"])} (`{row["best_other"]}`)',
                _signed(row['difference']),
            ]
        body.append(cells)
    parts += [markdown_table(header, body), '']
    if 'heatmap' in figures:
        parts += [f'![Corruption x model heatmap]({figures["heatmap"]})', '']

    parts += ['### Per severity level (Fig. 5)', '']
    levels = level_table(comparison)
    parts.append(
        markdown_table(
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
        parts.append(
            markdown_table([f'`{n}`' for n in names], [[str(wins[n]) for n in names]])
        )
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
            markdown_table(
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
            markdown_table(
                ['Model', 'mCE', 'Relative mCE',
                 *[family_title(f) for f in families]],
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
            markdown_table(
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


def families_of(comparison: Comparison) -> list[str]:
    """Families of the compared settings."""
    settings = comparison.models[0].corrupted_settings
    return list(dict.fromkeys(s.family for s in settings))


def levels_of(comparison: Comparison) -> list[float]:
    """Levels of the compared settings."""
    settings = comparison.models[0].corrupted_settings
    return list(dict.fromkeys(s.level for s in settings))


def gate_section(gates: Mapping[str, Mapping[str, Any]]) -> list[str]:
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
        parts.append(markdown_table(verdict_header(verdict), verdict_rows(verdict)))
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


def units_section(comparison: Comparison, spacing: Sequence[float] | None) -> list[str]:
    first = comparison.models[0]
    hu_range = first.header.get('arguments', {}).get('hu_range')
    if hu_range is None:
        return []
    if spacing is None:
        spacing = _manifest_spacing(first)
    levels = levels_of(comparison)
    rows = physical_table(
        hu_range, spacing or 1.0, families=families_of(comparison), levels=levels
    )
    where = (
        f'voxel spacing {" x ".join(f"{v:g}" for v in spacing)} mm'
        if spacing
        else 'voxel spacing unknown: mm values are per 1 mm voxel (pass --spacing)'
    )
    header, body = table_rows(rows)
    header = ['Corruption', 'Quantity', 'Unit', *header[3:]]
    body = [[family_title(row[0]), *row[1:]] for row in body]
    return [
        '### Severity in clinical units',
        '',
        f"HU window {hu_range[0]:g} to {hu_range[1]:g} (the runs'), {where};"
        ' per-axis values X x Y x Z (`ramp-stress levels`).',
        '',
        markdown_table(header, body),
        '',
    ]
