"""The run folder: checkpoints, metrics and configuration, written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..files import append_synced
from ..files import atomic_path
from ..files import json_text
from ..files import write_atomic
from ..models import UNet3d
from .config import TrainingConfig


def _json_number(value: float) -> float | None:
    # JSON has no NaN or Infinity (best_val_dice is -inf before any epoch)
    return None if value is None or not math.isfinite(value) else float(value)


class RunFolder:
    """The files of a training run.

    * ``best.pt``: TorchScript export of the best-validation weights (with
      ``config.json`` embedded as an extra file); ``ramp-stress run --model
      best.pt`` reads ``hu_range`` and ``patch_size`` from ``config.json``
      beside it;
    * ``best.pt2``: the same network as a ``torch.export`` archive (dynamic
      batch, the training patch size, ``config.json`` embedded), written when
      training ends (and removed while a newer ``best.pt`` awaits it); the
      format to deploy, as TorchScript is deprecated in PyTorch:
      ``ramp-stress run --model runs/ramp/best.pt2``;
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
    PROGRAM = 'best.pt2'
    STATE_DICT = 'best_state_dict.pt'
    LAST = 'last.pt'
    LAST_KEYS = ('model', 'optimizer', 'scheduler', 'epoch', 'best_val_dice')
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
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as error:  # truncated, garbled, or not ours
            raise ValueError(
                f'{path} is damaged and cannot be resumed from ({_first_line(error)});'
                ' restore it from a backup, or start a new --out'
            ) from error
        if not isinstance(state, dict):
            raise ValueError(
                f'{path} is not a training checkpoint of this tool (it holds a'
                f' {type(state).__name__}); restore it, or start a new --out'
            )
        return state

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
        # The archive of older weights would no longer match best.pt.
        self.file(self.PROGRAM).unlink(missing_ok=True)

    def export_program(self, patch_size: tuple[int, int, int]) -> Path:
        """Write ``best.pt2``: ``torch.export`` of the best model.

        The batch axis is dynamic; the spatial shape is the training patch
        (the sliding window's); ``config.json`` is embedded, as in ``best.pt``.

        Raises:
            FileNotFoundError: If no best checkpoint exists yet.

        Example:
            >>> RunFolder('runs/ramp').export_program((96, 96, 96))  # doctest: +SKIP
            PosixPath('runs/ramp/best.pt2')
        """
        model = self.load_best('cpu')
        example = torch.zeros(2, model.init_kwargs.get('in_channels', 1), *patch_size)
        batch = torch.export.Dim('batch', min=1, max=4096)
        with torch.no_grad():
            program = torch.export.export(
                model, (example,), dynamic_shapes=({0: batch},)
            )
        extra = {'config.json': json.dumps(self.read_config(), indent=2)}
        path = self.file(self.PROGRAM)
        with atomic_path(path) as tmp, tmp.open('wb') as file:
            torch.export.save(program, file, extra_files=extra)
        return path

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
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # unreadable, truncated, or a pickle with code
        raise ValueError(
            f'init_weights: cannot read {path} with torch.load(weights_only=True)'
            f' ({_first_line(error)}); pass a state_dict saved with'
            ' torch.save(model.state_dict(), path) or a run folder'
        ) from error
    if isinstance(state, dict) and isinstance(state.get('model'), dict):
        state = state['model']  # a last.pt checkpoint
    if not isinstance(state, dict):
        message = (
            f'init_weights: {path} holds a {type(state).__name__}, not a state_dict'
        )
        raise ValueError(message)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        message = f'init_weights: {path} does not fit the {type(model).__name__}'
        raise ValueError(f'{message}: {_first_line(error)}') from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f'{type(error).__name__}: {text[0]}' if text else type(error).__name__
