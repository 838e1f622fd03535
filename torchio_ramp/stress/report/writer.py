"""Write a report folder: ``report.md``, ``report.html``, figures, comparison.

:func:`write_report` takes results of one or more models (on one or more
datasets) and writes, per dataset, the sections of
:mod:`~torchio_ramp.stress.report.markdown`, the figures of
:mod:`~torchio_ramp.stress.report.figures` and the failure pictures of
:mod:`~torchio_ramp.stress.report.pictures`; ``report.html`` is the same text
as one page (:mod:`~torchio_ramp.stress.report.html`).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ... import __version__
from ...files import write_atomic
from ...files import write_json
from ..compare import compare
from ..compare import default_focus
from ..compare import group_by_dataset
from ..results import StressResults
from ..statistics import BOOTSTRAP_RESAMPLES
from .figures import PLOTS
from .figures import pyplot_free_figure
from .html import page
from .markdown import SYNTHETIC_WARNING
from .markdown import dataset_section
from .markdown import gate_section
from .markdown import slug
from .markdown import units_section
from .pictures import pictures_section

REPORT_MD = 'report.md'
"""The report's Markdown file in its folder."""

REPORT_HTML = 'report.html'
"""The same report as one HTML page."""


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
        pyplot_free_figure()
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
        ' definitions: `torchio_ramp.metrics` (per volume),'
        ' `torchio_ramp.stress.statistics` (over subjects) and the stress-testing'
        ' guide.'
    )
    lines.append('')
    if sources:
        lines += ['Results:', '']
        lines += [f'- `{source}`' for source in sources]
        lines.append('')
    if gates:
        lines += gate_section(gates)
    data: dict[str, Any] = {}
    for dataset, group in groups.items():
        comparison = compare(group, resamples=resamples, seed=seed)
        names = comparison.names
        dataset_baseline = baseline if baseline in names else None
        dataset_focus = focus if focus in names else default_focus(comparison)
        drawn: dict[str, str] = {}
        if figures:
            for kind, draw in PLOTS.items():
                name = f'{kind}-{slug(dataset)}.png'
                draw(comparison, out / name)
                drawn[kind] = name
        lines += dataset_section(comparison, dataset_focus, dataset_baseline, drawn)
        lines += units_section(comparison, spacing)
        if figures and pictures:
            lines += pictures_section(comparison, pictures, out)
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
        write_atomic(out / REPORT_HTML, page(text, 'Robustness stress test report'))
    write_json(out / 'comparison.json', data)
    return path
