"""Patch-queue training of a segmentation network with any augmentation strategy.

The ``ramp-train`` command (:mod:`.cli`) and its building blocks, importable
on their own from ``torchio_ramp.training``:

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
  :class:`~torchio_ramp.inference.SlidingWindowPredictor` and the per-volume
  :func:`~torchio_ramp.metrics.dice_per_class` the stress test uses too;
* :class:`RunFolder`: the checkpoint folder (``best.pt2`` torch.export,
  ``best.pt`` TorchScript, ``best_state_dict.pt``, ``last.pt``, ``metrics.csv``,
  ``config.json``);
* :func:`train`: the loop that ties them together, driven by a
  :class:`TrainingConfig`.

One job per module: :mod:`.config` (:class:`TrainingConfig`), :mod:`.data`
(transforms, strategy options, sampler, queue, seeds), :mod:`.losses` (loss,
optimiser, schedule), :mod:`.distributed` (``torchrun`` context, device,
process group), :mod:`.validation` (:func:`evaluate`), :mod:`.run` (the run
folder), :mod:`.loop` (:func:`train`) and :mod:`.cli` (``ramp-train``).

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

from .config import TrainingConfig
from .data import CORRUPTION_STRATEGIES
from .data import epoch_seed
from .data import make_patch_sampler
from .data import make_queue
from .data import seed_all
from .data import strategy_overrides
from .data import training_transform
from .data import validation_transform
from .distributed import DistributedContext
from .distributed import distributed_subject_sampler
from .distributed import init_distributed
from .distributed import resolve_device
from .loop import TrainingResult
from .loop import train
from .losses import DEFAULT_LR
from .losses import DiceCELoss
from .losses import make_optimizer
from .losses import poly_lr
from .run import RunFolder
from .run import load_initial_weights
from .validation import Evaluation
from .validation import evaluate

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
    'load_initial_weights',
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
