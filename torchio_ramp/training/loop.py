"""The training loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torchio as tio
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from ..datasets import load_split
from ..datasets import read_dataset_info
from ..inference import SlidingWindowPredictor
from ..inference import default_overlap
from ..labels import CLASS_NAMES
from ..labels import NUM_CLASSES
from ..model_files import ModelSidecar
from ..models import PRESET_FACTORIES
from ..models import UNET_PRESETS
from ..models import UNet3d
from ..models import check_patch_size
from ..pipelines import STRATEGIES
from .config import TrainingConfig
from .data import _strategy_kwargs
from .data import epoch_seed
from .data import make_patch_sampler
from .data import make_queue
from .data import seed_all
from .data import training_transform
from .data import validation_transform
from .distributed import DistributedContext
from .distributed import distributed_subject_sampler
from .distributed import init_distributed
from .distributed import resolve_device
from .losses import DiceCELoss
from .losses import make_optimizer
from .losses import poly_lr
from .run import RunFolder
from .run import _json_number
from .run import load_initial_weights
from .validation import Evaluation
from .validation import evaluate


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
    """Contents of ``config.json``: the model sidecar (what the stress test
    reads), then the rest of the run's description."""
    description, _ = STRATEGIES[config.strategy]
    sidecar = ModelSidecar(
        hu_range=config.hu_range,
        patch_size=config.patch_size,
        num_classes=model.num_classes,
        strategy=config.strategy,
    )
    return {
        'format': 'torchio-ramp training run',
        **sidecar.to_dict(),
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
        missing = [key for key in RunFolder.LAST_KEYS if key not in state]
        if missing:
            raise ValueError(
                f'{run.file(RunFolder.LAST)} is not a training checkpoint of this'
                f' tool (missing {missing}); restore it, or start a new --out'
            )
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

    if context.is_main and best_epoch is not None:
        run.export_program(tuple(config.patch_size))
    return TrainingResult(
        run=run,
        best_epoch=best_epoch,
        best_val_dice=best_val_dice,
        epochs_completed=epoch_done,
        history=history,
        seconds=time.perf_counter() - start_time,
    )
