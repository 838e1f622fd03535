"""nnU-Net checkpoints read as data: no code from the file ever runs.

nnU-Net saves a checkpoint (``fold_N/checkpoint_final.pth``) with
``torch.save`` and reads it back with ``torch.load(weights_only=False)``: a
full unpickling, which runs whatever a crafted file asks for.
:func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``
instead, whose unpickler builds only tensors, containers, numbers, strings
and the few extra types an nnU-Net checkpoint holds
(:data:`CHECKPOINT_GLOBALS`: NumPy scalars and dtypes in the training log),
and refuses everything else before it is built. Every reader in this package
(the ``ramp-stress`` predictor, ``export-model``) goes through it, and hands
nnU-Net the loaded dictionary, never the file.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

PROVENANCE_KEY = 'ramp_provenance'
"""The checkpoint key recording which trainer (and settings) trained a model;
nnU-Net does not read it."""

REQUIRED_KEYS = ('network_weights', 'trainer_name', 'init_args')
"""What an nnU-Net checkpoint must hold for prediction."""


def checkpoint_globals() -> list[Any]:
    """The types beyond ``weights_only``'s defaults that nnU-Net stores.

    nnU-Net's training log (``logging``) and ``_best_ema`` hold NumPy scalars;
    unpickling one needs NumPy's scalar constructor and its dtype classes.
    None of them runs code: they rebuild numbers from bytes.

    Example:
        >>> np.dtype in checkpoint_globals()
        True
    """
    core = getattr(np, '_core', None) or np.core
    allowed: list[Any] = [core.multiarray.scalar, core.multiarray._reconstruct]
    allowed += [np.ndarray, np.dtype]
    allowed += sorted(
        {type(np.dtype(code)) for code in 'bBhHiIlLqQefdg?'}, key=lambda t: t.__name__
    )
    return allowed


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as data (crafted, damaged, not nnU-Net's)."""


_GENERIC = (
    'Weights only load failed',
    'Please file an issue',
    'Check the documentation',
)


def _unpickling_detail(error: BaseException) -> str:
    """The informative part of torch's weights-only refusal."""
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line for line in lines if line and not line.startswith(_GENERIC)]
    return ' '.join(kept).replace('WeightsUnpickler error: ', '') or _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an nnU-Net checkpoint with ``torch.load(weights_only=True)``.

    Args:
        path: ``fold_N/checkpoint_final.pth`` (or ``checkpoint_best.pth``).

    Returns:
        The checkpoint dictionary (on the CPU).

    Raises:
        CheckpointError: If the file holds anything but data (a pickled
            callable, an unknown class), is damaged or truncated, or lacks
            :data:`REQUIRED_KEYS`; the message names the file.

    Example:
        >>> checkpoint = load_checkpoint('checkpoint_final.pth')  # doctest: +SKIP
        >>> checkpoint['trainer_name']  # doctest: +SKIP
        'nnUNetTrainerRAMP'
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(checkpoint_globals()):
            loaded = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _unpickling_detail(error)
        if 'GLOBAL' not in detail and 'global' not in detail:
            message = (
                f'{path} is damaged or not a PyTorch checkpoint ({detail}); copy it'
                ' again from the training machine'
            )
            raise CheckpointError(message) from error
        message = (
            f'{path} was refused: it holds more than weights and data ({detail}).'
            ' Loading it as nnU-Net does would run code stored in the file; use'
            ' checkpoints only from people you trust'
        )
        raise CheckpointError(message) from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        message = (
            f'{path} is damaged or not a PyTorch checkpoint ({_first_line(error)});'
            ' copy it again from the training machine'
        )
        raise CheckpointError(message) from error
    check_checkpoint(loaded, path)
    return loaded


def check_checkpoint(loaded: Any, path: str | Path) -> None:
    """Refuse what is not an nnU-Net checkpoint (``path`` names it).

    Example:
        >>> check_checkpoint({'trainer_name': 'x'}, 'c.pth')
        Traceback (most recent call last):
        ...
        torchio_ramp.nnunet.checkpoint.CheckpointError: c.pth is not an nnU-Net checkpoint: no network_weights, init_args
    """  # noqa: E501
    if not isinstance(loaded, Mapping):
        message = (
            f'{path} is not an nnU-Net checkpoint: it holds a'
            f' {type(loaded).__name__}, not a dictionary'
        )
        raise CheckpointError(message)
    missing = [key for key in REQUIRED_KEYS if key not in loaded]
    if missing:
        message = f'{path} is not an nnU-Net checkpoint: no {", ".join(missing)}'
        raise CheckpointError(message)
    weights = loaded['network_weights']
    if not isinstance(weights, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise CheckpointError(f'{path}: network_weights is not a state dict of tensors')
    if not isinstance(loaded['trainer_name'], str):
        raise CheckpointError(f'{path}: trainer_name is not a string')
    init_args = loaded['init_args']
    if not isinstance(init_args, Mapping) or not isinstance(
        init_args.get('configuration'), str
    ):
        raise CheckpointError(f'{path}: init_args has no configuration name')
