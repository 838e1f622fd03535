"""TorchIO's closest built-in for each RAMP operator, and RAMP built from them.

:data:`TORCHIO_EQUIVALENTS` maps every operator name to an :class:`Equivalent`
(a factory of the TorchIO transform given our kernel parameters, and what
differs) or to ``None`` where TorchIO has nothing close. Images are assumed to
have 1 mm spacing, so TorchIO's millimetres are our voxels.

:class:`TorchIORampCorrupt` and :class:`TorchIORamp` are RAMP's pipelines
rebuilt from those built-ins where they exist (our transforms elsewhere), with
the same sampling as :class:`torchio_ramp.RampCorrupt` and
:class:`torchio_ramp.Ramp` (probabilities, ``k``, families, parameter ranges).
Like our pipelines they deep-copy the subject once and run their children with
``copy=False``, so the comparison is about the operators, not the copies; the
output of each TorchIO built-in is clipped to [0, 1] (``tio.Clamp``), as our
operators clip theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from torchio_ramp import Corruption
from torchio_ramp import CTIntensity
from torchio_ramp.families import FAMILIES
from torchio_ramp.families import FAMILY_NAMES
from torchio_ramp.intensity_ops import INTENSITY_OPERATIONS
from torchio_ramp.operators import Operator

Parameters = Mapping[str, Any]

ELASTIC_MAX_DISPLACEMENT = 1.0
"""mm (voxels) for ``tio.RandomElasticDeformation``: our alpha 80, sigma 10 field
has a standard deviation of about 0.2 voxels. TorchIO's cost does not depend on
it; its default (7.5 mm) warns about folding on small test volumes."""


@dataclass(frozen=True)
class Equivalent:
    """How TorchIO does (nearly) the same thing.

    Args:
        build: ``build(parameters, **transform_kwargs)`` returns the TorchIO
            transform for our kernel ``parameters``; ``transform_kwargs`` go to
            every TorchIO transform it creates (e.g. ``copy=False``).
        description: The TorchIO call, for the tables.
        difference: What differs from our operator (empty if the math is the
            same).
    """

    build: Callable[..., tio.Transform]
    description: str
    difference: str = ''


def _motion_blur(parameters: Parameters, **kwargs: Any) -> tio.Transform:
    sigma = parameters['sigma']
    per_axis = [
        tuple(sigma if i == axis else 0.0 for i in range(3)) for axis in range(3)
    ]
    return tio.OneOf([tio.Blur(std=stds, **kwargs) for stds in per_axis], **kwargs)


def _compound(parameters: Parameters, **kwargs: Any) -> tio.Transform:
    level = parameters['level']
    return tio.Compose(
        [
            tio.RandomNoise(std=(level, level), **kwargs),
            tio.RandomBlur(std=(5 * level, 5 * level), **kwargs),
            tio.RandomBiasField(coefficients=3 * level, **kwargs),
        ],
        **kwargs,
    )


def _window_level(parameters: Parameters, **kwargs: Any) -> tio.Transform:
    centre = 0.5 + parameters['center_shift']
    half_width = parameters['width_scale'] / 2
    window = (centre - half_width, centre + half_width)
    return tio.Compose(
        [
            tio.RescaleIntensity(out_min_max=(0, 1), in_min_max=window, **kwargs),
            tio.Clamp(out_min=0, out_max=1, **kwargs),
        ],
        **kwargs,
    )


TORCHIO_EQUIVALENTS: dict[str, Equivalent | None] = {
    'gaussian_noise': Equivalent(
        lambda p, **kw: tio.RandomNoise(std=(p['std'], p['std']), **kw),
        'RandomNoise',
        'no clipping to [0, 1]',
    ),
    'blur': Equivalent(
        lambda p, **kw: tio.RandomBlur(std=(p['sigma'], p['sigma']), **kw),
        'RandomBlur',
        'scipy.ndimage.gaussian_filter (reflect borders, truncate 4)',
    ),
    'rician_noise': None,
    'motion_blur': Equivalent(
        _motion_blur,
        'OneOf(Blur on one axis)',
        'same math; RandomMotion (k-space rigid motion) is a different model',
    ),
    'salt_pepper': None,
    'speckle_noise': None,
    'bias_field': Equivalent(
        lambda p, **kw: tio.RandomBiasField(coefficients=p['strength'], **kw),
        'RandomBiasField',
        'order-3 polynomial field evaluated per voxel',
    ),
    'ghosting': Equivalent(
        lambda p, **kw: tio.RandomGhosting(
            num_ghosts=p['num_ghosts'],
            axes=(0, 1, 2),
            intensity=(p['intensity'], p['intensity']),
            **kw,
        ),
        'RandomGhosting',
        '3-D FFT k-space ghosts (the paper uses shifted copies)',
    ),
    'intensity_shift': None,
    'contrast_reduction': None,
    'downsample': Equivalent(
        lambda p, **kw: tio.RandomAnisotropy(
            axes=(0, 1, 2), downsampling=(p['factor'], p['factor']), **kw
        ),
        'RandomAnisotropy',
        'one random axis only, SimpleITK nearest down / linear up',
    ),
    'stripe': None,
    'compound': Equivalent(
        _compound,
        'Compose(RandomNoise, RandomBlur, RandomBiasField)',
        'TorchIO blur and polynomial bias field',
    ),
    'gamma': Equivalent(
        lambda p, **kw: tio.Gamma(gamma=p['gamma1'] * p['gamma2'], **kw),
        'Gamma',
        'one exponent gamma1 * gamma2 (equal on [0, 1])',
    ),
    'window_level': Equivalent(
        _window_level,
        'Compose(RescaleIntensity, Clamp)',
        '',
    ),
    'histogram_warp': None,
    'local_contrast': None,
    'sharpen': None,
    'elastic': Equivalent(
        lambda p, **kw: tio.RandomElasticDeformation(
            max_displacement=ELASTIC_MAX_DISPLACEMENT, **kw
        ),
        'RandomElasticDeformation',
        'SimpleITK cubic B-spline on 7 control points per axis',
    ),
    'flip': Equivalent(
        lambda p, **kw: tio.Flip(axes=tuple(p['axes']), **kw),
        'Flip',
        '',
    ),
}
"""Operator name -> TorchIO's closest built-in (``None``: TorchIO has none)."""


def sample_parameters(operator: Operator) -> dict[str, Any]:
    """Draw each parameter uniformly from its training range (torch's RNG).

    Example:
        >>> from torchio_ramp.families import FAMILIES
        >>> 0.02 <= sample_parameters(FAMILIES['gaussian_noise'])['std'] <= 0.2
        True
    """
    values: dict[str, Any] = {}
    for parameter in operator.parameters:
        u = float(torch.rand(1).item())
        values[parameter.name] = parameter.low + u * (parameter.high - parameter.low)
    return {**values, **operator.default_options()}


def _seed() -> int:
    return int(torch.randint(0, 2**31, (1,)).item())


def _apply_operator(
    name: str,
    operator: Operator,
    ours: Callable[..., tio.Transform],
    subject: tio.Subject,
) -> tio.Subject:
    """Apply TorchIO's equivalent of ``name`` if it exists, else ours."""
    parameters = sample_parameters(operator)
    equivalent = TORCHIO_EQUIVALENTS[name]
    if equivalent is None:
        transform = ours(name, parameters=parameters, seed=_seed(), copy=False)
    else:
        # TorchIO's operators do not clip (noise, cubic B-splines overshoot);
        # ours refuse values outside [0, 1], and clip themselves.
        transform = tio.Compose(
            [equivalent.build(parameters, copy=False), _clip()], copy=False
        )
    return transform(subject)


def _clip() -> tio.Transform:
    return tio.Clamp(out_min=0, out_max=1, copy=False)


class TorchIORampCorrupt(RandomTransform, tio.IntensityTransform):
    """:class:`torchio_ramp.RampCorrupt` with TorchIO built-ins where they exist.

    Same sampling as ``RampCorrupt`` (Bernoulli ``p``, ``k`` uniform in
    ``num_corruptions``, ``k`` distinct families in random order, parameters
    uniform in the training ranges). For the same torch seed both draw the same
    ``k`` and the same families.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
        >>> out = TorchIORampCorrupt(p=1)(subject)
        >>> out.ct.shape
        (1, 8, 8, 8)
    """

    def __init__(
        self,
        p: float = 0.85,
        num_corruptions: tuple[int, int] = (2, 4),
        **kwargs: Any,
    ):
        super().__init__(p=p, **kwargs)
        self.num_corruptions = num_corruptions
        self.families = FAMILY_NAMES

    def get_params(self) -> list[str]:
        low, high = self.num_corruptions
        k = int(torch.randint(low, high + 1, (1,)).item())
        order = torch.randperm(len(self.families))[:k].tolist()
        return [self.families[i] for i in order]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for name in self.get_params():
            subject = _apply_operator(name, FAMILIES[name], Corruption, subject)
        return subject


class TorchIORampIntensity(RandomTransform, tio.IntensityTransform):
    """:class:`torchio_ramp.RampIntensity` with TorchIO built-ins where they exist.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
        >>> TorchIORampIntensity()(subject).ct.shape
        (1, 8, 8, 8)
    """

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for name, operation in INTENSITY_OPERATIONS.items():
            if torch.rand(1).item() < operation.probability:
                subject = _apply_operator(name, operation, CTIntensity, subject)
        return subject


class TorchIORamp(RandomTransform):
    """:class:`torchio_ramp.Ramp` from TorchIO built-ins where they exist.

    ``RandomFlip`` (each axis with p = 0.5), ``RandomElasticDeformation``
    (p = 0.15, clipped to [0, 1] as our operators clip), then
    :class:`TorchIORampIntensity` and :class:`TorchIORampCorrupt`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
        >>> TorchIORamp()(subject).ct.shape
        (1, 8, 8, 8)
    """

    def __init__(self, p_corrupt: float = 0.85, **kwargs: Any):
        super().__init__(**kwargs)
        children = {'copy': False}
        self.transforms = [
            tio.RandomFlip(axes=(0, 1, 2), flip_probability=0.5, **children),
            tio.Compose(
                [
                    tio.RandomElasticDeformation(
                        max_displacement=ELASTIC_MAX_DISPLACEMENT, **children
                    ),
                    _clip(),
                ],
                p=0.15,
                **children,
            ),
            TorchIORampIntensity(**children),
            TorchIORampCorrupt(p=p_corrupt, **children),
        ]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for transform in self.transforms:
            subject = transform(subject)
        return subject
