"""Per-volume segmentation metrics, shared by training, the stress test and nnU-Net.

One prediction is scored against its reference label map (a *volume*: one
subject, clean or under one corruption). Every per-volume metric is defined
once, here; what is computed over a test set (clean and corrupted Dice,
worst case, confidence intervals) is in :mod:`torchio_ramp.stress.statistics`.

* **Dice of class c**: ``2 |P_c & G_c| / (|P_c| + |G_c|)`` with ``P_c`` the
  predicted and ``G_c`` the reference voxels of ``c``. Conventions: both empty
  -> NaN (excluded); reference empty but prediction not -> 0; a class the
  dataset does not annotate (``annotated_classes`` of its ``dataset.json``,
  e.g. heart and colon for AbdomenCT-1K) -> NaN (excluded).
* **Subject Dice**: the mean of the Dice of the included (non-NaN) classes;
  NaN if no class is included.
* **Volume** of class c in mL: voxel count x voxel volume (from the image
  spacing); **absolute volume error**: ``|V(P_c) - V(G_c)|`` in mL.

The counts behind them come from one pass over the volume
(:func:`overlap_counts`). :func:`score_volume` gives every column of a
results row for each class; it runs the :class:`VolumeMetric` objects of
:data:`VOLUME_METRICS`. A new per-volume metric (a boundary distance, a
relative volume error, a count of false-positive components) is one more such
object: it declares its columns and computes one value per class from a
:class:`Volume` (prediction, reference, classes, spacing and the shared
counts); its parameters (a tolerance in mm) are attributes of the object.

Example:
    >>> import torch
    >>> prediction = torch.tensor([[[0, 1], [1, 1]]])
    >>> reference = torch.tensor([[[0, 1], [1, 0]]])
    >>> scores = score_volume(prediction, reference, [1], spacing=(10, 10, 10))
    >>> scores[1]['dice'], scores[1]['gt_ml'], scores[1]['abs_volume_error_ml']
    (0.8, 2.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

Number = float | int


@dataclass(frozen=True)
class OverlapCounts:
    """Voxel counts of each class in a prediction and its reference.

    Attributes:
        classes: Class label values, in the order of the arrays.
        target: Reference voxels of each class.
        predicted: Predicted voxels of each class.
        intersection: Voxels of each class in both.

    Example:
        >>> counts = overlap_counts(np.array([1, 0]), np.array([1, 1]), [1])
        >>> counts.target.tolist(), counts.intersection.tolist()
        ([2], [1])
    """

    classes: tuple[int, ...]
    target: np.ndarray
    predicted: np.ndarray
    intersection: np.ndarray

    def dice(self, annotated: Iterable[int] | None = None) -> dict[int, float]:
        """Dice of each class with the conventions of this module.

        Args:
            annotated: Classes the dataset annotates; the others get NaN.
                ``None``: every class is annotated.

        Example:
            >>> import torch
            >>> counts = overlap_counts(torch.tensor([1, 1, 0]), torch.tensor([1, 0, 0]), [1, 2])
            >>> counts.dice()
            {1: 0.6666666666666666, 2: nan}
        """  # noqa: E501
        keep = None if annotated is None else {int(c) for c in annotated}
        denominator = self.target + self.predicted
        result = {}
        for i, label in enumerate(self.classes):
            if (keep is not None and label not in keep) or denominator[i] == 0:
                result[label] = math.nan
            else:
                result[label] = (
                    2.0 * float(self.intersection[i]) / float(denominator[i])
                )
        return result


def _as_labels(values: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values)
    if tensor.is_floating_point() or tensor.is_complex():
        message = f'{name} must hold integer labels, not {tensor.dtype}'
        raise TypeError(message)
    if tensor.dtype in (torch.uint16, torch.uint32, torch.uint64):
        tensor = tensor.to(torch.int64)  # few torch operators support them
    return tensor


def _code_dtype(num_codes: int) -> torch.dtype:
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if num_codes - 1 <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def overlap_counts(
    prediction: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    classes: Iterable[int],
) -> OverlapCounts:
    """Count predicted, reference and shared voxels of every class at once.

    One pass over the volume: each voxel is coded as ``target * K +
    prediction`` in the smallest integer type that holds ``K ** 2`` codes (one
    byte per voxel for the five-class head) and a single ``bincount`` gives the
    whole confusion matrix. Works on any device; the counts come back as NumPy.

    Args:
        prediction: Integer label map (any shape).
        target: Integer reference label map of the same shape.
        classes: Label values to report.

    Raises:
        ValueError: If the shapes differ or a label is negative.
        TypeError: If a label map is not of an integer (or bool) type.

    Example:
        >>> import torch
        >>> counts = overlap_counts(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), [1, 2])
        >>> counts.target.tolist(), counts.predicted.tolist(), counts.intersection.tolist()
        ([1, 2], [2, 1], [1, 1])
    """  # noqa: E501
    prediction = _as_labels(prediction, 'prediction')
    target = _as_labels(target, 'target')
    classes = tuple(int(c) for c in classes)
    if prediction.shape != target.shape:
        message = (
            f'prediction has shape {tuple(prediction.shape)} but the label has'
            f' shape {tuple(target.shape)}'
        )
        raise ValueError(message)
    if any(c < 0 for c in classes):
        raise ValueError(f'classes must be non-negative, not {classes}')
    if prediction.device != target.device:
        prediction = prediction.to(target.device)
    highest = max(classes, default=0)
    if target.numel():
        low_p, high_p = torch.aminmax(prediction)
        low_t, high_t = torch.aminmax(target)
        if min(int(low_p), int(low_t)) < 0:
            raise ValueError('label maps must not hold negative values')
        highest = max(highest, int(high_p), int(high_t))
    num_labels = highest + 1
    dtype = _code_dtype(num_labels * num_labels)
    code = target.to(dtype=dtype, copy=True).reshape(-1)
    code.mul_(num_labels).add_(prediction.reshape(-1).to(dtype))
    confusion = torch.bincount(code, minlength=num_labels * num_labels)
    del code
    confusion = confusion.reshape(num_labels, num_labels).cpu().numpy()
    index = list(classes)
    return OverlapCounts(
        classes=classes,
        target=confusion.sum(axis=1)[index],
        predicted=confusion.sum(axis=0)[index],
        intersection=np.diagonal(confusion)[index].copy(),
    )


def dice_per_class(
    prediction: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    classes: Iterable[int],
    annotated: Iterable[int] | None = None,
) -> dict[int, float]:
    """Dice of each class: NaN if both are empty or the class is not annotated.

    Reference empty but prediction not gives 0. See :func:`overlap_counts` for
    the (single-pass, vectorised) counting and the accepted inputs.

    Args:
        prediction: Integer label map.
        target: Integer reference label map of the same shape.
        classes: Label values to score, e.g. ``CLASS_NAMES.keys()``.
        annotated: Classes the dataset annotates (``annotated_classes`` of
            the prepared dataset's ``dataset.json``, see
            :func:`torchio_ramp.datasets.read_dataset_info`); the others get
            NaN. ``None``: all of ``classes``.

    Example:
        >>> import torch
        >>> target = torch.tensor([[1, 1, 0, 0], [2, 0, 0, 0]])
        >>> prediction = torch.tensor([[1, 0, 0, 0], [0, 0, 3, 0]])
        >>> dice_per_class(prediction, target, [1, 2, 3, 4], annotated=[1, 2, 3])
        {1: 0.6666666666666666, 2: 0.0, 3: 0.0, 4: nan}
    """
    return overlap_counts(prediction, target, classes).dice(annotated)


def subject_dice(dice: Mapping[int, float] | Iterable[float]) -> float:
    """Mean Dice over the included (non-NaN) classes; NaN if none is included.

    Example:
        >>> subject_dice({1: 0.5, 2: float('nan'), 3: 1.0})
        0.75
    """
    values = dice.values() if isinstance(dice, Mapping) else dice
    included = [v for v in values if not math.isnan(v)]
    return sum(included) / len(included) if included else math.nan


# Metrics of one volume, as columns of a results row ---------------------------


@dataclass(frozen=True)
class Volume:
    """One prediction and its reference, with what per-volume metrics share.

    Attributes:
        prediction: Integer label map ``(D, H, W)``.
        target: Reference label map of the same shape.
        classes: Label values scored, in the order of every metric's values.
        spacing: Voxel size in mm per axis (the label map's).
        counts: :func:`overlap_counts` of ``prediction`` and ``target``
            (computed once for all metrics).

    Example:
        >>> volume = Volume.of(torch.tensor([1, 0]), torch.tensor([1, 1]), [1])
        >>> volume.counts.target.tolist(), volume.voxel_ml
        ([2], 0.001)
    """

    prediction: torch.Tensor | np.ndarray
    target: torch.Tensor | np.ndarray
    classes: tuple[int, ...]
    spacing: tuple[float, ...]
    counts: OverlapCounts

    @classmethod
    def of(
        cls,
        prediction: torch.Tensor | np.ndarray,
        target: torch.Tensor | np.ndarray,
        classes: Iterable[int],
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> Volume:
        """Count the overlaps once and hold them with the label maps."""
        counts = overlap_counts(prediction, target, classes)
        spacing = tuple(float(s) for s in spacing)
        return cls(prediction, target, counts.classes, spacing, counts)

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL (spacing in mm)."""
        return float(np.prod(self.spacing)) / 1000.0


class VolumeMetric(Protocol):
    """A per-volume metric: named columns with one value per class each.

    Attributes:
        columns: Names of the values it gives (columns of a results row).
    """

    columns: tuple[str, ...]

    def __call__(self, volume: Volume) -> Mapping[str, Sequence[Number]]:
        """``{column: [value of each class of volume.classes]}``."""
        ...


class OverlapMetric:
    """Dice (raw: NaN only when both are empty) and the voxel counts.

    Example:
        >>> OverlapMetric()(Volume.of(torch.tensor([1, 0]), torch.tensor([1, 1]), [1]))
        {'dice': [0.6666666666666666], 'gt_voxels': [2], 'pred_voxels': [1], 'intersection_voxels': [1]}
    """  # noqa: E501

    columns = ('dice', 'gt_voxels', 'pred_voxels', 'intersection_voxels')

    def __call__(self, volume: Volume) -> dict[str, list[Number]]:
        counts = volume.counts
        dice = counts.dice()
        return {
            'dice': [dice[c] for c in volume.classes],
            'gt_voxels': [int(v) for v in counts.target],
            'pred_voxels': [int(v) for v in counts.predicted],
            'intersection_voxels': [int(v) for v in counts.intersection],
        }


class VolumeError:
    """Reference and predicted volume in mL and their absolute difference.

    Example:
        >>> volume = Volume.of(torch.tensor([1, 0]), torch.tensor([1, 1]), [1], (10, 10, 10))
        >>> VolumeError()(volume)
        {'gt_ml': [2.0], 'pred_ml': [1.0], 'abs_volume_error_ml': [1.0]}
    """  # noqa: E501

    columns = ('gt_ml', 'pred_ml', 'abs_volume_error_ml')

    def __call__(self, volume: Volume) -> dict[str, list[Number]]:
        voxel_ml = volume.voxel_ml
        target = [int(v) * voxel_ml for v in volume.counts.target]
        predicted = [int(v) * voxel_ml for v in volume.counts.predicted]
        return {
            'gt_ml': target,
            'pred_ml': predicted,
            'abs_volume_error_ml': [
                abs(p - t) for p, t in zip(predicted, target, strict=True)
            ],
        }


VOLUME_METRICS: tuple[VolumeMetric, ...] = (OverlapMetric(), VolumeError())
"""The per-volume metrics of every stress-test row, in column order."""


def metric_columns(metrics: Sequence[VolumeMetric] = VOLUME_METRICS) -> tuple[str, ...]:
    """Columns given by ``metrics``, in order.

    Example:
        >>> metric_columns()[:2]
        ('dice', 'gt_voxels')
    """
    return tuple(column for metric in metrics for column in metric.columns)


def score_volume(
    prediction: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    classes: Iterable[int],
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    metrics: Sequence[VolumeMetric] = VOLUME_METRICS,
) -> dict[int, dict[str, Number]]:
    """Every per-volume metric of every class: ``{class: {column: value}}``.

    Args:
        prediction: Integer label map.
        target: Integer reference label map of the same shape.
        classes: Label values to score.
        spacing: Voxel size in mm (volumes, distances).
        metrics: The metrics (default: :data:`VOLUME_METRICS`).

    Raises:
        ValueError: If a metric does not give one value per class for each
            of its columns (naming it), or as :func:`overlap_counts`.

    Example:
        >>> scores = score_volume(torch.tensor([1, 2]), torch.tensor([1, 1]), [1, 2])
        >>> scores[2]['dice'], scores[1]['gt_voxels']
        (0.0, 2)
    """
    volume = Volume.of(prediction, target, classes, spacing)
    scores: dict[int, dict[str, Number]] = {c: {} for c in volume.classes}
    for metric in metrics:
        values = metric(volume)
        for column in metric.columns:
            column_values = values.get(column, ())
            if len(column_values) != len(volume.classes):
                message = (
                    f'{type(metric).__name__} gave {len(column_values)} values of'
                    f' {column!r} for {len(volume.classes)} classes'
                )
                raise ValueError(message)
            for label, value in zip(volume.classes, column_values, strict=True):
                scores[label][column] = value
    return scores


__all__ = [
    'VOLUME_METRICS',
    'OverlapCounts',
    'OverlapMetric',
    'Volume',
    'VolumeError',
    'VolumeMetric',
    'dice_per_class',
    'metric_columns',
    'overlap_counts',
    'score_volume',
    'subject_dice',
]
