"""Patch-queue training of a segmentation network with any augmentation strategy.

The building blocks of ``examples/train.py``, importable on their own:

* :class:`DiceCELoss`: soft Dice over the foreground classes plus
  cross-entropy, nnU-Net's default loss;
* :func:`make_optimizer` (AdamW, or SGD with Nesterov momentum 0.99 as in
  nnU-Net) and :func:`poly_lr` (``lr * (1 - epoch / epochs) ** 0.9``);
* :func:`make_patch_sampler` and :func:`make_queue`: a :class:`torchio.Queue`
  fed by :class:`torchio.LabelSampler` (or :class:`torchio.UniformSampler`),
  with a :class:`~torch.utils.data.DistributedSampler` as its
  ``subject_sampler`` under ``torchrun``;
* :func:`training_transform` / :func:`validation_transform`:
  ``CTNormalize(hu_range)`` then :func:`~torchio_ramp.strategy`, and
  ``CTNormalize`` alone;
* :func:`evaluate`: mean Dice over the dataset's annotated classes with
  :class:`~torchio_ramp.inference.SlidingWindowPredictor` and the stress
  test's :func:`~torchio_ramp.stress.metrics.dice_per_class`;
* :class:`RunFolder`: the checkpoint folder (``best.pt`` TorchScript,
  ``best_state_dict.pt``, ``last.pt``, ``metrics.csv``, ``config.json``);
* :func:`train`: the loop that ties them together, driven by a
  :class:`TrainingConfig`.

Determinism. Every epoch starts by seeding torch, NumPy and ``random`` from
``(seed, epoch, rank)`` (:func:`epoch_seed`) and building a fresh queue. The
queue's subject loader draws its shuffling and its workers' seeds from that
state (PyTorch seeds worker ``i`` with ``base_seed + i`` for torch, NumPy and
``random``, and returns subjects in order), so on the CPU the same seed, data,
options and ``workers`` give bit-identical weights, and a run resumed from
``last.pt`` equals the uninterrupted run. Changing ``workers`` changes which
process draws which random numbers, hence the augmentations (still
reproducible for that value). Not bit-reproducible: CUDA runs (cuDNN and
atomic-add kernels are non-deterministic unless you call
``torch.use_deterministic_algorithms(True)``), runs with another number of
threads or processes (reduction order), and DDP runs with another world size.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchio as tio
from torch import nn
from tqdm.auto import tqdm

from . import __version__
from .datasets import load_split
from .datasets import read_dataset_info
from .files import append_synced
from .files import atomic_path
from .files import json_text
from .files import write_atomic
from .inference import SlidingWindowPredictor
from .labels import CLASS_NAMES
from .labels import NUM_CLASSES
from .models import PRESET_FACTORIES
from .models import UNET_PRESETS
from .models import UNet3d
from .models import check_patch_size
from .pipelines import STRATEGIES
from .pipelines import strategy
from .stress.metrics import dice_per_class
from .stress.metrics import subject_dice
from .stress.predictors import default_overlap
from .transforms.normalization import DEFAULT_HU_RANGE
from .transforms.normalization import CTNormalize

CORRUPTION_STRATEGIES = ('ramp', 'corruption', 'intensity_corruption', 'artifact')
"""Strategies with a multi-corruption stage, the only ones that take
``exclude_families``, ``num_corruptions`` and ``p_corrupt``."""

DEFAULT_LR = {'adamw': 1e-3, 'sgd': 1e-2}
"""Initial learning rate per optimizer (nnU-Net uses SGD at 1e-2)."""


# Loss, optimiser, schedule -----------------------------------------------------


class DiceCELoss(nn.Module):
    """Soft Dice loss plus cross-entropy, as in nnU-Net.

    ``loss = ce_weight * CE + dice_weight * (1 - mean_c Dice_c)`` with the
    soft Dice ``(2 sum p g + smooth) / (sum p + sum g + smooth)`` of the
    softmax probabilities ``p`` and the one-hot target ``g``. With
    ``batch_dice`` the sums run over the batch and the voxels (one Dice per
    class per batch, stable when a patch misses a class); otherwise one Dice
    per class per patch.

    Args:
        include_background: Also average the Dice of class 0.
        batch_dice: Sum over the batch before the ratio.
        smooth: Added to the numerator and the denominator.
        ce_weight: Weight of the cross-entropy term.
        dice_weight: Weight of the Dice term.

    Example:
        >>> import torch
        >>> loss = DiceCELoss()
        >>> target = torch.randint(0, 3, (2, 8, 8, 8))
        >>> perfect = 20.0 * torch.nn.functional.one_hot(target, 3).permute(0, 4, 1, 2, 3)
        >>> round(float(loss(perfect, target)), 4)
        0.0
    """  # noqa: E501

    def __init__(
        self,
        include_background: bool = False,
        batch_dice: bool = True,
        smooth: float = 1e-5,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
    ):
        super().__init__()
        self.include_background = include_background
        self.batch_dice = batch_dice
        self.smooth = smooth
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` ``(B, K, *spatial)`` for labels ``(B, *spatial)``
        (or ``(B, 1, *spatial)``), any integer type."""
        if target.ndim == logits.ndim:
            target = target[:, 0]
        target = target.long()
        cross_entropy = F.cross_entropy(logits, target)
        probabilities = logits.float().softmax(dim=1)
        one_hot = torch.zeros_like(probabilities).scatter_(1, target[:, None], 1.0)
        if not self.include_background:
            probabilities = probabilities[:, 1:]
            one_hot = one_hot[:, 1:]
        spatial = tuple(range(2, probabilities.ndim))
        dims = (0, *spatial) if self.batch_dice else spatial
        intersection = (probabilities * one_hot).sum(dims)
        denominator = probabilities.sum(dims) + one_hot.sum(dims)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth).clamp_min(
            1e-8
        )
        return self.ce_weight * cross_entropy + self.dice_weight * (1 - dice.mean())


def make_optimizer(
    name: str,
    parameters: Any,
    lr: float | None = None,
    weight_decay: float = 3e-5,
) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.99 (nnU-Net's optimiser).

    Args:
        name: ``'adamw'`` or ``'sgd'``.
        parameters: The model's parameters.
        lr: Initial learning rate (default :data:`DEFAULT_LR`).
        weight_decay: L2 penalty (AdamW: decoupled), nnU-Net's ``3e-5``.

    Example:
        >>> import torch
        >>> optimizer = make_optimizer('sgd', torch.nn.Linear(2, 2).parameters())
        >>> optimizer.defaults['lr'], optimizer.defaults['momentum']
        (0.01, 0.99)
    """
    if name not in DEFAULT_LR:
        raise ValueError(f'optimizer must be one of {sorted(DEFAULT_LR)}, not {name!r}')
    lr = DEFAULT_LR[name] if lr is None else float(lr)
    if not lr > 0:
        raise ValueError(f'lr must be positive, not {lr}')
    if name == 'sgd':
        return torch.optim.SGD(
            parameters,
            lr=lr,
            momentum=0.99,
            nesterov=True,
            weight_decay=weight_decay,
        )
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


def poly_lr(
    optimizer: torch.optim.Optimizer,
    epochs: int,
    exponent: float = 0.9,
) -> torch.optim.lr_scheduler.LRScheduler:
    """nnU-Net's polynomial decay, stepped once per epoch.

    The learning rate of epoch ``e`` (from 0) is ``lr * (1 - e / epochs) **
    exponent``: the full rate in the first epoch, ``lr * (1 / epochs) **
    exponent`` in the last.

    Example:
        >>> import torch
        >>> optimizer = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
        >>> schedule = poly_lr(optimizer, epochs=4)
        >>> rates = []
        >>> for _ in range(4):
        ...     rates.append(round(optimizer.param_groups[0]['lr'], 4))
        ...     optimizer.step()
        ...     schedule.step()
        >>> rates
        [1.0, 0.7719, 0.5359, 0.2872]
    """
    if epochs < 1:
        raise ValueError(f'epochs must be positive, not {epochs}')
    return torch.optim.lr_scheduler.PolynomialLR(
        optimizer, total_iters=epochs, power=exponent
    )


# Data ---------------------------------------------------------------------------


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
        >>> from torchio_ramp.datasets import phantom_subject
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


def distributed_subject_sampler(
    dataset: tio.SubjectsDataset,
    context: DistributedContext,
    seed: int = 0,
) -> torch.utils.data.DistributedSampler:
    """Shuffling :class:`~torch.utils.data.DistributedSampler` for ``context``.

    Each rank gets ``ceil(n / world_size)`` subjects (padded by repetition),
    so every rank makes the same number of optimiser steps.

    Example:
        >>> import torchio as tio
        >>> from torchio_ramp.datasets import phantom_subject
        >>> dataset = tio.SubjectsDataset([phantom_subject((8, 8, 8))] * 3)
        >>> sampler = distributed_subject_sampler(dataset, DistributedContext(1, 2, 1))
        >>> len(sampler)
        2
    """
    return torch.utils.data.DistributedSampler(
        dataset,
        num_replicas=context.world_size,
        rank=context.rank,
        shuffle=True,
        seed=seed,
        drop_last=False,
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


# Distributed --------------------------------------------------------------------


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a ``torchrun`` job.

    Attributes:
        rank: Global rank (0 in a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @classmethod
    def from_environment(cls) -> DistributedContext:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun).

        Example:
            >>> DistributedContext.from_environment().world_size  # doctest: +SKIP
            1
        """
        return cls(
            rank=int(os.environ.get('RANK', 0)),
            world_size=int(os.environ.get('WORLD_SIZE', 1)),
            local_rank=int(os.environ.get('LOCAL_RANK', 0)),
        )

    def barrier(self) -> None:
        """Wait for every process (no-op in a single process)."""
        if self.enabled:
            dist.barrier()


def resolve_device(name: str, context: DistributedContext) -> torch.device:
    """``'auto'`` -> ``cuda:LOCAL_RANK`` if CUDA is available, else ``cpu``.

    Example:
        >>> resolve_device('cpu', DistributedContext())
        device(type='cpu')
    """
    if name == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda', context.local_rank)
        return torch.device('cpu')
    device = torch.device(name)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', context.local_rank)
    return device


def init_distributed(device: torch.device) -> DistributedContext:
    """Start the process group under ``torchrun`` (gloo on CPU, NCCL on CUDA).

    Returns the context; a single process gets ``DistributedContext()`` and
    no process group.

    Example:
        >>> init_distributed(torch.device('cpu'))  # doctest: +SKIP
        DistributedContext(rank=0, world_size=1, local_rank=0)
    """
    context = DistributedContext.from_environment()
    if context.enabled and not dist.is_initialized():
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return context


# Validation ---------------------------------------------------------------------


@dataclass
class Evaluation:
    """Validation Dice of a model.

    Attributes:
        mean_dice: Mean over subjects of the subject Dice (mean over the
            included classes; see :mod:`torchio_ramp.stress.metrics`).
        class_dice: Mean over subjects of each class's Dice (NaN where no
            subject includes it).
        subjects: ``subject_id`` -> Dice per class.
    """

    mean_dice: float
    class_dice: dict[int, float]
    subjects: dict[str, dict[int, float]]

    @classmethod
    def from_subjects(cls, subjects: Mapping[str, Mapping[int, float]]):
        """Aggregate per-subject Dice (NaN-aware).

        Example:
            >>> nan = float('nan')
            >>> e = Evaluation.from_subjects({'a': {1: 1.0, 2: nan}, 'b': {1: 0.5, 2: 0.0}})
            >>> e.mean_dice, e.class_dice
            (0.625, {1: 0.75, 2: 0.0})
        """  # noqa: E501
        subjects = {key: dict(value) for key, value in subjects.items()}
        scores = [subject_dice(d) for d in subjects.values()]
        scores = [s for s in scores if not math.isnan(s)]
        classes = sorted({c for d in subjects.values() for c in d})
        class_dice = {}
        for c in classes:
            values = [
                d[c] for d in subjects.values() if not math.isnan(d.get(c, math.nan))
            ]
            class_dice[c] = sum(values) / len(values) if values else math.nan
        mean = sum(scores) / len(scores) if scores else math.nan
        return cls(mean, class_dice, subjects)


def evaluate(
    predictor: Callable[[torch.Tensor], torch.Tensor],
    dataset: tio.SubjectsDataset,
    *,
    classes: Sequence[int] = tuple(CLASS_NAMES),
    annotated: Sequence[int] | None = None,
    indices: Sequence[int] | None = None,
    image: str = 'ct',
    label: str = 'label',
    progress: bool = False,
) -> Evaluation:
    """Dice of ``predictor`` on (a subset of) a dataset of whole volumes.

    Args:
        predictor: ``image (C, D, H, W) -> label map (D, H, W)``, e.g. a
            :class:`~torchio_ramp.inference.SlidingWindowPredictor`.
        dataset: Subjects with normalised images (:func:`validation_transform`).
        classes: Foreground classes to score.
        annotated: Classes the dataset annotates (others are NaN, excluded).
        indices: Only these subjects (a DDP rank's share).
        image: Name of the image in each subject.
        label: Name of the label map.
        progress: Show a progress bar.

    Example:
        >>> import torchio as tio
        >>> from torchio_ramp.datasets import phantom_subject
        >>> dataset = tio.SubjectsDataset(
        ...     [phantom_subject((16, 16, 16))], transform=validation_transform()
        ... )
        >>> oracle = lambda image: dataset[0]['label'].data[0]
        >>> evaluate(oracle, dataset).mean_dice
        1.0
    """
    indices = range(len(dataset)) if indices is None else indices
    subjects = {}
    for index in tqdm(indices, desc='validation', leave=False, disable=not progress):
        subject = dataset[index]
        prediction = predictor(subject[image].data)
        target = subject[label].data[0]
        key = str(subject.get('subject_id', index))
        subjects[key] = dice_per_class(prediction, target, classes, annotated)
    return Evaluation.from_subjects(subjects)


# Configuration ------------------------------------------------------------------


def load_initial_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load a ``state_dict`` file, or a run folder's best weights, into ``model``.

    Raises:
        FileNotFoundError: If neither the file nor the run folder's
            ``best_state_dict.pt`` exists.
        ValueError: If the weights do not fit ``model`` (names the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / RunFolder.STATE_DICT
    if not path.is_file():
        raise FileNotFoundError(f'init_weights: {path} not found')
    state = torch.load(path, map_location='cpu', weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        message = f'init_weights: {path} does not fit the {type(model).__name__}'
        raise ValueError(f'{message}: {error}') from error


@dataclass
class TrainingConfig:
    """Everything that defines a training run (saved as ``config.json``).

    Attributes:
        data: Folder prepared by ``ramp-prep``.
        out: Run folder (checkpoints, metrics, configuration).
        strategy: Augmentation strategy (:data:`~torchio_ramp.STRATEGIES`).
        strategy_options: Keyword overrides of the strategy, e.g. from
            :func:`strategy_overrides`.
        hu_range: HU window of :class:`~torchio_ramp.CTNormalize`.
        patch_size: Training (and sliding-window) patch size.
        model: U-Net size, a key of :data:`~torchio_ramp.models.UNET_PRESETS`.
        sampler: ``'label'`` or ``'uniform'`` (:func:`make_patch_sampler`).
        label_probabilities: Class probabilities of the label sampler.
        queue_length: Patches held by the queue.
        samples_per_volume: Patches taken from each augmented volume.
        workers: Queue worker processes loading and augmenting subjects.
        epochs: Number of epochs (the LR decays to nearly 0 at the last).
        iterations_per_epoch: Batches per epoch; ``None``: one pass over the
            training subjects (``ceil(subjects x samples_per_volume /
            batch_size)`` per process).
        batch_size: Patches per optimiser step (per process under DDP).
        optimizer: ``'adamw'`` or ``'sgd'``.
        lr: Initial learning rate (default :data:`DEFAULT_LR`).
        weight_decay: Weight decay.
        seed: Seed of the weights, sampling and augmentation.
        val_overlap: Sliding-window overlap of validation (even voxels; default
            half the patch, as ``ramp-stress run``).
        val_batch_size: Patches per forward pass in validation.
        device: ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
        amp: bfloat16 autocast on CUDA (ignored on the CPU).
        init_weights: Start from these weights instead of a random
            initialisation: a ``state_dict`` file or a run folder (its
            ``best_state_dict.pt``), e.g. to fine-tune a trained model with
            RAMP. The architecture (``model``) must match.
    """

    data: str
    out: str
    strategy: str = 'ramp'
    strategy_options: dict[str, Any] = field(default_factory=dict)
    hu_range: tuple[float, float] = DEFAULT_HU_RANGE
    patch_size: tuple[int, int, int] = (64, 64, 64)
    model: str = 'small'
    sampler: str = 'label'
    label_probabilities: dict[int, float] | None = None
    queue_length: int = 64
    samples_per_volume: int = 8
    workers: int = 0
    epochs: int = 50
    iterations_per_epoch: int | None = None
    batch_size: int = 2
    optimizer: str = 'adamw'
    lr: float | None = None
    weight_decay: float = 3e-5
    seed: int = 0
    val_overlap: tuple[int, int, int] | None = None
    val_batch_size: int = 2
    device: str = 'auto'
    amp: bool = False
    init_weights: str | None = None

    EXECUTION_FIELDS = ('out', 'workers', 'device', 'val_batch_size')
    """Fields that may differ when a run is resumed."""

    def __post_init__(self) -> None:
        self.data = str(self.data)
        self.out = str(self.out)
        if self.init_weights is not None:
            self.init_weights = str(self.init_weights)
        self.hu_range = (float(self.hu_range[0]), float(self.hu_range[1]))
        if not self.hu_range[0] < self.hu_range[1]:
            raise ValueError(f'hu_range must satisfy low < high, not {self.hu_range}')
        size = self.patch_size
        size = (size,) * 3 if isinstance(size, int) else tuple(size)
        if len(size) != 3 or any(int(s) < 1 for s in size):
            raise ValueError(f'patch_size must be one or three positive sizes: {size}')
        self.patch_size = tuple(int(s) for s in size)
        if self.val_overlap is not None:
            overlap = self.val_overlap
            overlap = (overlap,) * 3 if isinstance(overlap, int) else tuple(overlap)
            self.val_overlap = tuple(int(o) for o in overlap)
        if self.strategy not in STRATEGIES:
            valid = ', '.join(STRATEGIES)
            raise ValueError(f'Unknown strategy {self.strategy!r}; valid: {valid}')
        if self.model not in UNET_PRESETS:
            valid = ', '.join(UNET_PRESETS)
            raise ValueError(f'Unknown model size {self.model!r}; valid: {valid}')
        if self.label_probabilities is not None:
            self.label_probabilities = {
                int(k): float(v) for k, v in self.label_probabilities.items()
            }
        self.strategy_options = dict(self.strategy_options)
        for name in ('epochs', 'batch_size', 'queue_length', 'samples_per_volume'):
            if int(getattr(self, name)) < 1:
                raise ValueError(f'{name} must be positive, not {getattr(self, name)}')
        if self.iterations_per_epoch is not None and self.iterations_per_epoch < 1:
            raise ValueError(
                'iterations_per_epoch must be positive, not'
                f' {self.iterations_per_epoch}'
            )
        if self.workers < 0:
            raise ValueError(f'workers must be >= 0, not {self.workers}')

    @property
    def resolved_lr(self) -> float:
        """The initial learning rate (``lr`` or the optimizer's default)."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples as lists, class keys as strings)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        if self.label_probabilities is not None:
            data['label_probabilities'] = {
                str(k): v for k, v in self.label_probabilities.items()
            }
        return json.loads(json.dumps(data))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused.

        Example:
            >>> config = TrainingConfig('data', 'runs/a', patch_size=32)
            >>> TrainingConfig.from_dict(config.to_dict()) == config
            True
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f'unknown training options {unknown}')
        return cls(**dict(data))

    def differences(self, other: TrainingConfig) -> list[str]:
        """Run-defining fields that differ from ``other`` (for resuming).

        Example:
            >>> a = TrainingConfig('data', 'runs/a')
            >>> a.differences(TrainingConfig('data', 'runs/b', epochs=3, workers=2))
            ['epochs: 50 != 3']
        """
        mine, theirs = self.to_dict(), other.to_dict()
        for config in (mine, theirs):
            config['data'] = str(Path(config['data']).resolve())
        return [
            f'{key}: {mine[key]!r} != {theirs[key]!r}'
            for key in mine
            if key not in self.EXECUTION_FIELDS and mine[key] != theirs[key]
        ]


# Run folder ---------------------------------------------------------------------


def _json_number(value: float) -> float | None:
    # JSON has no NaN or Infinity (best_val_dice is -inf before any epoch)
    return None if value is None or not math.isfinite(value) else float(value)


class RunFolder:
    """The files of a training run.

    * ``best.pt``: TorchScript export of the best-validation weights (with
      ``config.json`` embedded as an extra file); ``ramp-stress run --model
      best.pt`` reads ``hu_range`` and ``patch_size`` from ``config.json``
      beside it;
    * ``best_state_dict.pt``: the same weights as a ``state_dict``, for
      ``--model torchio_ramp.models:unet3d_<size> --weights ...``;
    * ``last.pt``: model, optimiser and schedule after the last finished
      epoch, the best score so far (``--resume``); loadable with
      ``torch.load(..., weights_only=True)``;
    * ``metrics.csv``: one row per epoch;
    * ``config.json``: :class:`TrainingConfig` plus the model class, its
      constructor keywords and factory, the dataset, the strategy's
      description and the best epoch.

    Every file is written to a temporary name and renamed, so an interrupted
    run never leaves a half-written checkpoint.

    Args:
        path: The folder (created if needed).

    Example:
        >>> run = RunFolder('runs/ramp')  # doctest: +SKIP
        >>> model = run.load_best()  # doctest: +SKIP
    """

    TORCHSCRIPT = 'best.pt'
    STATE_DICT = 'best_state_dict.pt'
    LAST = 'last.pt'
    METRICS = 'metrics.csv'
    CONFIG = 'config.json'

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        """Path of one of the run's files."""
        return self.path / name

    def exists(self) -> bool:
        """Whether the folder holds a run (``last.pt`` or ``config.json``)."""
        return self.file(self.LAST).is_file() or self.file(self.CONFIG).is_file()

    # config.json
    def write_config(self, document: Mapping[str, Any]) -> None:
        """Write ``config.json`` atomically."""
        write_atomic(self.file(self.CONFIG), json_text(document))

    def read_config(self) -> dict[str, Any]:
        """Read ``config.json``.

        Raises:
            FileNotFoundError: If it is missing.
            ValueError: If it is not valid JSON or lacks the training options.
        """
        path = self.file(self.CONFIG)
        if not path.is_file():
            raise FileNotFoundError(
                f'{path} not found: {self.path} is not a run folder'
            )
        try:
            document = json.loads(path.read_text(encoding='utf-8'))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f'{path} is not valid JSON: {error}') from error
        if not isinstance(document, dict) or 'training' not in document:
            raise ValueError(f'{path} lacks the "training" options of a run')
        return document

    def training_config(self) -> TrainingConfig:
        """The :class:`TrainingConfig` stored in ``config.json``."""
        return TrainingConfig.from_dict(self.read_config()['training'])

    # checkpoints
    def save_last(self, state: Mapping[str, Any]) -> None:
        """Save the full training state as ``last.pt``."""
        with atomic_path(self.file(self.LAST)) as tmp:
            torch.save(dict(state), tmp)

    def load_last(self) -> dict[str, Any]:
        """Load ``last.pt`` (``weights_only=True``) on the CPU."""
        path = self.file(self.LAST)
        if not path.is_file():
            raise FileNotFoundError(
                f'{path} not found: nothing to resume in {self.path}'
            )
        return torch.load(path, map_location='cpu', weights_only=True)

    def save_best(self, model: UNet3d, document: Mapping[str, Any]) -> None:
        """Save ``best_state_dict.pt`` and the TorchScript ``best.pt``."""
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        with atomic_path(self.file(self.STATE_DICT)) as tmp:
            torch.save(state, tmp)
        export = UNet3d(**model.init_kwargs)
        export.load_state_dict(state)
        extra = {'config.json': json.dumps(document, indent=2)}
        # torch 2.10+ flags TorchScript as deprecated; it is still the one-file
        # format the stress test and deployment tools load without our code.
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', '.*torch.jit', DeprecationWarning)
            scripted = torch.jit.script(export.eval())
            with atomic_path(self.file(self.TORCHSCRIPT)) as tmp:
                torch.jit.save(scripted, str(tmp), _extra_files=extra)

    def load_best(self, device: str | torch.device = 'cpu') -> UNet3d:
        """Rebuild the best model from ``config.json`` and its ``state_dict``.

        Raises:
            FileNotFoundError: If a file is missing.
        """
        document = self.read_config()
        path = self.file(self.STATE_DICT)
        if not path.is_file():
            raise FileNotFoundError(f'{path} not found (no epoch has finished yet?)')
        model = UNet3d(**document['model']['kwargs'])
        model.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
        return model.to(device).eval()

    # metrics.csv
    def append_metrics(self, row: Mapping[str, Any]) -> None:
        """Append one epoch's row (header first), flushed to disk."""
        path = self.file(self.METRICS)
        new = not path.is_file() or path.stat().st_size == 0
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
        append_synced(path, buffer.getvalue())

    def read_metrics(self) -> list[dict[str, str]]:
        """Rows of ``metrics.csv`` (empty if there is none)."""
        path = self.file(self.METRICS)
        if not path.is_file():
            return []
        with path.open(newline='', encoding='utf-8') as stream:
            return list(csv.DictReader(stream))

    def truncate_metrics(self, epochs: int) -> None:
        """Keep only the rows of the first ``epochs`` epochs (on resume)."""
        rows = [r for r in self.read_metrics() if int(r['epoch']) <= epochs]
        if not rows:
            if self.file(self.METRICS).exists():
                self.file(self.METRICS).unlink()
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator='\r\n')
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
        write_atomic(self.file(self.METRICS), text)


# The loop -----------------------------------------------------------------------


@dataclass
class TrainingResult:
    """Outcome of :func:`train`.

    Attributes:
        run: The run folder.
        best_epoch: Epoch (from 1) of the best validation Dice.
        best_val_dice: That Dice.
        epochs_completed: Epochs finished, including resumed ones.
        history: ``metrics.csv`` rows of the epochs run in this call.
        seconds: Wall time of this call.
    """

    run: RunFolder
    best_epoch: int | None
    best_val_dice: float
    epochs_completed: int
    history: list[dict[str, Any]]
    seconds: float


def _metrics_row(
    epoch: int,
    loss: float,
    evaluation: Evaluation,
    classes: Sequence[int],
    lr: float,
    seconds: float,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        'epoch': epoch,
        'train_loss': f'{loss:.6f}',
        'val_dice': f'{evaluation.mean_dice:.6f}',
    }
    for c in classes:
        value = evaluation.class_dice.get(c, math.nan)
        row[f'val_dice_{CLASS_NAMES.get(c, c)}'] = f'{value:.6f}'
    row['lr'] = f'{lr:.6g}'
    row['seconds'] = f'{seconds:.2f}'
    return row


def _run_document(
    config: TrainingConfig,
    model: UNet3d,
    info: Mapping[str, Any],
    *,
    best_epoch: int | None,
    best_val_dice: float,
    epochs_completed: int,
    world_size: int,
) -> dict[str, Any]:
    """Contents of ``config.json``: the stress test reads its top-level keys."""
    description, _ = STRATEGIES[config.strategy]
    return {
        'format': 'torchio-ramp training run',
        'hu_range': list(config.hu_range),
        'patch_size': list(config.patch_size),
        'num_classes': model.num_classes,
        'strategy': config.strategy,
        'strategy_options': config.strategy_options,
        'strategy_description': description,
        'seed': config.seed,
        'model': {
            'class': f'{UNet3d.__module__}.{UNet3d.__qualname__}',
            'kwargs': model.init_kwargs,
            'factory': PRESET_FACTORIES[config.model],
            'preset': config.model,
        },
        'data': str(Path(config.data).resolve()),
        'dataset': info.get('dataset'),
        'synthetic': bool(info.get('synthetic')),
        'annotated_classes': [int(c) for c in info['annotated_classes']],
        'class_names': {str(k): v for k, v in CLASS_NAMES.items()},
        'best_epoch': best_epoch,
        'best_val_dice': _json_number(best_val_dice),
        'epochs_completed': epochs_completed,
        'world_size': world_size,
        'files': {
            'torchscript': RunFolder.TORCHSCRIPT,
            'state_dict': RunFolder.STATE_DICT,
            'last': RunFolder.LAST,
            'metrics': RunFolder.METRICS,
        },
        'versions': {
            'torchio_ramp': __version__,
            'torch': torch.__version__,
            'torchio': tio.__version__,
        },
        'training': config.to_dict(),
    }


def _batches(
    queue_factory: Callable[[], tio.Queue],
    batch_size: int,
    subject_sampler: torch.utils.data.DistributedSampler | None,
    epoch: int,
) -> Iterator[dict[str, Any]]:
    """Batches of the epoch's queue, pass after pass (endless)."""
    queue = queue_factory()
    loader = torch.utils.data.DataLoader(queue, batch_size=batch_size, num_workers=0)
    pass_index = 0
    while True:
        if subject_sampler is not None:
            subject_sampler.set_epoch(epoch * 1000 + pass_index)
        yield from loader
        pass_index += 1


def _train_steps(
    network: nn.Module,
    batches: Iterator[dict[str, Any]],
    steps: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    use_amp: bool,
) -> torch.Tensor:
    """One optimiser step per item of ``steps``; the sum of the losses."""
    device = next(network.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    for _ in steps:
        batch = next(batches)
        images = batch['ct'][tio.DATA].to(device, non_blocking=True)
        labels = batch['label'][tio.DATA].to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast('cuda', dtype=torch.bfloat16, enabled=use_amp):
            logits = network(images)
        loss = criterion(logits.float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12.0)
        optimizer.step()
        total += loss.detach()
        if isinstance(steps, tqdm):
            steps.set_postfix(loss=f'{loss.item():.3f}')
    return total


def _validate(
    predictor: SlidingWindowPredictor,
    val_set: tio.SubjectsDataset,
    context: DistributedContext,
    **kwargs: Any,
) -> Evaluation:
    """Validation Dice: each rank scores its share of the subjects; all gather."""
    shard = range(context.rank, len(val_set), context.world_size)
    evaluation = evaluate(predictor, val_set, indices=shard, **kwargs)
    if context.enabled:
        gathered: list[Any] = [None] * context.world_size
        dist.all_gather_object(gathered, evaluation.subjects)
        evaluation = Evaluation.from_subjects(
            {k: v for part in gathered for k, v in part.items()}
        )
    return evaluation


def _check_data(
    config: TrainingConfig,
    train_set: tio.SubjectsDataset,
    val_set: tio.SubjectsDataset,
) -> None:
    if len(train_set) == 0 or len(val_set) == 0:
        raise ValueError(
            f'{config.data} needs at least one train and one val subject (has'
            f' {len(train_set)} and {len(val_set)}); prepare more subjects or other'
            ' --fractions with ramp-prep'
        )
    subject = train_set.dry_iter()[0]
    shape = tuple(subject['ct'].spatial_shape)
    if any(p > s for p, s in zip(config.patch_size, shape, strict=True)):
        raise ValueError(
            f'patch_size {config.patch_size} is larger than the volume {shape} of'
            f' {subject["subject_id"]} in {config.data}; choose a smaller --patch-size'
        )


def _config_for_resume(config: TrainingConfig, run: RunFolder) -> None:
    saved = run.training_config()
    differences = saved.differences(config)
    if differences:
        raise ValueError(
            f'cannot resume {run.path} with other options ('
            + '; '.join(differences)
            + '); resume with the saved options or start a new --out'
        )


def train(
    config: TrainingConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Train a :class:`~torchio_ramp.models.UNet3d` with one strategy.

    Each epoch: seed from ``(seed, epoch, rank)``; a fresh :func:`make_queue`
    over the train split with :func:`training_transform`; ``iterations_per_epoch``
    steps of :class:`DiceCELoss` (or one pass); validation Dice on the val
    split with :func:`evaluate` (clean volumes, sliding windows); the
    :func:`poly_lr` step; then (rank 0) the best checkpoint if the validation
    Dice improved, a ``metrics.csv`` row, ``last.pt`` and ``config.json``.

    Under ``torchrun`` every process trains on its share of the subjects
    (:func:`distributed_subject_sampler`) inside
    :class:`~torch.nn.parallel.DistributedDataParallel`, validates its share of
    the val split, and rank 0 gathers the Dice and writes the files.

    Args:
        config: The run.
        resume: Continue the run in ``config.out`` from ``last.pt``; the
            run-defining options must equal the saved ones. A run that never
            finished an epoch (``config.json`` but no ``last.pt``) starts over.
        stop_after: Finish at most this many epochs in this call, e.g. to fit
            a job's time limit; continue later with ``resume=True``.
        progress: Show tqdm bars (rank 0 only).
        log: Called with one line per epoch (default: ``tqdm.write``).

    Raises:
        FileExistsError: If ``config.out`` holds a run and ``resume`` is
            false (nothing is overwritten).
        FileNotFoundError: If ``resume`` and ``config.out`` holds no run.
        ValueError: For bad options or data (named in the message).

    Example:
        >>> config = TrainingConfig('prepared', 'runs/ramp', patch_size=32)  # doctest: +SKIP
        >>> result = train(config)  # doctest: +SKIP
        >>> result.best_epoch, result.run.file('best.pt')  # doctest: +SKIP
    """  # noqa: E501
    start_time = time.perf_counter()
    if stop_after is not None and stop_after < 1:
        raise ValueError(f'stop_after must be positive, not {stop_after}')
    device = resolve_device(config.device, DistributedContext.from_environment())
    context = init_distributed(device)
    log = log or tqdm.write
    say = log if context.is_main else (lambda message: None)
    run = RunFolder(config.out)
    if resume:
        _config_for_resume(config, run)
    elif run.exists():
        raise FileExistsError(
            f'{run.path} already holds a training run ({RunFolder.CONFIG} or'
            f' {RunFolder.LAST}); pass resume=True (--resume) to continue it or'
            ' choose another --out'
        )

    info = read_dataset_info(config.data)
    annotated = [int(c) for c in info['annotated_classes']]
    classes = list(CLASS_NAMES)
    overrides = _strategy_kwargs(config.strategy_options)
    train_set = load_split(
        config.data,
        'train',
        transform=training_transform(config.hu_range, config.strategy, **overrides),
    )
    val_set = load_split(
        config.data, 'val', transform=validation_transform(config.hu_range)
    )
    _check_data(config, train_set, val_set)

    seed_all(config.seed)
    model = UNet3d(num_classes=NUM_CLASSES, channels=UNET_PRESETS[config.model])
    check_patch_size(config.patch_size, model)
    if config.init_weights is not None and not resume:
        load_initial_weights(model, config.init_weights)
    model.to(device)
    optimizer = make_optimizer(
        config.optimizer, model.parameters(), config.lr, config.weight_decay
    )
    scheduler = poly_lr(optimizer, config.epochs)
    start_epoch, best_val_dice, best_epoch = 0, -math.inf, None
    if resume and not run.file(RunFolder.LAST).is_file():
        say(f'{run.path} has no finished epoch ({RunFolder.LAST}); starting over')
        resume = False
        if context.is_main:
            run.truncate_metrics(0)
    if resume:
        state = run.load_last()
        model.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        scheduler.load_state_dict(state['scheduler'])
        start_epoch = int(state['epoch'])
        best_val_dice = float(state['best_val_dice'])
        best_epoch = state['best_epoch']
        if context.is_main:
            run.truncate_metrics(start_epoch)
        say(f'Resuming {run.path} after epoch {start_epoch} of {config.epochs}')
    elif context.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
    context.barrier()

    def document() -> dict[str, Any]:
        return _run_document(
            config,
            model,
            info,
            best_epoch=best_epoch,
            best_val_dice=best_val_dice,
            epochs_completed=epoch_done,
            world_size=context.world_size,
        )

    epoch_done = start_epoch
    if context.is_main and not resume:
        run.write_config(document())

    network: nn.Module = model
    if context.enabled:
        network = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None
        )
    subject_sampler = (
        distributed_subject_sampler(train_set, context, config.seed)
        if context.enabled
        else None
    )
    sampler = make_patch_sampler(
        config.sampler, config.patch_size, config.label_probabilities, NUM_CLASSES
    )
    criterion = DiceCELoss()
    per_pass = math.ceil(
        (len(subject_sampler) if subject_sampler else len(train_set))
        * config.samples_per_volume
        / config.batch_size
    )
    steps = config.iterations_per_epoch or per_pass
    overlap = config.val_overlap or default_overlap(config.patch_size)
    predictor = SlidingWindowPredictor(
        model,
        config.patch_size,
        overlap=overlap,
        batch_size=config.val_batch_size,
        device=device,
        amp=config.amp,
    )
    use_amp = config.amp and device.type == 'cuda'
    history = []

    end_epoch = config.epochs
    if stop_after is not None:
        end_epoch = min(end_epoch, start_epoch + stop_after)
    for epoch in range(start_epoch, end_epoch):
        epoch_start = time.perf_counter()
        seed_all(epoch_seed(config.seed, epoch, context.rank))
        lr = optimizer.param_groups[0]['lr']
        network.train()
        batches = _batches(
            lambda: make_queue(
                train_set,
                sampler,
                queue_length=config.queue_length,
                samples_per_volume=config.samples_per_volume,
                workers=config.workers,
                subject_sampler=subject_sampler,
            ),
            config.batch_size,
            subject_sampler,
            epoch,
        )
        bar = tqdm(
            range(steps),
            desc=f'epoch {epoch + 1}/{config.epochs} {config.strategy}',
            leave=False,
            disable=not (progress and context.is_main),
        )
        total = _train_steps(network, batches, bar, optimizer, criterion, use_amp)
        batches.close()  # stops the queue's workers
        if context.enabled:
            dist.all_reduce(total)
        train_loss = float(total) / (steps * context.world_size)
        evaluation = _validate(
            predictor,
            val_set,
            context,
            classes=classes,
            annotated=annotated,
            progress=progress and context.is_main,
        )
        scheduler.step()
        epoch_done = epoch + 1
        score = evaluation.mean_dice
        improved = (
            not math.isnan(score) and score > best_val_dice
        ) or best_epoch is None
        if improved:
            best_val_dice = score if not math.isnan(score) else -math.inf
            best_epoch = epoch_done
        seconds = time.perf_counter() - epoch_start
        row = _metrics_row(epoch_done, train_loss, evaluation, classes, lr, seconds)
        history.append(row)
        if context.is_main:
            if improved:
                run.save_best(model, document())
            run.append_metrics(row)
            run.save_last(
                {
                    'format_version': 1,
                    'epoch': epoch_done,
                    'model': model.state_dict(),
                    'optimizer': optimizer.state_dict(),
                    'scheduler': scheduler.state_dict(),
                    'best_val_dice': best_val_dice,
                    'best_epoch': best_epoch,
                }
            )
            run.write_config(document())
        per_class = ' '.join(
            f'{CLASS_NAMES[c]} {evaluation.class_dice.get(c, math.nan):.3f}'
            for c in classes
        )
        say(
            f'epoch {epoch_done}/{config.epochs}: loss {train_loss:.4f}, val Dice'
            f' {score:.4f} ({per_class}), lr {lr:.3g}, {seconds:.1f} s'
            + (' *best*' if improved else '')
        )
        context.barrier()

    return TrainingResult(
        run=run,
        best_epoch=best_epoch,
        best_val_dice=best_val_dice,
        epochs_completed=epoch_done,
        history=history,
        seconds=time.perf_counter() - start_time,
    )


__all__ = [
    'CORRUPTION_STRATEGIES',
    'DEFAULT_LR',
    'DiceCELoss',
    'DistributedContext',
    'Evaluation',
    'RunFolder',
    'TrainingConfig',
    'TrainingResult',
    'distributed_subject_sampler',
    'epoch_seed',
    'evaluate',
    'init_distributed',
    'make_optimizer',
    'make_patch_sampler',
    'make_queue',
    'poly_lr',
    'resolve_device',
    'seed_all',
    'strategy_overrides',
    'train',
    'training_transform',
    'validation_transform',
]
