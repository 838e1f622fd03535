"""Boundary, volume and false-positive metrics of one volume, in millimetres.

Dice says how much of an organ overlaps; it hardly moves when a 4 cm island of
false positives appears elsewhere or when a kidney's volume is off by a
quarter. Metrics Reloaded (Maier-Hein et al., Nature Methods 2024, problem
fingerprints FP2.1 and FP2.2) recommends pairing an overlap metric with a
boundary metric and, where volume matters, a volume metric. Per class ``c``,
with ``P`` the predicted and ``G`` the reference voxels of ``c``, distances in
mm from the voxel spacing (anisotropic voxels are exact):

* **Boundary** of a mask: its voxels with a face neighbour outside the mask
  (or outside the image), as in MONAI and Metrics Reloaded.
* **NSD** (normalised surface Dice; Nikolov et al., 2021) at tolerance ``tau``:
  the share of boundary voxels of ``P`` and of ``G`` (pooled) that lie within
  ``tau`` mm of the other mask's boundary. Default ``tau``:
  :data:`DEFAULT_TOLERANCE_MM` for every class, the tolerance of
  TotalSegmentator's own evaluation (``surface_dice_3``, Wasserthal et al.,
  2023), overridable per class.
* **HD95**: the larger of the two directed 95th percentiles (linear
  interpolation) of the distances from the boundary voxels of one mask to the
  boundary of the other, in mm.
* **Relative volume error**: ``|V(P) - V(G)| / V(G)`` in % (Metrics
  Reloaded's absolute volume difference ratio, times 100).
* **False-positive components**: connected components of ``P`` (26
  neighbours) that share no voxel with ``G``: their number and their total
  volume in mL.

Empty masks (:data:`EMPTY_MASK_CONVENTIONS`, the same rules as Dice's): both
empty -> NaN for the ratios and distances (nothing to score, excluded from
means); exactly one empty -> the worst value (NSD 0, HD95 the image
diagonal); relative volume error is 100 % when the prediction is empty and
undefined (NaN) when the reference is; counts and volumes are always defined.

Computation: per class, the two masks are cropped to the bounding box of their
union, their boundaries found with face shifts, and one exact Euclidean
distance transform of the two boundaries (:mod:`torchio_ramp.kernels.distance`,
batched, on the grid planes that hold boundary voxels only) gives both
directions of distances. Components come from
:mod:`torchio_ramp.kernels.components`. Everything stays on the label maps'
device; per-class results come back as NumPy arrays, like
``overlap_counts``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .kernels.components import component_roots
from .kernels.distance import check_spacing
from .kernels.distance import inner_boundary
from .kernels.distance import nearest_distances
from .labels import CLASS_NAMES

DEFAULT_TOLERANCE_MM = 3.0
"""NSD tolerance of every class unless overridden: TotalSegmentator's
evaluation scores every structure with surface Dice at 3 mm
(``resources/evaluate.py``, ``surface_dice_3``)."""

HD_PERCENTILE = 95.0
"""Percentile of the directed boundary distances in HD95."""

EMPTY_MASK_CONVENTIONS: dict[str, dict[str, str]] = {
    'both empty': {
        'dice': 'NaN',
        'nsd': 'NaN',
        'hd95': 'NaN',
        'volume_error': 'NaN',
        'false_positive_components': '0 (0 mL)',
    },
    'reference empty, prediction not': {
        'dice': '0',
        'nsd': '0',
        'hd95': 'image diagonal (mm)',
        'volume_error': 'NaN (no reference volume)',
        'false_positive_components': 'every predicted component',
    },
    'prediction empty, reference not': {
        'dice': '0',
        'nsd': '0',
        'hd95': 'image diagonal (mm)',
        'volume_error': '100',
        'false_positive_components': '0 (0 mL)',
    },
}
"""What each metric takes when a mask is empty, the single statement of the
rules (the tests check the documentation's table against it). NaN is excluded from
means; the worst value enters them."""

WITHIN_TOLERANCE_SLACK = 1e-12
"""Relative slack of ``distance <= tau``: a boundary voxel exactly ``tau``
away (``2 x 0.8 mm`` against 1.6 mm) counts as within, whatever the last bit
of its float64 distance."""


@dataclass(frozen=True)
class SurfaceScores:
    """NSD and HD95 of each class of one volume.

    Attributes:
        classes: Class label values, in the order of the arrays.
        nsd: Normalised surface Dice in ``[0, 1]`` (NaN: both masks empty).
        hd95: 95th-percentile Hausdorff distance in mm (NaN: both empty).
        tolerance: NSD tolerance of each class in mm.
        diagonal: The image diagonal in mm, HD95's worst value.

    Example:
        >>> reference = torch.zeros(1, 8, 8, dtype=torch.int64)
        >>> reference[0, 2:6, 2:6] = 1
        >>> scores = surface_scores(reference, reference, [1], (1.0, 1.0, 1.0))
        >>> scores.nsd.tolist(), scores.hd95.tolist()
        ([1.0], [0.0])
    """

    classes: tuple[int, ...]
    nsd: np.ndarray
    hd95: np.ndarray
    tolerance: np.ndarray
    diagonal: float


@dataclass(frozen=True)
class ComponentScores:
    """False-positive components of each class of one volume.

    Attributes:
        classes: Class label values, in the order of the arrays.
        count: Connected components of the prediction (26 neighbours) that
            share no voxel with the reference.
        volume_ml: Their total volume in mL.

    Example:
        >>> reference = torch.zeros(1, 8, 8, dtype=torch.int64)
        >>> reference[0, 0:3, 0:3] = 1
        >>> prediction = reference.clone()
        >>> prediction[0, 6:8, 6:8] = 1
        >>> scores = false_positive_components(prediction, reference, [1], (1, 1, 1))
        >>> scores.count.tolist(), scores.volume_ml.tolist()
        ([1], [0.004])
    """

    classes: tuple[int, ...]
    count: np.ndarray
    volume_ml: np.ndarray


def relative_volume_error(
    predicted: Sequence[float] | np.ndarray,
    target: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """``|V(P) - V(G)| / V(G)`` in %, from voxel counts (or volumes) per class.

    NaN where the reference is empty (:data:`EMPTY_MASK_CONVENTIONS`); an
    empty prediction of a present organ is 100 %. Takes the
    ``predicted`` and ``target`` counts of ``overlap_counts``.

    Example:
        >>> relative_volume_error([75, 0, 4, 0], [100, 10, 0, 0]).tolist()
        [25.0, 100.0, nan, nan]
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape:
        raise ValueError(
            f'predicted and target counts differ in shape: {predicted.shape}'
            f' and {target.shape}'
        )
    if (predicted < 0).any() or (target < 0).any():
        raise ValueError('voxel counts and volumes must not be negative')
    with np.errstate(invalid='ignore', divide='ignore'):
        error = np.abs(predicted - target) / target * 100.0
    return np.where(target > 0, error, np.nan)


def resolve_tolerances(
    tolerance: float | Mapping[int | str, float] | None,
    classes: Iterable[int],
    names: Mapping[int, str] | None = None,
) -> np.ndarray:
    """NSD tolerance in mm of each class, from one number or per class.

    Args:
        tolerance: ``None`` (:data:`DEFAULT_TOLERANCE_MM` for all), one
            number for all classes, or a mapping from class label or class
            name to mm; classes it does not name keep the default.
        classes: The classes scored.
        names: Class names accepted as keys; default
            :data:`torchio_ramp.labels.CLASS_NAMES`.

    Raises:
        ValueError: For a negative, NaN or infinite tolerance, or a key that
            names no scored class (the message names it and lists the
            classes).

    Example:
        >>> resolve_tolerances({'liver': 5, 3: 1.5}, [1, 2, 3]).tolist()
        [5.0, 3.0, 1.5]
    """
    classes = tuple(int(c) for c in classes)
    names = CLASS_NAMES if names is None else names
    result = np.full(len(classes), DEFAULT_TOLERANCE_MM)
    if tolerance is None:
        return result
    if isinstance(tolerance, Mapping):
        by_name = {name: label for label, name in names.items()}
        for key, value in tolerance.items():
            label = by_name.get(key) if isinstance(key, str) else key
            if isinstance(label, bool) or label not in classes:
                known = ', '.join(
                    f'{c} ({names[c]})' if c in names else str(c) for c in classes
                )
                message = (
                    f'tolerance names class {key!r}, which is not among the'
                    f' scored classes: {known}'
                )
                raise ValueError(message)
            result[classes.index(label)] = _check_tolerance(value, key)
        return result
    return np.full(len(classes), _check_tolerance(tolerance, None))


def _check_tolerance(value: object, key: int | str | None) -> float:
    where = '' if key is None else f' of class {key!r}'
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(
            f'tolerance{where} must be a number of mm, not {value!r}'
        ) from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        message = f'tolerance{where} must be a finite number of mm >= 0, not {value!r}'
        raise ValueError(message)
    return number


def _label_map(values: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values)
    if tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(f'{name} must hold integer labels, not {tensor.dtype}')
    if tensor.dtype in (torch.uint16, torch.uint32, torch.uint64):
        tensor = tensor.to(torch.int64)  # few torch operators support them
    return tensor


def _volumes(
    prediction: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    classes: Iterable[int],
    spacing: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...], tuple[float, ...]]:
    """Checked label maps with the channel of one dropped, classes, spacing."""
    prediction = _label_map(prediction, 'prediction')
    target = _label_map(target, 'target')
    if prediction.shape != target.shape:
        message = (
            f'prediction has shape {tuple(prediction.shape)} but the reference'
            f' has shape {tuple(target.shape)}'
        )
        raise ValueError(message)
    try:
        ndim = len(spacing)
    except TypeError:
        raise ValueError(
            f'spacing must be voxel sizes in mm, not {spacing!r}'
        ) from None
    if prediction.ndim == ndim + 1 and prediction.shape[0] == 1:
        prediction, target = prediction[0], target[0]
    if prediction.ndim != ndim:
        message = (
            f'label maps must be {ndim}-D (or one channel of it) to match'
            f' spacing {tuple(spacing)}, not shape {tuple(prediction.shape)}'
        )
        raise ValueError(message)
    spacing = check_spacing(spacing, ndim)
    classes = tuple(int(c) for c in classes)
    if any(c < 0 for c in classes):
        raise ValueError(f'classes must be non-negative, not {classes}')
    if prediction.device != target.device:
        prediction = prediction.to(target.device)
    return prediction, target, classes, spacing


def _fold_any(bits: torch.Tensor, dim: int) -> torch.Tensor:
    """Bitwise OR of ``bits`` along ``dim`` (halving, one pass in all)."""
    while bits.shape[dim] > 1:
        n = bits.shape[dim]
        half = n // 2
        folded = bits.narrow(dim, 0, half) | bits.narrow(dim, n - half, half)
        if n % 2:
            folded = torch.cat([folded, bits.narrow(dim, half, 1)], dim)
        bits = folded
    return bits.squeeze(dim)


_BIT_TYPES = ((7, torch.uint8), (14, torch.int16), (30, torch.int32), (62, torch.int64))
"""Highest label whose bit fits each integer type (sign bit left alone)."""


def _presence(
    prediction: torch.Tensor, target: torch.Tensor
) -> list[torch.Tensor] | None:
    """Per axis, a bitset per index of the labels found there in either map.

    Each voxel becomes ``1 << label``; OR-folding over the other axes gives,
    for every index of an axis, which labels occur in that plane: a few passes
    over the volume for all classes at once. ``None`` when a label is too
    large for a 63-bit set.
    """
    highest = 0
    for labels in (prediction, target):
        if labels.numel():
            low, high = torch.aminmax(labels)
            if int(low) < 0:
                raise ValueError('label maps must not hold negative values')
            highest = max(highest, int(high))
    dtype = next((t for top, t in _BIT_TYPES if highest <= top), None)
    if dtype is None:
        return None
    one = torch.ones((), dtype=dtype, device=target.device)
    bits = one.bitwise_left_shift(prediction.to(dtype))
    bits |= one.bitwise_left_shift(target.to(dtype))
    presence = []
    for axis in range(bits.ndim):
        plane = bits
        for other in reversed(range(bits.ndim)):
            if other != axis:
                plane = _fold_any(plane, other)
        presence.append(plane.to(torch.int64).cpu())
    return presence


def _class_crops(
    prediction: torch.Tensor,
    target: torch.Tensor,
    classes: tuple[int, ...],
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Each class's masks cropped to the bounding box of their union.

    Yields ``(i, P, G)`` for the i-th class; classes absent from both maps
    yield nothing.
    """
    presence = _presence(prediction, target)
    for i, label in enumerate(classes):
        if presence is not None:
            if label > 62:
                continue  # larger than every label in the maps
            found = [(plane >> label) & 1 for plane in presence]
        else:  # labels beyond 62: one pass per class
            union = (prediction == label) | (target == label)
            found = [
                union.any([d for d in range(union.ndim) if d != axis]).cpu()
                for axis in range(union.ndim)
            ]
        if not bool(found[0].any()):
            continue
        box = []
        for hits in found:
            where = hits.nonzero().squeeze(1)
            box.append(slice(int(where[0]), int(where[-1]) + 1))
        box = tuple(box)
        yield i, prediction[box] == label, target[box] == label


def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Largest distance in mm between two voxel centres of an image.

    HD95's worst value: no boundary distance in the image can exceed it.

    Example:
        >>> image_diagonal((4, 5, 1), (1.0, 1.0, 3.0))
        5.0
    """
    return math.sqrt(
        sum(((n - 1) * s) ** 2 for n, s in zip(shape, spacing, strict=True))
    )


def surface_scores(
    prediction: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    classes: Iterable[int],
    spacing: Sequence[float],
    tolerance: float | Mapping[int | str, float] | None = None,
    names: Mapping[int, str] | None = None,
) -> SurfaceScores:
    """NSD at a tolerance and HD95 of every class, in mm, from one volume.

    Args:
        prediction: Integer label map ``(D, H, W)`` or ``(1, D, H, W)``
            (torch or NumPy, any device).
        target: Reference label map of the same shape.
        classes: Label values to score.
        spacing: Voxel size in mm of each spatial axis (``image.spacing``).
        tolerance: NSD tolerance in mm: one number, or per class label or
            name (:func:`resolve_tolerances`); default
            :data:`DEFAULT_TOLERANCE_MM`.
        names: Class names accepted in ``tolerance``; default the head's.

    Raises:
        ValueError: For a spacing that is not positive and finite, label
            maps of different shapes or of the wrong dimension, negative
            labels, or a bad tolerance.
        TypeError: For label maps that are not integer.

    Example:
        >>> reference = torch.zeros(12, 12, 4, dtype=torch.int64)
        >>> reference[2:8, 2:8] = 1
        >>> prediction = torch.roll(reference, 2, dims=0)
        >>> scores = surface_scores(prediction, reference, [1], (1.5, 1.5, 3.0), 2.0)
        >>> scores.hd95.tolist(), scores.nsd.round(3).tolist()
        ([3.0], [0.75])
    """
    prediction, target, classes, spacing = _volumes(
        prediction, target, classes, spacing
    )
    tolerances = resolve_tolerances(tolerance, classes, names)
    diagonal = image_diagonal(prediction.shape, spacing)
    nsd = np.full(len(classes), np.nan)
    hd95 = np.full(len(classes), np.nan)
    ndim = len(spacing)
    for i, predicted, reference in _class_crops(prediction, target, classes):
        boundaries = inner_boundary(torch.stack([predicted, reference]), ndim)
        if not bool(boundaries[0].any()) or not bool(boundaries[1].any()):
            nsd[i], hd95[i] = 0.0, diagonal  # one mask empty: the worst values
            continue
        # from the prediction's boundary to the reference's, and back
        to_reference, to_prediction = nearest_distances(
            boundaries, boundaries.flip(0), spacing
        )
        limit = tolerances[i] * (1 + WITHIN_TOLERANCE_SLACK)
        within = (to_reference <= limit).sum() + (to_prediction <= limit).sum()
        nsd[i] = int(within) / (to_reference.numel() + to_prediction.numel())
        q = HD_PERCENTILE / 100  # linear interpolation, as MONAI's
        hd95[i] = max(
            float(torch.quantile(to_reference, q)),
            float(torch.quantile(to_prediction, q)),
        )
    return SurfaceScores(classes, nsd, hd95, tolerances, diagonal)


def _compact(
    predicted: torch.Tensor, reference: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop to the prediction and shrink each run of empty planes to one plane.

    Components never cross an empty plane, so one keeps them apart as well as
    many: an island 10 cm away costs one plane, not a hundred.
    """
    for axis in range(predicted.ndim):
        others = [d for d in range(predicted.ndim) if d != axis]
        occupied = predicted.any(others) if others else predicted
        after = torch.zeros_like(occupied)
        after[1:] = occupied[:-1]
        where = occupied.nonzero().squeeze(1)
        keep = (occupied | after).nonzero().squeeze(1)
        keep = keep[(keep >= where[0]) & (keep <= where[-1])]
        if keep.numel() < predicted.shape[axis]:
            predicted = predicted.index_select(axis, keep)
            reference = reference.index_select(axis, keep)
    return predicted, reference


def false_positive_components(
    prediction: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    classes: Iterable[int],
    spacing: Sequence[float],
) -> ComponentScores:
    """Count the predicted components of each class that miss its reference.

    A component (26 neighbours) of the predicted mask of class ``c`` is a
    false positive when none of its voxels is a reference voxel of ``c``; its
    volume is its voxel count times the voxel volume.

    Args:
        prediction: Integer label map ``(D, H, W)`` or ``(1, D, H, W)``.
        target: Reference label map of the same shape.
        classes: Label values to score.
        spacing: Voxel size in mm of each spatial axis.

    Example:
        >>> reference = torch.zeros(10, 10, 10, dtype=torch.int64)
        >>> reference[1:4, 1:4, 1:4] = 2
        >>> prediction = reference.clone()
        >>> prediction[7:9, 7:9, 7:9] = 2   # an island
        >>> prediction[0, 9, 9] = 2          # a single voxel
        >>> scores = false_positive_components(prediction, reference, [2], (2, 2, 2))
        >>> scores.count.tolist(), scores.volume_ml.tolist()
        ([2], [0.072])
    """
    prediction, target, classes, spacing = _volumes(
        prediction, target, classes, spacing
    )
    voxel_mm3 = math.prod(spacing)
    count = np.zeros(len(classes), dtype=np.int64)
    volume = np.zeros(len(classes))
    for i, predicted, reference in _class_crops(prediction, target, classes):
        if not bool(predicted.any()):
            continue
        predicted, reference = _compact(predicted, reference)
        roots = component_roots(predicted)[predicted]
        touching = torch.unique(roots[reference[predicted]])
        components, sizes = torch.unique(roots, return_counts=True)
        missing = ~torch.isin(components, touching)
        count[i] = int(missing.sum())
        volume[i] = int(sizes[missing].sum()) * voxel_mm3 / 1000.0
    return ComponentScores(classes, count, volume)
