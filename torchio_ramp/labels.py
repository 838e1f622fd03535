"""The five-class output head and each dataset's mapping onto it.

This module is the single place that says what the label values mean. The data
preparation tool (``ramp-prep``), the phantom generator, the stress test and the
training scripts all import these constants instead of repeating them.

Output head (paper Table 4), background is 0:

==  ======  ================================  ====================
id  class   TotalSegmentator v2 source        AbdomenCT-1K source
==  ======  ================================  ====================
1   liver   ``liver``                         1 (liver)
2   spleen  ``spleen``                        3 (spleen)
3   kidney  ``kidney_left | kidney_right``    2 (kidney)
4   heart   ``heart``                         not annotated
5   colon   ``colon`` (whole large bowel)     not annotated
==  ======  ================================  ====================

AbdomenCT-1K's pancreas (source id 4) has no output class and becomes
background. Heart and colon are *not annotated* in AbdomenCT-1K, which is not
the same as background: evaluation must exclude them for that dataset
(:func:`annotated_classes`).

Overlap precedence: TotalSegmentator ships one binary mask per structure and
masks can overlap. When a voxel is claimed by more than one output class, the
class that comes first in :data:`OVERLAP_PRECEDENCE` wins::

    kidney > spleen > colon > heart > liver

Compact organs win over large ones, ordered by typical adult volume
(kidney ~150 mL, spleen ~200 mL, colon, heart, liver ~1500 mL), so a boundary
disagreement can never erase a small organ: the large organ loses a few
boundary voxels, a small fraction of its volume, whereas the reverse order
could delete a noticeable part of a kidney. ``kidney_left`` and
``kidney_right`` map to the same class, so their overlap is not a conflict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

import numpy as np

BACKGROUND: int = 0
"""Label value of background (and of every structure outside the head)."""

CLASS_NAMES: dict[int, str] = {
    1: 'liver',
    2: 'spleen',
    3: 'kidney',
    4: 'heart',
    5: 'colon',
}
"""Foreground classes of the output head, by label value."""

CLASS_IDS: dict[str, int] = {name: value for value, name in CLASS_NAMES.items()}
"""Inverse of :data:`CLASS_NAMES`: label value of each class name."""

NUM_CLASSES: int = len(CLASS_NAMES) + 1
"""Number of output channels including background (6)."""

TOTALSEG_STRUCTURES: tuple[str, ...] = (
    'liver',
    'spleen',
    'kidney_left',
    'kidney_right',
    'heart',
    'colon',
)
"""The TotalSegmentator v2 masks the head needs (``segmentations/<name>.nii.gz``)."""

TOTALSEG_MAPPING: dict[str, int] = {
    'liver': 1,
    'spleen': 2,
    'kidney_left': 3,
    'kidney_right': 3,
    'heart': 4,
    'colon': 5,
}
"""TotalSegmentator v2 structure name -> output class (kidney = left | right)."""

TOTALSEG_LATERAL_PAIRS: dict[str, str] = {'kidney_left': 'kidney_right'}
"""Left/right structure pairs, for users who keep laterality separate.

A flip along the patient's left-right axis must swap the two labels of each
pair. The five-class head merges the kidneys, so it needs no swap.
"""

TOTALSEG_V1_HEART_STRUCTURES: tuple[str, ...] = (
    'heart_myocardium',
    'heart_atrium_left',
    'heart_atrium_right',
    'heart_ventricle_left',
    'heart_ventricle_right',
)
"""Heart sub-structures of TotalSegmentator v1, which had no ``heart`` mask."""

ABDOMENCT1K_SOURCE_NAMES: dict[int, str] = {
    1: 'liver',
    2: 'kidney',
    3: 'spleen',
    4: 'pancreas',
}
"""AbdomenCT-1K mask values (the dataset's own convention)."""

ABDOMENCT1K_MAPPING: dict[int, int] = {0: 0, 1: 1, 2: 3, 3: 2, 4: 0}
"""AbdomenCT-1K mask value -> output class (pancreas has no head: background)."""

ABDOMENCT1K_DROPPED: dict[int, str] = {4: 'pancreas'}
"""AbdomenCT-1K source values mapped to background because the head lacks them."""

ANNOTATED_CLASSES: dict[str, tuple[int, ...]] = {
    'totalseg': (1, 2, 3, 4, 5),
    'abdomenct1k': (1, 2, 3),
}
"""Output classes each dataset annotates. Others are unknown, not background."""

OVERLAP_PRECEDENCE: tuple[int, ...] = (3, 2, 5, 4, 1)
"""Output classes from highest to lowest priority where masks overlap."""

SYNTHETIC_PREFIX: str = 'synthetic-'
"""Prefix of dataset names of phantom data, e.g. ``'synthetic-totalseg'``."""


def annotated_classes(dataset: str) -> tuple[int, ...]:
    """Return the output classes that ``dataset`` annotates.

    Args:
        dataset: ``'totalseg'`` or ``'abdomenct1k'``, optionally prefixed with
            ``'synthetic-'`` (phantom data in that dataset's layout).

    Raises:
        ValueError: If the dataset is unknown.

    Example:
        >>> annotated_classes('abdomenct1k')
        (1, 2, 3)
        >>> annotated_classes('synthetic-totalseg')
        (1, 2, 3, 4, 5)
    """
    key = dataset.removeprefix(SYNTHETIC_PREFIX)
    if key not in ANNOTATED_CLASSES:
        known = ', '.join(sorted(ANNOTATED_CLASSES))
        raise ValueError(f'Unknown dataset {dataset!r}; expected one of: {known}')
    return ANNOTATED_CLASSES[key]


@dataclass
class MergeResult:
    """Result of :func:`merge_totalseg_masks`.

    Attributes:
        label: ``uint8`` label map with values in ``0..5``.
        conflict_voxels: Number of voxels claimed by two or more different
            output classes (each voxel counted once).
        conflict_pairs: ``(winner, loser)`` class-name pairs -> voxel count.
    """

    label: np.ndarray
    conflict_voxels: int = 0
    conflict_pairs: dict[tuple[str, str], int] = field(default_factory=dict)


def _merge_order() -> list[str]:
    # Lowest priority first, so that later (higher priority) masks overwrite.
    rank = {cls: i for i, cls in enumerate(OVERLAP_PRECEDENCE)}
    return sorted(TOTALSEG_STRUCTURES, key=lambda s: -rank[TOTALSEG_MAPPING[s]])


def merge_totalseg_masks(
    load_mask: Callable[[str], np.ndarray],
    structures: tuple[str, ...] = TOTALSEG_STRUCTURES,
) -> MergeResult:
    """Merge TotalSegmentator binary masks into one five-class label map.

    Masks are requested one at a time through ``load_mask`` (lowest priority
    first), so a caller reading files never holds more than one mask besides
    the label map. Overlaps are resolved with :data:`OVERLAP_PRECEDENCE` and
    counted.

    Args:
        load_mask: Called with a structure name, returns a binary array
            (nonzero = inside; a ``bool`` array is fastest). All masks must
            have the same shape.
        structures: Structures to merge, a subset of
            :data:`TOTALSEG_STRUCTURES`.

    Returns:
        The label map and the overlap statistics.

    Raises:
        ValueError: If a structure is not in the head or shapes differ.

    Example:
        >>> import numpy as np
        >>> masks = {s: np.zeros((2, 2, 1), np.uint8) for s in TOTALSEG_STRUCTURES}
        >>> masks['liver'][0] = 1
        >>> masks['kidney_right'][:, 0] = 1
        >>> result = merge_totalseg_masks(masks.__getitem__)
        >>> result.label[..., 0].tolist()
        [[3, 1], [3, 0]]
        >>> result.conflict_voxels, result.conflict_pairs
        (1, {('kidney', 'liver'): 1})
    """
    unknown = [s for s in structures if s not in TOTALSEG_MAPPING]
    if unknown:
        raise ValueError(f'Structures without an output class: {unknown}')
    label: np.ndarray | None = None
    flat: np.ndarray | None = None
    clashing: list[np.ndarray] = []  # flat indices of conflict voxels
    pairs: dict[tuple[str, str], int] = {}
    for name in [s for s in _merge_order() if s in structures]:
        mask = np.asarray(load_mask(name))
        if label is None:
            label = np.zeros(mask.shape, np.uint8)
            flat = label.reshape(-1)  # a view: label is C-contiguous
        elif mask.shape != label.shape:
            raise ValueError(
                f'Mask {name!r} has shape {mask.shape}, expected {label.shape}'
            )
        # Organs are small next to the volume: work on their voxel indices.
        # NumPy finds the nonzeros of a bool array ~10x faster than of uint8.
        where = np.flatnonzero(mask if mask.dtype == bool else mask != 0)
        del mask
        value = TOTALSEG_MAPPING[name]
        previous = flat[where]
        clash = (previous != BACKGROUND) & (previous != value)
        if clash.any():
            counts = np.bincount(previous[clash], minlength=NUM_CLASSES)
            for loser in np.flatnonzero(counts):
                key = (CLASS_NAMES[value], CLASS_NAMES[int(loser)])
                pairs[key] = pairs.get(key, 0) + int(counts[loser])
            clashing.append(where[clash])
        flat[where] = value
    if label is None:
        raise ValueError('No structures to merge')
    total = np.unique(np.concatenate(clashing)).size if clashing else 0
    return MergeResult(label, int(total), pairs)


def class_counts(label: np.ndarray, chunk: int = 1 << 22) -> dict[int, int]:
    """Voxels of each value 0..5 in a label map, in bounded memory.

    Counting goes chunk by chunk, so a full-size CT label map never needs a
    volume-sized temporary.

    Args:
        label: Label map with values in ``0..NUM_CLASSES - 1``.
        chunk: Voxels per chunk.

    Raises:
        ValueError: If a value is outside ``0..NUM_CLASSES - 1``.

    Example:
        >>> class_counts(np.array([0, 0, 1, 3, 3, 3], np.uint8))
        {0: 2, 1: 1, 2: 0, 3: 3, 4: 0, 5: 0}
    """
    flat = np.asarray(label).reshape(-1)
    totals = np.zeros(NUM_CLASSES, np.int64)
    for start in range(0, flat.size, chunk):
        part = flat[start : start + chunk]
        if part.size and (part.min() < 0 or part.max() >= NUM_CLASSES):
            outside = (part < 0) | (part >= NUM_CLASSES)
            bad = np.unique(part[outside])[:10].tolist()
            raise ValueError(f'Label values {bad} are outside 0..{NUM_CLASSES - 1}')
        for value in range(1, NUM_CLASSES):  # comparisons beat bincount's intp copy
            totals[value] += np.count_nonzero(part == value)
    totals[0] = flat.size - totals[1:].sum()
    return {value: int(n) for value, n in enumerate(totals)}


def remap_abdomenct1k(mask: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Map an AbdomenCT-1K mask (0..4) onto the five-class head.

    Args:
        mask: Integer array of AbdomenCT-1K values (0 background, 1 liver,
            2 kidney, 3 spleen, 4 pancreas).

    Returns:
        The ``uint8`` label map and, for each dropped source value (pancreas),
        the number of voxels that became background.

    Raises:
        ValueError: If the mask holds values outside 0..4.

    Example:
        >>> import numpy as np
        >>> label, dropped = remap_abdomenct1k(np.array([0, 1, 2, 3, 4, 4]))
        >>> label.tolist(), dropped
        ([0, 1, 3, 2, 0, 0], {4: 2})
    """
    mask = np.asarray(mask)
    if mask.size:
        low, high = mask.min().item(), mask.max().item()
        if low < min(ABDOMENCT1K_MAPPING) or high > max(ABDOMENCT1K_MAPPING):
            outside = (mask < min(ABDOMENCT1K_MAPPING)) | (
                mask > max(ABDOMENCT1K_MAPPING)
            )
            bad = [v.item() for v in np.unique(mask[outside])[:10]]
            raise ValueError(
                f'Unexpected AbdomenCT-1K label values {bad}; expected a subset of '
                f'{sorted(ABDOMENCT1K_MAPPING)}'
            )
    # One boolean pass per value keeps memory at two bytes per voxel, where a
    # lookup table indexed by the mask would allocate eight (an intp copy).
    label = np.zeros(mask.shape, np.uint8)
    for source, target in ABDOMENCT1K_MAPPING.items():
        if target != BACKGROUND:
            label[mask == source] = target
    dropped = {v: int(np.count_nonzero(mask == v)) for v in ABDOMENCT1K_DROPPED}
    return label, dropped
