"""Failure pictures in the report: one strip per family of its worst subjects.

The slices kept by ``ramp-stress run --save-worst`` (:mod:`torchio_ramp.stress.worst`)
become one PNG per family: rows are subjects (worst first), columns clean
then each level, the prediction overlaid in colour and the reference
outlined (:func:`draw_strip`); :func:`pictures_section` draws them and
returns the report's section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..compare import Comparison
from ..worst import load_worst
from .figures import pyplot_free_figure
from .markdown import families_of
from .markdown import family_title
from .markdown import slug

_COLOURS = (
    np.array(
        [
            [0, 0, 0],
            [230, 25, 75],
            [60, 180, 75],
            [255, 225, 25],
            [0, 130, 200],
            [245, 130, 48],
            [145, 30, 180],
            [70, 240, 240],
            [240, 50, 230],
        ],
        dtype=np.float32,
    )
    / 255.0
)


def overlay(
    image: np.ndarray, prediction: np.ndarray, alpha: float = 0.45
) -> np.ndarray:
    """RGB picture: the grey image with the predicted classes in colour.

    Example:
        >>> rgb = overlay(np.full((2, 2), 0.5), np.array([[0, 1], [0, 0]]))
        >>> rgb.shape, rgb[0, 0].tolist() == [0.5, 0.5, 0.5]
        ((2, 2, 3), True)
    """
    grey = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    labels = np.asarray(prediction).astype(np.int64)
    colours = _COLOURS[np.where(labels > 0, (labels - 1) % (len(_COLOURS) - 1) + 1, 0)]
    mask = (labels > 0)[..., None]
    return np.where(mask, (1 - alpha) * rgb + alpha * colours, rgb)


def outline(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2-D mask (inside pixels with an outside 4-neighbour).

    Example:
        >>> mask = np.zeros((5, 5), bool); mask[1:4, 1:4] = True
        >>> int(outline(mask).sum())
        8
    """
    mask = np.asarray(mask, bool)
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _tile(entry: Mapping[str, Any], column: int, scale: int) -> np.ndarray:
    rgb = overlay(
        entry['images'][column].astype(np.float32), entry['predictions'][column]
    )
    rgb[outline(entry['label'] > 0)] = 1.0  # the reference, outlined in white
    return rgb.repeat(scale, axis=0).repeat(scale, axis=1)


def draw_strip(
    entries: Sequence[Mapping[str, Any]],
    path: Path,
    title: str,
    tile: int = 128,
) -> Path:
    """One family's strip: a row per subject, clean then each level.

    The slices (first image axis vertical) are enlarged to about ``tile``
    pixels without interpolation, the prediction overlaid in colour and the
    reference outlined in white; above each row the subject, above each
    panel the level and the subject's Dice there. Drawn as one image, so a
    strip costs a few milliseconds.
    """
    figure_class, canvas = pyplot_free_figure()
    height, width = entries[0]['label'].shape
    scale = max(1, tile // max(height, width))
    gap, band, top = 6, 30, 22
    columns = max(len(e['levels']) for e in entries)
    cell_h, cell_w = height * scale + band, width * scale
    mosaic = np.ones(
        (top + len(entries) * (cell_h + gap), columns * (cell_w + gap) + gap, 3),
        dtype=np.float32,
    )
    labels = []
    for r, entry in enumerate(entries):
        y = top + r * (cell_h + gap) + band
        for c, level in enumerate(entry['levels']):
            x = gap + c * (cell_w + gap)
            mosaic[y : y + height * scale, x : x + cell_w] = _tile(entry, c, scale)
            dice = float(entry['dice'][c])
            text = 'n/a' if math.isnan(dice) else f'{dice:.2f}'
            name = 'clean' if level == 0 else f'level {level:g}'
            labels.append((x, y - 3, f'{name}: Dice {text}', 'normal'))
            if c == 0:
                labels.append((x, y - 16, str(entry['subject']), 'bold'))
    dpi = 100
    figure = figure_class(
        figsize=(mosaic.shape[1] / dpi, mosaic.shape[0] / dpi), dpi=dpi
    )
    canvas(figure)
    axis = figure.add_axes((0, 0, 1, 1))
    axis.imshow(mosaic, interpolation='nearest')
    axis.set_axis_off()
    axis.text(gap, top - 6, title, fontsize=10, weight='bold', va='bottom')
    for x, y, text, weight in labels:
        axis.text(x, y, text, fontsize=7, weight=weight, va='bottom')
    figure.savefig(path, dpi=dpi)
    return path


def pictures_section(
    comparison: Comparison,
    pictures: Mapping[str, str | Path],
    out: Path,
) -> list[str]:
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
        for family in families_of(comparison):
            if family not in found:
                continue
            name = f'worst-{slug(comparison.dataset)}-{slug(model)}-{slug(family)}.png'
            draw_strip(found[family], out / name, f'{model}: {family_title(family)}')
            parts += [f'![{model}: {family_title(family)}]({name})', '']
    return parts
