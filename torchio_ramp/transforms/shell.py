"""A lighter TorchIO transform shell: copy the subject, not its voxels.

TorchIO's ``copy=True`` deep-copies the whole subject before a transform, so
the caller's subject is never modified. RAMP's transforms never modify voxel
tensors in place: every kernel returns a new tensor, which the transform stores
with ``image.set_data``. Copying the subject's *structure* (new ``Subject`` and
``Image`` objects, affines and history) is then enough to leave the caller's
subject untouched; the voxels are only copied for images the transform left
unchanged, when it returns (so the result never shares a tensor with the
input, exactly as after a deep copy). For a corrupted CT this saves a copy of
the volume and of its label map: time, and 1.25 volumes of peak memory.

Composites (:class:`~torchio_ramp.RampCorrupt` and the other stages) also
check their images once, on entry (:func:`check_entry`), and run their children
inside :func:`~torchio_ramp.kernels.base.inputs_checked`, where the kernels
skip the check that every public entry otherwise makes: the children only see
the composite's checked input and the kernels' ``[0, 1]`` outputs.
"""

from __future__ import annotations

import contextvars
import copy
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torchio as tio
from torchio.transforms.data_parser import DataParser

from ..kernels.base import check_intensities
from ..kernels.base import inputs_checked


def structure_copy(subject: tio.Subject) -> tio.Subject:
    """A copy of ``subject`` whose images share their voxel tensors.

    New ``Subject`` and ``Image`` objects, copied affines, history and other
    entries (deep-copied); unloaded images stay unloaded.

    Example:
        >>> ct = tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2))
        >>> subject = tio.Subject(ct=ct, note={'id': 1})
        >>> twin = structure_copy(subject)
        >>> twin.ct is subject.ct, twin.ct.data is subject.ct.data
        (False, True)
        >>> twin['note'] is subject['note'], twin['note'] == subject['note']
        (False, True)
    """
    twin = copy.copy(subject)
    for key, value in subject.items():
        if isinstance(value, tio.Image):
            dict.__setitem__(twin, key, copy.copy(value))
        else:
            dict.__setitem__(twin, key, copy.deepcopy(value))
    twin.applied_transforms = list(subject.applied_transforms)
    twin.update_attributes()
    return twin


_CALLER_STORAGES: contextvars.ContextVar[frozenset[int] | None] = (
    contextvars.ContextVar('torchio_ramp_caller_storages', default=None)
)


def owned(data: torch.Tensor) -> bool:
    """Whether ``data`` was made inside the running transform (not the caller's).

    Inside a transform called with ``copy=True``, an image tensor that is not
    one of the caller's was produced by an earlier kernel of the same call, so
    the next kernel may overwrite it (``out=``) instead of allocating a volume.
    Outside such a call nothing is owned.

    Example:
        >>> owned(torch.zeros(1))
        False
    """
    storages = _CALLER_STORAGES.get()
    if storages is None:
        return False
    return data.untyped_storage().data_ptr() not in storages


def _storages(subject: tio.Subject) -> set[int]:
    """Addresses of the loaded voxel storages of a subject's images."""
    return {
        image[tio.DATA].untyped_storage().data_ptr()
        for image in subject.get_images(intensity_only=False)
        if image._loaded
    }


def unshare(subject: tio.Subject, storages: set[int]) -> None:
    """Copy the voxels of every image whose tensor lives in ``storages``."""
    for image in subject.get_images(intensity_only=False):
        if not image._loaded:
            continue
        data = image[tio.DATA]
        if data.untyped_storage().data_ptr() in storages:
            image.set_data(data.clone())


class LightCopy:
    """Mixin for RAMP transforms: ``copy=True`` without a deep copy.

    Same behaviour as :meth:`torchio.transforms.Transform.__call__` (the
    probability draw, input types, ``keep``, history), except that the subject
    is copied with :func:`structure_copy` and the voxels of images the
    transform did not replace are copied when it returns. Only for transforms
    that never modify a voxel tensor in place. Composites set
    ``checks_on_entry`` to check their images once (:meth:`check_entry`, with
    or without the ``[0, 1]`` range: ``normalized_on_entry``) and run their
    children without further checks.
    """

    checks_on_entry = False
    normalized_on_entry = True

    def __call__(self, data: Any) -> Any:
        transform: Any = self
        if torch.rand(1).item() > transform.probability:
            return data
        if transform.parse_input:
            parser = DataParser(
                data, keys=transform.include, label_keys=transform.label_keys
            )
            subject = parser.get_subject()
        else:
            subject = data
        kept: dict[str, tio.Image] = {}
        if transform.keep is not None:
            for name, new_name in transform.keep.items():
                kept[new_name] = copy.deepcopy(subject.get_image(name))
        token = None
        if transform.copy:
            storages = _storages(subject)
            subject = structure_copy(subject)
            token = _CALLER_STORAGES.set(frozenset(storages))
        try:
            with np.errstate(all='raise', under='ignore'):
                transformed = self._apply_checked(subject)
        finally:
            if token is not None:
                _CALLER_STORAGES.reset(token)
        if transform.copy:
            unshare(transformed, storages)
        for name, image in kept.items():
            transformed.add_image(image, name)
        if not transform.parse_input:
            return transformed
        transform._add_transform_to_subject_history(transformed)
        for image in transformed.get_images(intensity_only=False):
            ndim = image.data.ndim
            assert ndim == 4, f'Output of {transform.name} is {ndim}D'
        return parser.get_output(transformed)

    def _apply_checked(self, subject: tio.Subject) -> tio.Subject:
        if not self.checks_on_entry:
            return self.apply_transform(subject)  # type: ignore[attr-defined]
        self.check_entry(subject)
        with inputs_checked():
            return self.apply_transform(subject)  # type: ignore[attr-defined]

    def entry_images(self, subject: tio.Subject) -> Iterable[tuple[str, tio.Image]]:
        """The images the composite's children may read as intensities."""
        transform: Any = self
        images = subject.get_images_dict(
            intensity_only=False, include=transform.include, exclude=transform.exclude
        )
        for name, image in images.items():
            if not isinstance(image, tio.LabelMap):
                yield name, image

    def check_entry(self, subject: tio.Subject) -> None:
        """Refuse NaN/Inf and, if ``normalized_on_entry``, values outside [0, 1]."""
        owner = type(self).__name__
        for name, image in self.entry_images(subject):
            check_intensities(
                image.data, name, owner, normalized=self.normalized_on_entry
            )
