"""Validation Dice of a model on whole volumes."""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torchio as tio
from tqdm.auto import tqdm

from ..labels import CLASS_NAMES
from ..metrics import dice_per_class
from ..metrics import subject_dice


@dataclass
class Evaluation:
    """Validation Dice of a model.

    Attributes:
        mean_dice: Mean over subjects of the subject Dice (mean over the
            included classes; see :mod:`torchio_ramp.metrics`).
        class_dice: Mean over subjects of each class's Dice (NaN where no
            subject includes it).
        subjects: ``subject_id`` -> Dice per class.
    """

    mean_dice: float
    class_dice: dict[int, float]
    subjects: dict[str, dict[int, float]]

    @classmethod
    def from_subjects(cls, subjects: Mapping[str, Mapping[int, float]]):
        """Aggregate per-subject Dice (NaN-aware).

        Example:
            >>> nan = float('nan')
            >>> e = Evaluation.from_subjects({'a': {1: 1.0, 2: nan}, 'b': {1: 0.5, 2: 0.0}})
            >>> e.mean_dice, e.class_dice
            (0.625, {1: 0.75, 2: 0.0})
        """  # noqa: E501
        subjects = {key: dict(value) for key, value in subjects.items()}
        scores = [subject_dice(d) for d in subjects.values()]
        scores = [s for s in scores if not math.isnan(s)]
        classes = sorted({c for d in subjects.values() for c in d})
        class_dice = {}
        for c in classes:
            values = [
                d[c] for d in subjects.values() if not math.isnan(d.get(c, math.nan))
            ]
            class_dice[c] = sum(values) / len(values) if values else math.nan
        mean = sum(scores) / len(scores) if scores else math.nan
        return cls(mean, class_dice, subjects)


def evaluate(
    predictor: Callable[[torch.Tensor], torch.Tensor],
    dataset: tio.SubjectsDataset,
    *,
    classes: Sequence[int] = tuple(CLASS_NAMES),
    annotated: Sequence[int] | None = None,
    indices: Sequence[int] | None = None,
    image: str = 'ct',
    label: str = 'label',
    progress: bool = False,
) -> Evaluation:
    """Dice of ``predictor`` on (a subset of) a dataset of whole volumes.

    Args:
        predictor: ``image (C, D, H, W) -> label map (D, H, W)``, e.g. a
            :class:`~torchio_ramp.inference.SlidingWindowPredictor`.
        dataset: Subjects with normalised images (:func:`validation_transform`).
        classes: Foreground classes to score.
        annotated: Classes the dataset annotates (others are NaN, excluded).
        indices: Only these subjects (a DDP rank's share).
        image: Name of the image in each subject.
        label: Name of the label map.
        progress: Show a progress bar.

    Example:
        >>> import torchio as tio
        >>> from torchio_ramp.phantoms import phantom_subject
        >>> from torchio_ramp.training import validation_transform
        >>> dataset = tio.SubjectsDataset(
        ...     [phantom_subject((16, 16, 16))], transform=validation_transform()
        ... )
        >>> oracle = lambda image: dataset[0]['label'].data[0]
        >>> evaluate(oracle, dataset).mean_dice
        1.0
    """
    indices = range(len(dataset)) if indices is None else indices
    subjects = {}
    for index in tqdm(indices, desc='validation', leave=False, disable=not progress):
        subject = dataset[index]
        prediction = predictor(subject[image].data)
        target = subject[label].data[0]
        key = str(subject.get('subject_id', index))
        subjects[key] = dice_per_class(prediction, target, classes, annotated)
    return Evaluation.from_subjects(subjects)
