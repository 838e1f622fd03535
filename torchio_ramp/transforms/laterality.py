"""Flips that keep left/right labels anatomically correct.

Flipping the patient's left-right axis turns a left kidney into a right one. With
laterality-specific labels the label values must be swapped as well (paper,
section 2.3); these transforms find that axis from each label map's orientation
and swap the declared pairs. With no pairs they are plain TorchIO flips.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torchio as tio
from torchio.transforms.augmentation.spatial.random_flip import _ensure_axes_indices

from .operation import delegated_arguments
from .shell import LightCopy
from .spatial import check_finite
from .spatial import check_same_grid
from .spatial import flip
from .spatial import spatial_images


def _check_pairs(label_pairs: Mapping[int, int] | None) -> dict[int, int]:
    if label_pairs is None:
        return {}
    if not isinstance(label_pairs, Mapping):
        message = f'label_pairs must be a mapping such as {{2: 3}}, not {label_pairs!r}'
        raise ValueError(message)
    pairs: dict[int, int] = {}
    for left, right in label_pairs.items():
        for value in (left, right):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                message = f'label_pairs values must be integers, not {value!r}'
                raise ValueError(message)
        left, right = int(left), int(right)
        if left == right or left in pairs or right in pairs:
            raise ValueError(f'label_pairs must be disjoint pairs, not {label_pairs!r}')
        pairs[left] = right
        pairs[right] = left
    return pairs


def lateral_axis(image: tio.Image) -> int:
    """Index (0, 1 or 2) of the patient's left-right axis in ``image``."""
    for axis, code in enumerate(image.orientation):
        if code in ('L', 'R'):
            return axis
    raise ValueError(f'No left-right axis in orientation {image.orientation}')


def swap_labels(data: torch.Tensor, pairs: Mapping[int, int]) -> torch.Tensor:
    """Exchange label values according to ``pairs`` (``{a: b, b: a}``).

    Example:
        >>> swap_labels(torch.tensor([0, 2, 3, 1]), {2: 3, 3: 2})
        tensor([0, 3, 2, 1])
    """
    out = data.clone()
    for source, target in pairs.items():
        out[data == source] = target
    return out


class LateralityFlip(LightCopy, tio.Flip):
    """Flip along ``axes`` and swap left/right label values on the lateral axis.

    Unlike :class:`torchio.Flip`, images of different shapes are refused
    (they would be misaligned) and 2-D images ``(C, H, W, 1)`` can be flipped
    along any axis.

    Args:
        axes: Axes to flip, as in :class:`torchio.Flip` (indices or anatomical
            labels such as ``'LR'``).
        label_pairs: Label values to exchange when the patient's left-right axis
            is flipped, e.g. ``{2: 3}`` for kidney_left = 2 and
            kidney_right = 3. The lateral axis is read from each label map's
            orientation.
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import LateralityFlip
        >>> label = torch.zeros(1, 4, 1, 1, dtype=torch.uint8)
        >>> label[0, 0] = 2  # left kidney on the first voxel of the R-L axis
        >>> subject = tio.Subject(seg=tio.LabelMap(tensor=label))
        >>> flipped = LateralityFlip(axes=0, label_pairs={2: 3})(subject)
        >>> flipped.seg.data.flatten().tolist()  # moved and renamed
        [0, 0, 0, 3]
    """

    def __init__(
        self, axes: Any, label_pairs: Mapping[int, int] | None = None, **kwargs
    ):
        super().__init__(axes, **kwargs)
        self.label_pairs = dict(label_pairs) if label_pairs else None
        self._swaps = _check_pairs(label_pairs)
        self.args_names = ['axes', 'label_pairs']

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = spatial_images(self, subject)
        if not images:
            return subject
        check_same_grid(images, self.name)
        check_finite(images, self.name)
        axes = sorted(set(_ensure_axes_indices(subject, self.axes)))
        for image in images.values():
            data = flip(image.data, axes)
            is_label = isinstance(image, tio.LabelMap)
            if self._swaps and is_label and lateral_axis(image) in axes:
                data = swap_labels(data, self._swaps)
            image.set_data(data)
        return subject


class RandomLateralityFlip(LightCopy, tio.RandomFlip):
    """Random per-axis flips that swap left/right labels on the lateral axis.

    Same sampling as :class:`torchio.RandomFlip`; delegates to
    :class:`LateralityFlip`.

    Args:
        axes: Axes that may be flipped (default all three).
        flip_probability: Probability of flipping each axis (paper: 0.5).
        label_pairs: See :class:`LateralityFlip`.
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> from torchio_ramp import RandomLateralityFlip
        >>> flip = RandomLateralityFlip(label_pairs={2: 3})
    """

    def __init__(
        self,
        axes: Any = (0, 1, 2),
        flip_probability: float = 0.5,
        label_pairs: Mapping[int, int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(axes=axes, flip_probability=flip_probability, **kwargs)
        _check_pairs(label_pairs)
        self.label_pairs = dict(label_pairs) if label_pairs else None

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = spatial_images(self, subject)
        check_same_grid(images, type(self).__name__)
        potential = _ensure_axes_indices(subject, self.axes)
        hot = self.get_params(self.flip_probability)
        axes = [i for i in range(3) if hot[i] and i in potential]
        if not axes:  # LateralityFlip checks otherwise
            check_finite(images, type(self).__name__)
            return subject
        arguments = delegated_arguments(self)
        flip = LateralityFlip(axes=axes, label_pairs=self.label_pairs, **arguments)
        return flip(subject)
