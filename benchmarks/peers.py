"""The same augmentations in MONAI and batchgeneratorsv2: the peer columns.

:data:`PEERS` maps an operator name to the transforms of other libraries that
do the same augmentation (what differs is listed with each), as
:class:`Peer` entries. Both libraries are optional: :func:`available` says
which are installed, and the tables say which were present. TorchIO's
built-ins are in :mod:`torchio_equivalents`.

Each peer is built for our kernel parameters (the middle of each training
range) and called the way that library is used: MONAI array transforms on a
tensor (with ``monai.data.set_track_meta(False)`` around each call, MONAI's
fastest setting, so no ``MetaTensor`` wrapping; the flag is restored after),
batchgeneratorsv2 transforms on a ``{'image': tensor}`` dictionary. Peers
that modify their input in place (most of batchgeneratorsv2) get a fresh copy
of the patch before each call, outside the timed region, as they would get
freshly loaded data; their random state is seeded outside the timed region
too.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Parameters = Mapping[str, Any]

LIBRARIES = ('MONAI', 'batchgeneratorsv2')
_MODULES = {'MONAI': 'monai', 'batchgeneratorsv2': 'batchgeneratorsv2'}


def available(library: str) -> bool:
    """Whether ``library`` (``'MONAI'`` or ``'batchgeneratorsv2'``) imports.

    Example:
        >>> available('MONAI') in (True, False)
        True
    """
    return importlib.util.find_spec(_MODULES[library]) is not None


def version(library: str) -> str | None:
    """The installed version of ``library``, or ``None``."""
    if not available(library):
        return None
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version(_MODULES[library])
    except PackageNotFoundError:
        return 'unknown version'


class PeerCall:
    """A built peer transform: ``seed(i)`` (untimed), then ``__call__(x)``."""

    def seed(self, index: int) -> None:
        """Seed the library's random state for call ``index``."""

    def __call__(self, x: torch.Tensor) -> object:
        raise NotImplementedError


class MonaiCall(PeerCall):
    """A MONAI array transform; ``choose(index)`` may pick one of several."""

    def __init__(
        self,
        transforms: Sequence[Any],
        choose: Callable[[int], int] | None = None,
    ):
        self.transforms = list(transforms)
        self.choose = choose
        self.current = self.transforms[0]

    def seed(self, index: int) -> None:
        if self.choose is not None:
            self.current = self.transforms[self.choose(index)]
        if hasattr(self.current, 'set_random_state'):
            self.current.set_random_state(seed=index)

    def __call__(self, x: torch.Tensor) -> object:
        from monai.data import get_track_meta
        from monai.data import set_track_meta

        # MONAI's fastest setting for this call only: the global flag is
        # restored, so other MONAI users in the process keep MetaTensors
        previous = get_track_meta()
        set_track_meta(False)
        try:
            return self.current(x)
        finally:
            set_track_meta(previous)


class BatchgeneratorsCall(PeerCall):
    """A batchgeneratorsv2 transform called on ``{'image': x}``.

    ``parameters``, when given, bypasses the transform's own random draw (for
    transforms such as ``MirrorTransform`` that apply with probability 1/2):
    ``apply(data, **parameters(index))``, the transform's public two-step API.
    """

    def __init__(
        self,
        transforms: Sequence[Any],
        choose: Callable[[int], int] | None = None,
        parameters: Callable[[int], dict[str, Any]] | None = None,
    ):
        self.transforms = list(transforms)
        self.choose = choose
        self.parameters = parameters
        self.current = self.transforms[0]
        self.fixed: dict[str, Any] | None = None

    def seed(self, index: int) -> None:
        torch.manual_seed(index)
        np.random.seed(index % 2**32)
        if self.choose is not None:
            self.current = self.transforms[self.choose(index)]
        if self.parameters is not None:
            self.fixed = self.parameters(index)

    def __call__(self, x: torch.Tensor) -> object:
        if self.fixed is not None:
            return self.current.apply({'image': x}, **self.fixed)['image']
        return self.current(image=x)['image']


@dataclass(frozen=True)
class Peer:
    """One library's transform for one of our operators.

    Args:
        library: ``'MONAI'`` or ``'batchgeneratorsv2'``.
        description: The call, for the tables.
        build: ``build(parameters, shape)`` -> :class:`PeerCall`, for our
            kernel ``parameters`` and a ``(C, D, H, W)`` patch shape.
        difference: What differs from our operator (empty: the same math).
        in_place: The peer modifies its input (it gets a fresh copy per call).
    """

    library: str
    description: str
    build: Callable[[Parameters, Sequence[int]], PeerCall]
    difference: str = ''
    in_place: bool = False


def _sign(index: int) -> int:
    """0 or 1 from the call index (which of two prepared transforms)."""
    return random.Random(index).randrange(2)


def _axis(index: int) -> int:
    return random.Random(index).randrange(3)


# MONAI ------------------------------------------------------------------------


def _monai(name: str, *args: Any, **kwargs: Any) -> Any:
    transforms = importlib.import_module('monai.transforms')
    return getattr(transforms, name)(*args, **kwargs)


def _monai_noise(p: Parameters, shape: Sequence[int]) -> PeerCall:
    return MonaiCall(
        [_monai('RandGaussianNoise', prob=1.0, std=p['std'], sample_std=False)]
    )


def _monai_rician(p: Parameters, shape: Sequence[int]) -> PeerCall:
    return MonaiCall(
        [_monai('RandRicianNoise', prob=1.0, std=p['std'], sample_std=False)]
    )


def _monai_blur(p: Parameters, shape: Sequence[int]) -> PeerCall:
    return MonaiCall([_monai('GaussianSmooth', sigma=p['sigma'])])


def _monai_motion_blur(p: Parameters, shape: Sequence[int]) -> PeerCall:
    sigma = p['sigma']
    per_axis = [
        _monai('GaussianSmooth', sigma=[sigma if i == a else 0.0 for i in range(3)])
        for a in range(3)
    ]
    return MonaiCall(per_axis, choose=_axis)


def _monai_bias(p: Parameters, shape: Sequence[int]) -> PeerCall:
    strength = p['strength']
    return MonaiCall(
        [_monai('RandBiasField', degree=3, coeff_range=(strength, strength), prob=1.0)]
    )


def _monai_shift(p: Parameters, shape: Sequence[int]) -> PeerCall:
    shift = p['shift']
    return MonaiCall(
        [_monai('ShiftIntensity', offset=-shift), _monai('ShiftIntensity', shift)],
        choose=_sign,
    )


def _monai_downsample(p: Parameters, shape: Sequence[int]) -> PeerCall:
    zoom = 1.0 / p['factor']
    return MonaiCall(
        [_monai('RandSimulateLowResolution', prob=1.0, zoom_range=(zoom, zoom))]
    )


def _monai_gamma(p: Parameters, shape: Sequence[int]) -> PeerCall:
    return MonaiCall([_monai('AdjustContrast', gamma=p['gamma1'] * p['gamma2'])])


def _window(p: Parameters) -> tuple[float, float]:
    centre = 0.5 + p['center_shift']
    half_width = p['width_scale'] / 2
    return centre - half_width, centre + half_width


def _monai_window(p: Parameters, shape: Sequence[int]) -> PeerCall:
    low, high = _window(p)
    return MonaiCall(
        [
            _monai(
                'ScaleIntensityRange',
                a_min=low,
                a_max=high,
                b_min=0.0,
                b_max=1.0,
                clip=True,
            )
        ]
    )


def _monai_histogram(p: Parameters, shape: Sequence[int]) -> PeerCall:
    return MonaiCall([_monai('RandHistogramShift', num_control_points=10, prob=1.0)])


def _monai_sharpen(p: Parameters, shape: Sequence[int]) -> PeerCall:
    return MonaiCall(
        [
            _monai(
                'GaussianSharpen',
                sigma1=p['sigma'],
                sigma2=p['sigma'],
                alpha=p['amount'],
            )
        ]
    )


def _monai_elastic(p: Parameters, shape: Sequence[int]) -> PeerCall:
    sigma, alpha = p['sigma'], p['alpha']
    return MonaiCall(
        [
            _monai(
                'Rand3DElastic',
                sigma_range=(sigma, sigma),
                magnitude_range=(alpha, alpha),
                prob=1.0,
                padding_mode='border',
            )
        ]
    )


def _monai_flip(p: Parameters, shape: Sequence[int]) -> PeerCall:
    return MonaiCall([_monai('Flip', spatial_axis=list(p['axes']))])


# batchgeneratorsv2 ------------------------------------------------------------


def _bg(module: str, name: str, *args: Any, **kwargs: Any) -> Any:
    transforms = importlib.import_module(f'batchgeneratorsv2.transforms.{module}')
    return getattr(transforms, name)(*args, **kwargs)


def _bg_noise(p: Parameters, shape: Sequence[int]) -> PeerCall:
    std = p['std']
    return BatchgeneratorsCall(
        [
            _bg(
                'intensity.gaussian_noise',
                'GaussianNoiseTransform',
                noise_variance=(std, std),
                p_per_channel=1.0,
                synchronize_channels=True,
            )
        ]
    )


def _bg_rician(p: Parameters, shape: Sequence[int]) -> PeerCall:
    std = p['std']
    return BatchgeneratorsCall(
        [_bg('noise.rician', 'RicianNoiseTransform', noise_variance=(std, std))]
    )


def _bg_blur(p: Parameters, shape: Sequence[int]) -> PeerCall:
    sigma = p['sigma']
    return BatchgeneratorsCall(
        [
            _bg(
                'noise.gaussian_blur',
                'GaussianBlurTransform',
                blur_sigma=(sigma, sigma),
                synchronize_channels=True,
                synchronize_axes=True,
                p_per_channel=1.0,
            )
        ]
    )


def _bg_shift(p: Parameters, shape: Sequence[int]) -> PeerCall:
    shift = p['shift']
    return BatchgeneratorsCall(
        [
            _bg(
                'intensity.brightness',
                'BrightnessAdditiveTransform',
                # (mu, sigma) is read as a range when channels are synchronised
                mu=sign * shift,
                sigma=sign * shift,
                synchronize_channels=True,
            )
            for sign in (-1, 1)
        ],
        choose=_sign,
    )


def _bg_contrast(p: Parameters, shape: Sequence[int]) -> PeerCall:
    factor = 1.0 - p['blend']
    return BatchgeneratorsCall(
        [
            _bg(
                'intensity.contrast',
                'ContrastTransform',
                contrast_range=(factor, factor),
                preserve_range=False,
                synchronize_channels=True,
            )
        ]
    )


def _bg_downsample(p: Parameters, shape: Sequence[int]) -> PeerCall:
    scale = 1.0 / p['factor']
    return BatchgeneratorsCall(
        [
            _bg(
                'spatial.low_resolution',
                'SimulateLowResolutionTransform',
                scale=(scale, scale),
                synchronize_channels=True,
                synchronize_axes=True,
                ignore_axes=None,
            )
        ]
    )


def _bg_gamma(p: Parameters, shape: Sequence[int]) -> PeerCall:
    value = p['gamma1'] * p['gamma2']
    return BatchgeneratorsCall(
        [
            _bg(
                'intensity.gamma',
                'GammaTransform',
                gamma=(value, value),
                p_invert_image=0.0,
                synchronize_channels=True,
                p_per_channel=1.0,
                p_retain_stats=0.0,
            )
        ]
    )


ELASTIC_MAGNITUDE = 1.0
"""batchgeneratorsv2's elastic magnitude is the field's maximum in voxels; our
alpha 80, sigma 10 field peaks near 1 voxel."""


def _bg_elastic(p: Parameters, shape: Sequence[int]) -> PeerCall:
    spatial = tuple(shape[-3:])
    scale = p['sigma'] / max(spatial)
    return BatchgeneratorsCall(
        [
            _bg(
                'spatial.spatial',
                'SpatialTransform',
                patch_size=spatial,
                patch_center_dist_from_border=0,
                random_crop=False,
                p_elastic_deform=1.0,
                elastic_deform_scale=(scale, scale),
                elastic_deform_magnitude=(ELASTIC_MAGNITUDE, ELASTIC_MAGNITUDE),
                p_rotation=0.0,
                p_scaling=0.0,
                padding_mode_image='border',
                align_corners=True,
            )
        ]
    )


def _bg_flip(p: Parameters, shape: Sequence[int]) -> PeerCall:
    axes = list(p['axes'])
    return BatchgeneratorsCall(
        [_bg('spatial.mirroring', 'MirrorTransform', allowed_axes=tuple(axes))],
        parameters=lambda index: {'axes': axes},
    )


NO_CLIP = 'no clipping to [0, 1]'

PEERS: dict[str, tuple[Peer, ...]] = {
    'gaussian_noise': (
        Peer(
            'MONAI',
            'RandGaussianNoise',
            _monai_noise,
            f'NumPy float64 draw; {NO_CLIP}',
        ),
        Peer(
            'batchgeneratorsv2',
            'GaussianNoiseTransform',
            _bg_noise,
            f'in place; {NO_CLIP}',
            in_place=True,
        ),
    ),
    'blur': (
        Peer('MONAI', 'GaussianSmooth', _monai_blur, 'erf kernel, conv, truncate 4'),
        Peer(
            'batchgeneratorsv2',
            'GaussianBlurTransform',
            _bg_blur,
            'conv1d per axis, reflect borders, truncate 6',
            in_place=True,
        ),
    ),
    'rician_noise': (
        Peer('MONAI', 'RandRicianNoise', _monai_rician, f'NumPy draws; {NO_CLIP}'),
        Peer(
            'batchgeneratorsv2',
            'RicianNoiseTransform',
            _bg_rician,
            f"then restores the input's mean and std; {NO_CLIP}",
        ),
    ),
    'motion_blur': (
        Peer('MONAI', 'GaussianSmooth (one axis)', _monai_motion_blur, 'conv'),
    ),
    'bias_field': (
        Peer(
            'MONAI',
            'RandBiasField',
            _monai_bias,
            'order-3 polynomial field evaluated per voxel',
        ),
    ),
    'intensity_shift': (
        Peer('MONAI', 'ShiftIntensity (+-shift)', _monai_shift, NO_CLIP),
        Peer(
            'batchgeneratorsv2',
            'BrightnessAdditiveTransform (+-shift)',
            _bg_shift,
            f'in place; {NO_CLIP}',
            in_place=True,
        ),
    ),
    'contrast_reduction': (
        Peer(
            'batchgeneratorsv2',
            'ContrastTransform (factor 1 - blend)',
            _bg_contrast,
            f'in place; {NO_CLIP}',
            in_place=True,
        ),
    ),
    'downsample': (
        Peer(
            'MONAI',
            'RandSimulateLowResolution',
            _monai_downsample,
            'nearest down, trilinear up',
        ),
        Peer(
            'batchgeneratorsv2',
            'SimulateLowResolutionTransform',
            _bg_downsample,
            'in place; nearest-exact down, trilinear up',
            in_place=True,
        ),
    ),
    'gamma': (
        Peer(
            'MONAI',
            'AdjustContrast',
            _monai_gamma,
            'one exponent, on the [min, max] range',
        ),
        Peer(
            'batchgeneratorsv2',
            'GammaTransform',
            _bg_gamma,
            'in place; one exponent, on the [min, max] range',
            in_place=True,
        ),
    ),
    'window_level': (
        Peer('MONAI', 'ScaleIntensityRange (clip=True)', _monai_window, ''),
    ),
    'histogram_warp': (
        Peer(
            'MONAI',
            'RandHistogramShift',
            _monai_histogram,
            'piecewise-linear random map, 10 control points',
        ),
    ),
    'sharpen': (
        Peer(
            'MONAI',
            'GaussianSharpen',
            _monai_sharpen,
            'unsharp mask of a blurred image (two blurs)',
        ),
    ),
    'elastic': (
        Peer(
            'MONAI',
            'Rand3DElastic',
            _monai_elastic,
            'same field (U(-1, 1) per voxel, dense Gaussian smoothing, x alpha)',
        ),
        Peer(
            'batchgeneratorsv2',
            'SpatialTransform (elastic only)',
            _bg_elastic,
            'N(0, 1) per voxel, FFT smoothing, scaled to a maximum of 1 voxel',
        ),
    ),
    'flip': (
        Peer('MONAI', 'Flip', _monai_flip, ''),
        Peer(
            'batchgeneratorsv2',
            'MirrorTransform (axes given)',
            _bg_flip,
            'apply(data, axes=...) skips its p = 0.5 draw',
        ),
    ),
}
"""Operator name -> peers in other libraries (absent: none does the same)."""


def peers_for(name: str) -> tuple[Peer, ...]:
    """The installed peers of operator ``name`` (may be empty).

    Example:
        >>> all(p.library in LIBRARIES for p in peers_for('flip'))
        True
    """
    return tuple(p for p in PEERS.get(name, ()) if available(p.library))
