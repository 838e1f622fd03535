"""Training data: transforms, strategy options, patch sampler, queue and seeds."""

from __future__ import annotations

import random
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torchio as tio

from ..labels import NUM_CLASSES
from ..pipelines import STRATEGIES
from ..pipelines import strategy
from ..transforms.normalization import DEFAULT_HU_RANGE
from ..transforms.normalization import CTNormalize

CORRUPTION_STRATEGIES = ('ramp', 'corruption', 'intensity_corruption', 'artifact')
"""Strategies with a multi-corruption stage, the only ones that take
``exclude_families``, ``num_corruptions`` and ``p_corrupt``."""


def training_transform(
    hu_range: Sequence[float] = DEFAULT_HU_RANGE,
    strategy_name: str = 'ramp',
    **overrides: Any,
) -> tio.Compose:
    """``CTNormalize(hu_range)`` then ``strategy(strategy_name, **overrides)``.

    Example:
        >>> transform = training_transform((-200, 300), 'ramp', p_corrupt=0.3)
        >>> [type(t).__name__ for t in transform]
        ['CTNormalize', 'Ramp']
    """
    low, high = hu_range
    return tio.Compose([CTNormalize((low, high)), strategy(strategy_name, **overrides)])


def validation_transform(hu_range: Sequence[float] = DEFAULT_HU_RANGE) -> CTNormalize:
    """``CTNormalize(hu_range)``: validation sees clean, normalised volumes.

    Example:
        >>> validation_transform((-100, 200)).hu_range
        (-100.0, 200.0)
    """
    low, high = hu_range
    return CTNormalize((low, high))


def strategy_overrides(
    name: str,
    *,
    exclude_families: Sequence[str] | None = None,
    num_corruptions: int | Sequence[int] | None = None,
    p_corrupt: float | None = None,
) -> dict[str, Any]:
    """Keyword overrides of :func:`~torchio_ramp.strategy` for the ablations.

    Translates the training script's ablation options into the keywords of
    the strategy's transform: :class:`~torchio_ramp.Ramp` takes
    ``p_corrupt``, the ``artifact`` strategy's
    :class:`~torchio_ramp.RampCorrupt` takes ``p``.

    Args:
        name: Strategy name (see :data:`~torchio_ramp.STRATEGIES`).
        exclude_families: Corruption families to leave out (Table 12).
        num_corruptions: ``k`` or ``(low, high)`` (Table 13).
        p_corrupt: ``p_RAMP`` (Table 14).

    Raises:
        ValueError: If an option is given for a strategy without a
            corruption stage.

    Example:
        >>> strategy_overrides('ramp', num_corruptions=(1, 1), p_corrupt=0.5)
        {'num_corruptions': [1, 1], 'p_corrupt': 0.5}
        >>> strategy_overrides('artifact', p_corrupt=0.3)
        {'p': 0.3}
    """
    if name not in STRATEGIES:
        valid = ', '.join(STRATEGIES)
        raise ValueError(f'Unknown strategy {name!r}; valid names: {valid}')
    given = {
        'exclude_families': list(exclude_families) if exclude_families else None,
        'num_corruptions': (
            None
            if num_corruptions is None
            else num_corruptions
            if isinstance(num_corruptions, int)
            else [int(k) for k in num_corruptions]
        ),
        'p_corrupt': None if p_corrupt is None else float(p_corrupt),
    }
    given = {key: value for key, value in given.items() if value is not None}
    if given and name not in CORRUPTION_STRATEGIES:
        options = ', '.join(f'--{key.replace("_", "-")}' for key in given)
        raise ValueError(
            f'{options} only apply to strategies with a corruption stage'
            f' ({", ".join(CORRUPTION_STRATEGIES)}), not to {name!r}'
        )
    if name == 'artifact' and 'p_corrupt' in given:
        given['p'] = given.pop('p_corrupt')
    return given


def _strategy_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    """JSON options -> transform keywords (lists back to tuples)."""
    kwargs = dict(options)
    if isinstance(kwargs.get('num_corruptions'), list):
        kwargs['num_corruptions'] = tuple(kwargs['num_corruptions'])
    return kwargs


def make_patch_sampler(
    kind: str,
    patch_size: Sequence[int],
    label_probabilities: Mapping[int, float] | None = None,
    num_classes: int = NUM_CLASSES,
) -> tio.data.PatchSampler:
    """A :class:`torchio.LabelSampler` or :class:`torchio.UniformSampler`.

    Args:
        kind: ``'label'`` (patch centres drawn per class) or ``'uniform'``.
        patch_size: Patch size in voxels.
        label_probabilities: Probability of each class at the patch centre
            (``'label'`` only). Default: every class including background
            equally likely, so small organs are seen as often as the liver;
            classes absent from a volume are skipped for that volume.
        num_classes: Classes including background (for the default).

    Example:
        >>> sampler = make_patch_sampler('label', (16, 16, 16))
        >>> type(sampler).__name__, sampler.label_probabilities_dict
        ('LabelSampler', {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0})
    """
    patch_size = tuple(int(s) for s in patch_size)
    if kind == 'uniform':
        if label_probabilities is not None:
            raise ValueError('label_probabilities only apply to the label sampler')
        return tio.UniformSampler(patch_size)
    if kind != 'label':
        raise ValueError(f"sampler must be 'label' or 'uniform', not {kind!r}")
    if label_probabilities is None:
        label_probabilities = dict.fromkeys(range(num_classes), 1.0)
    return tio.LabelSampler(
        patch_size,
        label_name='label',
        label_probabilities={int(k): float(v) for k, v in label_probabilities.items()},
    )


def make_queue(
    dataset: tio.SubjectsDataset,
    sampler: tio.data.PatchSampler,
    *,
    queue_length: int = 64,
    samples_per_volume: int = 8,
    workers: int = 0,
    subject_sampler: torch.utils.data.Sampler | None = None,
) -> tio.Queue:
    """A :class:`torchio.Queue` of training patches.

    Subjects are loaded and augmented by ``workers`` processes; each
    contributes ``samples_per_volume`` patches, mixed in a buffer of
    ``queue_length``. Pass a :class:`~torch.utils.data.DistributedSampler`
    as ``subject_sampler`` under DDP (:func:`distributed_subject_sampler`);
    otherwise subjects are shuffled. The subject loader starts on the first
    patch request, so call ``subject_sampler.set_epoch`` before that.
    Read the queue with a ``DataLoader(queue, batch_size, num_workers=0)``.

    Example:
        >>> import torchio as tio
        >>> from torchio_ramp.phantoms import phantom_subject
        >>> dataset = tio.SubjectsDataset([phantom_subject((16, 16, 16))])
        >>> sampler = make_patch_sampler('uniform', (8, 8, 8))
        >>> queue = make_queue(dataset, sampler, queue_length=4, samples_per_volume=2)
        >>> len(queue), queue[0]['ct'].shape
        (2, (1, 8, 8, 8))
    """
    if queue_length < samples_per_volume:
        raise ValueError(
            f'queue_length ({queue_length}) must be at least samples_per_volume'
            f' ({samples_per_volume})'
        )
    if samples_per_volume < 1 or workers < 0:
        raise ValueError(
            f'need samples_per_volume >= 1 and workers >= 0, got {samples_per_volume}'
            f' and {workers}'
        )
    return tio.Queue(
        dataset,
        max_length=queue_length,
        samples_per_volume=samples_per_volume,
        sampler=sampler,
        subject_sampler=subject_sampler,
        num_workers=workers,
        shuffle_subjects=subject_sampler is None,
        shuffle_patches=True,
        start_background=False,
    )


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed of one epoch on one rank: a hash of ``(seed, epoch, rank)``.

    Example:
        >>> epoch_seed(0, 1) == epoch_seed(0, 1) != epoch_seed(0, 2)
        True
    """
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint32)
    return int(state[0])


def seed_all(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy's and Python's global generators.

    Example:
        >>> seed_all(3); a = torch.rand(1); seed_all(3); bool(a == torch.rand(1))
        True
    """
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
