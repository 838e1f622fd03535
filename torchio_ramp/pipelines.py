"""The RAMP stages, the full pipeline of equation (1), and the compared strategies.

``x~ = c_jk o ... o c_j1 o A_i o A_s(x)`` (paper, eq. 1): :class:`RampSpatial`
(``A_s``), then :class:`RampIntensity` (``A_i``), then :class:`RampCorrupt` (the
``c_j``). :class:`Ramp` chains them. Composites deep-copy the subject once and
run their children in place; only the deterministic children are recorded in
the subject's history.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import torch
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from .families import FAMILIES
from .families import check_families
from .families import pool_domain
from .intensity_ops import INTENSITY_OPERATIONS
from .transforms.elastic import RandomDenseElastic
from .transforms.laterality import RandomLateralityFlip
from .transforms.operation import Corruption
from .transforms.operation import RandomCorruption
from .transforms.operation import RandomCTIntensity
from .transforms.operation import delegated_arguments
from .transforms.shell import LightCopy

Range = tuple[float, float]


class _Pipeline(LightCopy, RandomTransform):
    """Run child transforms in order on one copy of the subject.

    The images are checked once, on entry; the children run without checks
    (see :mod:`torchio_ramp.transforms.shell`).
    """

    checks_on_entry = True

    def _child_arguments(self) -> dict[str, Any]:
        return delegated_arguments(self)

    def _run(self, subject: tio.Subject, transforms: Iterable[tio.Transform]):
        for transform in transforms:
            subject = transform(subject)
        return subject


class RampCorrupt(_Pipeline, tio.IntensityTransform):
    """Stochastic multi-corruption composition (paper section 2.3, Table 2).

    With probability ``p``, draw ``k`` uniformly from ``num_corruptions``, pick
    ``k`` distinct families uniformly at random (in random order) and apply each
    with parameters sampled from its training range.

    Args:
        p: Probability of corrupting a sample (the paper's ``p_RAMP``).
        num_corruptions: ``k`` as an integer or an inclusive range
            ``(low, high)``; the paper samples ``k ~ U{2, 3, 4}``.
        families: Pool of families, any names of the registry
            :data:`~torchio_ramp.families.FAMILIES` or a named pool
            (``'ct_physics'``; default: the paper's pool
            :data:`~torchio_ramp.families.PAPER_FAMILIES`). A pool acts on
            normalised images, or, for the CT-physics families, on
            Hounsfield units before :class:`~torchio_ramp.CTNormalize`
            (``tio.Compose([RampCorrupt(families='ct_physics'),
            CTNormalize(), Ramp()])``); one pool cannot mix the two.
        exclude_families: Families to leave out of the pool, e.g. for the
            leave-one-family-out ablation (Table 12).
        ranges: Optional training ranges per family and parameter, e.g.
            ``{'gaussian_noise': {'std': (0.01, 0.05)}}``.
        **kwargs: See :class:`torchio.transforms.Transform`. Note that TorchIO's
            ``exclude`` names *images* to skip, as in every TorchIO transform.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import RampCorrupt
        >>> subject = tio.Subject(
        ...     ct=tio.ScalarImage(tensor=torch.rand(1, 16, 16, 16)),
        ...     seg=tio.LabelMap(tensor=torch.randint(0, 3, (1, 16, 16, 16))),
        ... )
        >>> corrupt = RampCorrupt(p=1, num_corruptions=3)
        >>> out = corrupt(subject)
        >>> [t.name for t in out.history]
        ['Corruption', 'Corruption', 'Corruption']
        >>> torch.equal(out.seg.data, subject.seg.data)
        True
    """

    def __init__(
        self,
        p: float = 0.85,
        num_corruptions: int | tuple[int, int] = (2, 4),
        families: Iterable[str] | None = None,
        exclude_families: Iterable[str] | None = None,
        ranges: Mapping[str, Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ):
        super().__init__(p=p, **kwargs)
        _refuse_family_names_as_images(self.exclude)
        pool = check_families(families, 'families')
        excluded = check_families(exclude_families or (), 'exclude_families')
        self.families = tuple(name for name in pool if name not in excluded)
        if not self.families:
            raise ValueError('exclude_families leaves no corruption family to sample')
        self.domain = pool_domain(self.families)
        self.num_corruptions = _parse_count(num_corruptions, len(self.families))
        # one [0, 1] check on entry serves a pool of normalised-domain families;
        # families of another domain (e.g. HU) check their own input
        self.checks_on_entry = all(
            FAMILIES[name].domain == 'normalized' for name in self.families
        )
        ranges = dict(ranges or {})
        check_families(ranges, 'ranges')
        arguments = self._child_arguments()
        self.transforms = {
            name: RandomCorruption(name, **ranges.get(name, {}), **arguments)
            for name in self.families
        }

    def get_params(self) -> list[str]:
        """Draw ``k`` and the ordered families to apply (torch's global RNG)."""
        low, high = self.num_corruptions
        k = int(torch.randint(low, high + 1, (1,)).item())
        order = torch.randperm(len(self.families))[:k].tolist()
        return [self.families[i] for i in order]

    def plan(self, image_names: list[str]) -> list[tuple[str, dict, dict]]:
        """Draw everything one application needs, from torch's global RNG.

        Returns:
            ``(family, parameters, seeds)`` in order of application, where
            ``parameters`` and ``seeds`` map each image name to the kernel
            keywords and the seed of its :class:`~torchio_ramp.Corruption`.
            :class:`~torchio_ramp.batch.BatchRampCorrupt` draws the same plan.
        """
        return [
            (family, *self.transforms[family].sample(image_names))
            for family in self.get_params()
        ]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        image_names = list(self.get_images_dict(subject))
        if not image_names:
            return subject
        arguments = self._child_arguments()
        for family, parameters, seeds in self.plan(image_names):
            corruption = Corruption(
                family, parameters=parameters, seed=seeds, **arguments
            )
            subject = corruption(subject)
        return subject


class RampIntensity(_Pipeline, tio.IntensityTransform):
    """CT intensity stage: each Table 1 operation applied independently.

    Args:
        probabilities: Probability per operation name (default: Table 1:
            gamma 0.45, window_level 0.45, histogram_warp 0.40,
            local_contrast 0.35, sharpen 0.30). Operations set to 0 are skipped.
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> from torchio_ramp import RampIntensity
        >>> stage = RampIntensity(probabilities={'sharpen': 0.0})
        >>> [t.operator.name for t in stage.transforms]
        ['gamma', 'window_level', 'histogram_warp', 'local_contrast']
    """

    def __init__(self, probabilities: Mapping[str, float] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        probabilities = dict(probabilities or {})
        for name in probabilities:
            RandomCTIntensity.deterministic.lookup(name)
        arguments = self._child_arguments()
        self.transforms = []
        for name, operation in INTENSITY_OPERATIONS.items():
            p = self.parse_probability(probabilities.get(name, operation.probability))
            if p > 0:
                self.transforms.append(RandomCTIntensity(name, p=p, **arguments))

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        return self._run(subject, self.transforms)


class RampSpatial(_Pipeline, tio.SpatialTransform):
    """Spatial stage: per-axis flips and mild elastic deformation (Table 1).

    Args:
        flip_probability: Probability of flipping each axis (paper: 0.5).
        elastic_probability: Probability of the elastic deformation (0.15).
        alpha: Elastic displacement scale in voxels (80).
        sigma: Elastic smoothness in voxels (10).
        label_pairs: Left/right label values to swap when the patient's
            left-right axis is flipped, e.g. ``{2: 3}``; not needed for the
            five-class head, whose kidney label merges both sides.
        image_interpolation: Interpolation of scalar images in the elastic
            deformation, ``'linear'`` (paper) or ``'nearest'``; label maps always
            use nearest neighbour.
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> from torchio_ramp import RampSpatial
        >>> stage = RampSpatial(label_pairs={2: 3})
    """

    normalized_on_entry = False  # flips and elastic accept HU, not NaN/Inf

    def __init__(
        self,
        flip_probability: float = 0.5,
        elastic_probability: float = 0.15,
        alpha: float | Range = 80.0,
        sigma: float | Range = 10.0,
        label_pairs: Mapping[int, int] | None = None,
        image_interpolation: str = 'linear',
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        arguments = self._child_arguments()
        self.transforms = [
            RandomLateralityFlip(
                flip_probability=flip_probability,
                label_pairs=label_pairs,
                **arguments,
            ),
            RandomDenseElastic(
                alpha=alpha,
                sigma=sigma,
                image_interpolation=image_interpolation,
                p=self.parse_probability(elastic_probability),
                **arguments,
            ),
        ]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        return self._run(subject, self.transforms)


class Ramp(_Pipeline):
    """The full RAMP pipeline: spatial, then intensity, then multi-corruption.

    Args:
        spatial: Include :class:`RampSpatial`.
        intensity: Include :class:`RampIntensity`.
        corruption: Include :class:`RampCorrupt`.
        p_corrupt: ``p_RAMP``, the probability of the corruption stage.
        num_corruptions: ``k`` or its range (paper: 2 to 4).
        families: Corruption pool (default: the paper's,
            :data:`~torchio_ramp.families.PAPER_FAMILIES`).
        exclude_families: Families to leave out (LOCO ablation).
        label_pairs: See :class:`RampSpatial`.
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import CTNormalize, Ramp
        >>> hu = torch.randint(-1000, 1000, (1, 32, 32, 16)).float()
        >>> subject = tio.Subject(
        ...     ct=tio.ScalarImage(tensor=hu),
        ...     seg=tio.LabelMap(tensor=(hu > 0).to(torch.uint8)),
        ... )
        >>> augment = tio.Compose([CTNormalize(), Ramp()])
        >>> out = augment(subject)
        >>> float(out.ct.data.min()) >= 0 and float(out.ct.data.max()) <= 1
        True
    """

    def __init__(
        self,
        spatial: bool = True,
        intensity: bool = True,
        corruption: bool = True,
        p_corrupt: float = 0.85,
        num_corruptions: int | tuple[int, int] = (2, 4),
        families: Iterable[str] | None = None,
        exclude_families: Iterable[str] | None = None,
        label_pairs: Mapping[int, int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        for stage, value in (
            ('spatial', spatial),
            ('intensity', intensity),
            ('corruption', corruption),
        ):
            if not isinstance(value, bool):
                message = f'Ramp: {stage} must be True or False, not {value!r}'
                raise TypeError(message)
        # intensity operators and corruptions need [0, 1]; spatial ones do not
        self.normalized_on_entry = intensity or corruption
        arguments = self._child_arguments()
        self.transforms: list[tio.Transform] = []
        if spatial:
            self.transforms.append(RampSpatial(label_pairs=label_pairs, **arguments))
        if intensity:
            self.transforms.append(RampIntensity(**arguments))
        if corruption:
            corrupt = RampCorrupt(
                p=p_corrupt,
                num_corruptions=num_corruptions,
                families=families,
                exclude_families=exclude_families,
                **arguments,
            )
            self.transforms.append(corrupt)
            self.checks_on_entry = corrupt.checks_on_entry

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        return self._run(subject, self.transforms)


ARTIFACT_FAMILIES = ('motion_blur', 'bias_field', 'ghosting', 'stripe')
"""Artifact-like families used by the ``'artifact'`` strategy."""


def _baseline(**overrides: Any) -> tio.Transform:
    if overrides:
        raise TypeError(
            f"strategy 'baseline' takes no options, got {sorted(overrides)}"
        )
    return tio.Compose([])


def _artifact(**overrides: Any) -> tio.Transform:
    options = {'p': 0.5, 'num_corruptions': 1, 'families': ARTIFACT_FAMILIES}
    return RampCorrupt(**{**options, **overrides})


def _ramp_variant(**components: bool) -> Callable[..., tio.Transform]:
    def factory(**overrides: Any) -> tio.Transform:
        return Ramp(**{**components, **overrides})

    return factory


STRATEGIES: dict[str, tuple[str, Callable[..., tio.Transform]]] = {
    'baseline': (
        'No augmentation after CT normalisation (the reference every strategy is'
        ' compared with).',
        _baseline,
    ),
    'intensity': (
        'Intensity-focused: RampIntensity (gamma, window-level, histogram warp,'
        ' local contrast, sharpening at their Table 1 probabilities).',
        lambda **overrides: RampIntensity(**overrides),
    ),
    'geometric': (
        'Geometric: RampSpatial (flip p=0.5 per axis, elastic p=0.15).',
        lambda **overrides: RampSpatial(**overrides),
    ),
    'artifact': (
        'Artifact-focused (our reading of "selected artifact-like perturbations"):'
        ' with p=0.5, one of motion blur, bias field, ghosting, stripes.',
        _artifact,
    ),
    'corruption': (
        'Corruption only (Table 11): RampCorrupt with p=0.85, k in 2..4.',
        _ramp_variant(spatial=False, intensity=False),
    ),
    'spatial_intensity': (
        'Spatial + intensity (Table 11): RampSpatial then RampIntensity.',
        _ramp_variant(corruption=False),
    ),
    'intensity_corruption': (
        'Intensity + corruption (Table 11): RampIntensity then RampCorrupt.',
        _ramp_variant(spatial=False),
    ),
    'ramp': (
        'Full RAMP (eq. 1): RampSpatial, RampIntensity, RampCorrupt. Options:'
        ' exclude_families (Table 12), num_corruptions (Table 13), p_corrupt'
        ' (Table 14).',
        _ramp_variant(),
    ),
}
"""Strategy name -> (description, factory accepting keyword overrides)."""

STRATEGY_ALIASES = {
    'spatial_only': 'geometric',
    'intensity_only': 'intensity',
    'corruption_only': 'corruption',
    'full': 'ramp',
}
"""Names of Table 11's rows that map onto a strategy above."""


def strategy(name: str, **overrides: Any) -> tio.Transform:
    """Build a compared augmentation strategy or ablation by name.

    Args:
        name: One of :data:`STRATEGIES` (``baseline``, ``intensity``,
            ``geometric``, ``artifact``, ``corruption``, ``spatial_intensity``,
            ``intensity_corruption``, ``ramp``) or an alias of Table 11
            (``spatial_only``, ``intensity_only``, ``corruption_only``, ``full``).
        **overrides: Keyword arguments of the underlying transform, e.g.
            ``strategy('ramp', exclude_families=['blur'])`` (Table 12),
            ``strategy('ramp', num_corruptions=1)`` (Table 13) or
            ``strategy('ramp', p_corrupt=0.3)`` (Table 14).

    Example:
        >>> from torchio_ramp import strategy
        >>> type(strategy('ramp', num_corruptions=3)).__name__
        'Ramp'
        >>> strategy('loco')
        Traceback (most recent call last):
        ...
        ValueError: Unknown strategy 'loco'; valid names: baseline, intensity, \
geometric, artifact, corruption, spatial_intensity, intensity_corruption, ramp, \
spatial_only, intensity_only, corruption_only, full
    """
    key = STRATEGY_ALIASES.get(name, name)
    if key not in STRATEGIES:
        valid = ', '.join([*STRATEGIES, *STRATEGY_ALIASES])
        raise ValueError(f'Unknown strategy {name!r}; valid names: {valid}')
    _, factory = STRATEGIES[key]
    return factory(**overrides)


def _parse_count(value: Any, pool_size: int) -> tuple[int, int]:
    if isinstance(value, bool):
        raise ValueError(
            f'num_corruptions must be an integer or a range, not {value!r}'
        )
    if isinstance(value, int):
        value = (value, value)
    try:
        low, high = value
    except (TypeError, ValueError) as error:
        message = (
            f'num_corruptions must be an integer or a range (low, high), not {value!r}'
        )
        raise ValueError(message) from error
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, int):
            raise ValueError(f'num_corruptions must contain integers, not {value!r}')
    if not 1 <= low <= high <= pool_size:
        message = (
            f'num_corruptions must satisfy 1 <= low <= high <= {pool_size}'
            f' (families in the pool), not {value!r}'
        )
        raise ValueError(message)
    return low, high


def _refuse_family_names_as_images(exclude: Any) -> None:
    """Catch ``RampCorrupt(exclude=['blur'])``, which would silently do nothing."""
    if not exclude:
        return
    families = sorted(set(exclude) & set(FAMILIES))
    if families:
        message = (
            f'exclude={list(exclude)!r} names images to skip (TorchIO convention);'
            f' to leave corruption families out of the pool use'
            f' exclude_families={families!r}'
        )
        raise ValueError(message)
