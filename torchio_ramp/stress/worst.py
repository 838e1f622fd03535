"""Failure pictures: the worst subjects of each family, kept during a run.

With ``ramp-stress run --save-worst N``, :class:`WorstCases` keeps, for each
corruption family, the ``N`` subjects with the lowest mean Dice over the
family's levels. For each it stores one compressed ``.npz`` (a few hundred
kB at most): the axial slice with the most labelled voxels (the last image
axis) of the clean volume and of the corrupted volume at every level,
the prediction on each, and the reference label. Files live in
``OUT/worst/<family>/<subject>.npz``; a subject that stops being among the
worst ``N`` is deleted, so the folder holds at most ``N`` files per family
(per shard, when shards share ``OUT``). :func:`load_worst` reads them back;
the report draws them (:mod:`torchio_ramp.stress.report.pictures`).
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
