"""The options that define a training run (``config.json``'s ``training``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..arguments import check_device
from ..arguments import parse_size
from ..models import UNET_PRESETS
from ..operators import seed_value
from ..pipelines import STRATEGIES
from ..transforms.normalization import DEFAULT_HU_RANGE
from .losses import DEFAULT_LR


def _check_number(name: str, value: Any, *, positive: bool) -> None:
    """Refuse anything but a finite number > 0 (``positive``) or >= 0."""
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if number and math.isfinite(value) and (value > 0 or (value == 0 and not positive)):
        return
    bound = '> 0' if positive else '>= 0'
    raise ValueError(f'{name} must be a finite number {bound}, not {value!r}')


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
        low, high = self.hu_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            message = f'hu_range must be finite with low < high, not {self.hu_range}'
            raise ValueError(message)
        if self.lr is not None:
            _check_number('lr', self.lr, positive=True)
        _check_number('weight_decay', self.weight_decay, positive=False)
        self.patch_size = parse_size(self.patch_size, 'patch_size')
        if self.val_overlap is not None:
            self.val_overlap = parse_size(
                self.val_overlap, 'val_overlap', allow_zero=True
            )
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
        self.seed = seed_value(self.seed, 'seed')
        if self.device != 'auto':
            check_device(self.device, 'device')

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
