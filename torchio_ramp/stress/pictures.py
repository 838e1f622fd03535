"""Failure pictures: the worst subjects of each family, kept small on disk.

With ``ramp-stress run --save-worst N``, :class:`WorstCases` keeps, for each
corruption family, the ``N`` subjects with the lowest mean Dice over the
family's levels. For each it stores one compressed ``.npz`` (a few hundred
kB at most): the axial slice with the most labelled voxels (the last image
axis) of the clean volume and of the corrupted volume at every level,
the prediction on each, and the reference label. Files live in
``OUT/worst/<family>/<subject>.npz``; a subject that stops being among the
worst ``N`` is deleted, so the folder holds at most ``N`` files per family
(per shard, when shards share ``OUT``). :func:`draw_strips` turns them into
one PNG per family for the report: rows are subjects (worst first), columns
clean then each level, the prediction overlaid in colour and the reference
outlined.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .protocol import Setting

WORST_DIR = 'worst'
"""Folder of the failure pictures inside a results folder."""

_UNSAFE = re.compile(r'[^A-Za-z0-9._-]')


def _file_name(subject_id: str) -> str:
    return _UNSAFE.sub('_', subject_id) + '.npz'


def central_index(label: torch.Tensor) -> int:
    """Index along the last axis of the slice with the most labelled voxels.

    Example:
        >>> label = torch.zeros(4, 4, 5, dtype=torch.long)
        >>> label[1:3, 1:3, 3] = 2
        >>> central_index(label)
        3
    """
    counts = (label > 0).sum(dim=(0, 1))
    if int(counts.max()) == 0:
        return label.shape[-1] // 2
    return int(counts.argmax())


class SubjectPictures:
    """Collects the slices of one subject while its settings are predicted.

    Args:
        label: Reference label map ``(D, H, W)``.
        families: Families whose pictures are wanted.
    """

    def __init__(self, label: torch.Tensor, families: Sequence[str]):
        self.index = central_index(label)
        self.label = label[..., self.index].to(torch.uint8).cpu().numpy()
        self.families = set(families)
        self.images: dict[Setting, np.ndarray] = {}
        self.predictions: dict[Setting, np.ndarray] = {}

    def observe(
        self, setting: Setting, volume: torch.Tensor, prediction: torch.Tensor
    ) -> None:
        """Keep the slice of one setting (clean, or a wanted family)."""
        if not setting.is_clean and setting.family not in self.families:
            return
        image = volume[0, ..., self.index].detach().to(torch.float16).cpu()
        self.images[setting] = image.numpy()
        slice_ = prediction[..., self.index].to(torch.uint8).cpu()
        self.predictions[setting] = slice_.numpy()


def family_scores(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[float, float]]:
    """Subject Dice (mean over annotated classes) per family and level.

    Example:
        >>> rows = [dict(family='blur', level=0.1, dice=0.5, annotated=True),
        ...         dict(family='blur', level=0.1, dice=0.7, annotated=True)]
        >>> family_scores(rows)
        {'blur': {0.1: 0.6}}
    """
    sums: dict[tuple[str, float], list[float]] = {}
    for row in rows:
        dice = float(row['dice'])
        if row['annotated'] and math.isfinite(dice):
            sums.setdefault((str(row['family']), float(row['level'])), []).append(dice)
    scores: dict[str, dict[float, float]] = {}
    for (family, level), values in sums.items():
        scores.setdefault(family, {})[level] = round(sum(values) / len(values), 12)
    return scores


class WorstCases:
    """The worst ``count`` subjects of each family, on disk (see the module).

    Args:
        folder: ``OUT/worst``.
        count: Subjects kept per family.
        subjects: Subjects of this process (its files may be replaced).

    Example:
        >>> worst = WorstCases(Path('results/worst'), 3, ['s1', 's2'])  # doctest: +SKIP
    """

    def __init__(self, folder: Path, count: int, subjects: Sequence[str]):
        if count < 1:
            raise ValueError(f'save_worst must be a positive integer, not {count}')
        self.folder = Path(folder)
        self.count = count
        self.mine = {_file_name(s) for s in subjects}
        # Scores of the files this process owns, per family (from a resumed run).
        self.kept: dict[str, dict[Path, float]] = {}
        if self.folder.is_dir():
            for path in sorted(self.folder.glob('*/*.npz')):
                if path.name in self.mine:
                    try:
                        with np.load(path) as data:
                            score = float(data['score'])
                    except (OSError, ValueError, KeyError):
                        path.unlink(missing_ok=True)  # a file cut short: redone
                        continue
                    self.kept.setdefault(path.parent.name, {})[path] = score

    def offer(
        self,
        subject_id: str,
        rows: Sequence[Mapping[str, Any]],
        pictures: SubjectPictures,
    ) -> None:
        """Keep this subject's pictures for the families where it is among the worst."""
        scores = family_scores(rows)
        clean = Setting.clean()
        for family, levels in scores.items():
            if family == 'clean' or family not in pictures.families:
                continue
            score = float(np.mean(list(levels.values())))
            kept = self.kept.setdefault(family, {})
            path = self.folder / family / _file_name(subject_id)
            if len(kept) >= self.count:
                worst_kept = max(kept, key=kept.get)
                if score >= kept[worst_kept]:
                    continue
                worst_kept.unlink(missing_ok=True)
                del kept[worst_kept]
            settings = [Setting(family, level) for level in sorted(levels)]
            order = [clean, *settings]
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix('.tmp.npz')
            clean_dice = scores.get('clean', {}).get(0.0, math.nan)
            np.savez_compressed(
                temporary,
                subject=np.array(subject_id),
                family=np.array(family),
                score=np.array(score),
                levels=np.array([0.0, *sorted(levels)]),
                dice=np.array([clean_dice, *(levels[s.level] for s in settings)]),
                images=np.stack([pictures.images[s] for s in order]),
                predictions=np.stack([pictures.predictions[s] for s in order]),
                label=pictures.label,
            )
            temporary.replace(path)
            kept[path] = score


def load_worst(
    folder: Path, count: int | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Failure pictures of a results folder, per family, worst first.

    Args:
        folder: A results folder (holding ``worst/``) or ``worst/`` itself.
        count: Keep at most this many per family (shards may leave more).

    Example:
        >>> load_worst(Path('results/ramp'))  # doctest: +SKIP
        {'blur': [{'subject': 's0003', 'score': 0.41, ...}], ...}
    """
    folder = Path(folder)
    if folder.name != WORST_DIR:
        folder = folder / WORST_DIR
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob('*/*.npz')):
        try:
            with np.load(path) as data:
                entry = {key: data[key] for key in data.files}
        except (OSError, ValueError):
            continue
        entry['subject'] = str(entry['subject'])
        entry['score'] = float(entry['score'])
        found.setdefault(path.parent.name, []).append(entry)
    for family, entries in found.items():
        entries.sort(key=lambda e: (e['score'], e['subject']))
        found[family] = entries[:count] if count else entries
    return found


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
    from .report import _pyplot_free_figure

    figure_class, canvas = _pyplot_free_figure()
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
