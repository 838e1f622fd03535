"""Mild elastic deformation with a dense Gaussian-smoothed displacement field."""

from __future__ import annotations

import math
from typing import Any

import torch
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from ..kernels.elastic import elastic_grid
from ..kernels.elastic import sample_many
from ..operators import seed_value
from .operation import delegated_arguments
from .shell import LightCopy
from .spatial import check_finite
from .spatial import check_same_grid
from .spatial import spatial_images

_MODES = {'linear': 'bilinear', 'nearest': 'nearest'}


class DenseElastic(LightCopy, tio.SpatialTransform):
    """Warp every image with one Simard-style displacement field (deterministic).

    Intensity images are interpolated linearly (integer ones, such as an
    ``int16`` CT, become ``float32``), label maps by nearest neighbour (their
    value set is preserved); values beyond the border repeat the edge. Images
    must share one shape and must not hold NaN or Inf.
    The field is ``alpha * G_sigma * U(-1, 1)`` per axis, in voxels (see
    :func:`~torchio_ramp.kernels.elastic.elastic_grid`).

    Args:
        alpha: Scale of the displacement (voxels).
        sigma: Smoothness of the field (voxels).
        seed: Seed of the random field.
        image_interpolation: ``'linear'`` or ``'nearest'`` for scalar images.
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import DenseElastic
        >>> subject = tio.Subject(
        ...     ct=tio.ScalarImage(tensor=torch.rand(1, 16, 16, 16)),
        ...     seg=tio.LabelMap(tensor=torch.randint(0, 3, (1, 16, 16, 16))),
        ... )
        >>> out = DenseElastic(alpha=800, sigma=4, seed=0)(subject)
        >>> sorted(out.seg.data.unique().tolist())
        [0, 1, 2]
    """

    def __init__(
        self,
        alpha: float,
        sigma: float,
        seed: int = 0,
        image_interpolation: str = 'linear',
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.alpha = _non_negative(alpha, 'alpha')
        self.sigma = _non_negative(sigma, 'sigma')
        self.seed = seed_value(seed, f'{self.name}: seed')
        if image_interpolation not in _MODES:
            message = (
                f'image_interpolation must be one of {sorted(_MODES)},'
                f' not {image_interpolation!r}'
            )
            raise ValueError(message)
        self.image_interpolation = image_interpolation
        self.args_names = ['alpha', 'sigma', 'seed', 'image_interpolation']

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = spatial_images(self, subject)
        if not images:
            return subject
        check_same_grid(images, self.name)
        check_finite(images, self.name)
        generator = torch.Generator().manual_seed(self.seed)
        grid = elastic_grid(
            next(iter(images.values())).spatial_shape,
            alpha=self.alpha,
            sigma=self.sigma,
            generator=generator,
        )
        sources, modes = [], []
        for image in images.values():
            data = image.data
            if isinstance(image, tio.LabelMap):
                mode = 'nearest'
            else:
                mode = _MODES[self.image_interpolation]
                if mode == 'bilinear' and not data.is_floating_point():
                    data = data.float()  # e.g. an int16 CT: interpolate in float32
            sources.append(data)
            modes.append(mode)
        # one upsampling of the grid per slab for all images (CT and labels)
        warped = sample_many(sources, grid, modes=modes)
        for image, data in zip(images.values(), warped, strict=True):
            image.set_data(data)
        return subject


class RandomDenseElastic(LightCopy, RandomTransform, tio.SpatialTransform):
    """Random mild elastic deformation (paper Table 1: alpha 80, sigma 10).

    Args:
        alpha: Displacement scale in voxels: a number (fixed, the paper's
            setting) or a range ``(low, high)`` sampled uniformly.
        sigma: Field smoothness in voxels: a number or a range.
        image_interpolation: ``'linear'`` or ``'nearest'`` for scalar images.
        **kwargs: See :class:`torchio.transforms.Transform`.

    With ``alpha=80, sigma=10`` the displacement has a standard deviation of
    about 0.2 voxels: the paper's "mild" deformation.

    Example:
        >>> from torchio_ramp import RandomDenseElastic
        >>> elastic = RandomDenseElastic(p=0.15)
    """

    def __init__(
        self,
        alpha: float | tuple[float, float] = 80.0,
        sigma: float | tuple[float, float] = 10.0,
        image_interpolation: str = 'linear',
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.alpha_range = _fixed_or_range(alpha, 'alpha')
        self.sigma_range = _fixed_or_range(sigma, 'sigma')
        self.image_interpolation = image_interpolation
        DenseElastic(1.0, 1.0, image_interpolation=image_interpolation)  # validate

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        arguments = delegated_arguments(self)
        transform = DenseElastic(
            alpha=self.sample_uniform(*self.alpha_range),
            sigma=self.sample_uniform(*self.sigma_range),
            seed=self._get_random_seed(),
            image_interpolation=self.image_interpolation,
            **arguments,
        )
        return transform(subject)


def _non_negative(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f'{name} must be a finite non-negative number, not {value!r}')
    return float(value)


def _fixed_or_range(value: Any, name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = _non_negative(value, name)
        return value, value
    low, high = tio.Transform._parse_range(value, name, min_constraint=0)
    return _non_negative(low, name), _non_negative(high, name)
