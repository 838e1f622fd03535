"""The report's figures: Figs. 3-5 of the paper and the per-organ bars.

Figures need matplotlib (the ``plot`` extra); they are drawn on the Agg
canvas, without ``pyplot``, so writing a report never changes the caller's
matplotlib backend. :data:`PLOTS` lists every figure of a dataset section.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..compare import Comparison
from ..compare import family_table
from ..compare import level_table
from ..compare import organ_table
from ..compare import summary_table
from .markdown import family_title


def pyplot_free_figure():
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
    Figure, Canvas = pyplot_free_figure()
    rows = family_table(comparison, comparison.names[0])
    names = comparison.names
    values = [[row['dice'][n] for n in names] for row in rows]
    size = (3.8 + 1.1 * len(names), 1.4 + 0.42 * len(rows))
    figure = Figure(figsize=size, layout='constrained')
    axes = figure.add_subplot()
    image = axes.imshow(values, vmin=0, vmax=1, cmap='viridis', aspect='auto')
    axes.set_xticks(range(len(names)), names, rotation=30, ha='right')
    axes.set_yticks(range(len(rows)), [family_title(r['family']) for r in rows])
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
    Figure, Canvas = pyplot_free_figure()
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
    Figure, Canvas = pyplot_free_figure()
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
    Figure, Canvas = pyplot_free_figure()
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
