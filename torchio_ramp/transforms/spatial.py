"""Checks shared by the spatial transforms (flips, elastic deformation)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torchio as tio

from ..kernels.base import check_intensities


def spatial_images(transform: tio.Transform, subject: tio.Subject) -> dict:
    """Images a spatial transform moves (intensity images and label maps).

    Example:
        >>> subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.zeros(1, 2, 2, 2)))
        >>> list(spatial_images(tio.Flip(0), subject))
        ['ct']
    """
    return subject.get_images_dict(
        intensity_only=False,
        include=transform.include,
        exclude=transform.exclude,
    )


def check_same_grid(images: Mapping[str, tio.Image], owner: str) -> None:
    """Refuse images of different spatial shapes or no voxels.

    A spatial transform moves every image of a subject the same way; images
    of different shapes would come out misaligned.

    Raises:
        ValueError: Naming ``owner`` and each image's shape.

    Example:
        >>> ct = tio.ScalarImage(tensor=torch.zeros(1, 4, 4, 4))
        >>> seg = tio.LabelMap(tensor=torch.zeros(1, 4, 4, 3))
        >>> check_same_grid({'ct': ct, 'seg': seg}, 'Flip')
        Traceback (most recent call last):
        ...
        ValueError: Flip: images of different shapes would be misaligned: ct (4, 4, 4), seg (4, 4, 3)
    """  # noqa: E501
    shapes = {name: tuple(image.spatial_shape) for name, image in images.items()}
    if len(set(shapes.values())) > 1:
        listed = ', '.join(f'{name} {shape}' for name, shape in shapes.items())
        message = f'{owner}: images of different shapes would be misaligned: {listed}'
        raise ValueError(message)
    for name, image in images.items():
        if image.data.numel() == 0:
            shape = tuple(image.data.shape)
            raise ValueError(f'{owner}: image "{name}" is empty (shape {shape})')


def check_finite(images: Mapping[str, tio.Image], owner: str) -> None:
    """Refuse NaN/Inf in the intensity images (one reduction each).

    Label maps are integers in practice and are not checked.

    Raises:
        ~torchio_ramp.kernels.IntensityError: Naming ``owner`` and the image.
    """
    for name, image in images.items():
        if not isinstance(image, tio.LabelMap) and image.data.is_floating_point():
            check_intensities(image.data, name, owner, normalized=False)


def flip(data: torch.Tensor, axes: list[int]) -> torch.Tensor:
    """Flip ``(C, I, J, K)`` data along spatial ``axes`` (0, 1, 2).

    Unlike NumPy's view with negative strides (which PyTorch cannot hold,
    e.g. for a 2-D image of shape ``(1, H, W, 1)``), this makes a copy.

    Example:
        >>> flip(torch.arange(3).reshape(1, 3, 1, 1), [0]).flatten().tolist()
        [2, 1, 0]
    """
    return torch.flip(data, [axis + 1 for axis in axes])
