"""Load a model for inference: a model file or ``module:factory`` with weights.

:func:`load_model` reads a model as

* a model file, recognised by its content (see
  :mod:`~torchio_ramp.model_files.formats`): a ``torch.export`` archive
  (``torch.export.save``, ``.pt2``), an ONNX model (run with onnxruntime,
  the ``onnx`` extra) or a TorchScript file (``torch.jit.save``; legacy), or
* ``package.module:factory`` plus a ``state_dict`` file (``--weights``): the
  factory (importable from the working directory or ``PYTHONPATH``) is
  called without arguments and must return the network; the
  weights are read with ``torch.load(..., weights_only=True)`` (no pickled
  code is run) and may be a plain ``state_dict`` or a checkpoint dictionary
  holding it under ``'state_dict'`` or ``'model'``,

with its sidecar (:mod:`~torchio_ramp.model_files.sidecar`).

Model name. The file's stem (``ramp.pt`` -> ``ramp``), except when the
settings come from a ``config.json`` describing the whole folder (a training
run folder such as ``runs/ramp/best.pt``): then the folder's name (``ramp``),
since every run's file is called ``best.pt``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..arguments import check_device
from ..files import file_sha256
from .formats import load_model_file
from .formats import model_format
from .sidecar import ModelSidecar
from .sidecar import read_model_config

_FACTORY = re.compile(r'[A-Za-z_][\w.]*:[A-Za-z_][\w.]*')


def default_name(path: Path, config: ModelSidecar) -> str:
    """Model name: the folder's for a run folder's ``config.json``, else the stem.

    Example:
        >>> config = ModelSidecar(source='runs/ramp/config.json')
        >>> default_name(Path('runs/ramp/best.pt'), config)
        'ramp'
        >>> default_name(Path('models/ramp.pt'), ModelSidecar())
        'ramp'
    """
    if config.source == str(path.parent / 'config.json') and path.parent.name:
        return path.parent.name
    return path.stem


@dataclass
class LoadedModel:
    """A network ready for inference, with where it came from.

    Attributes:
        module: The network (in eval mode).
        name: Default model name (see :func:`default_name`).
        path: The model file or the weights file.
        spec: The model argument as given (path or ``module:factory``).
        sha256: SHA-256 of :attr:`path`.
        config: Its sidecar.
        format: ``'torch.export'``, ``'onnx'``, ``'torchscript'`` or
            ``'factory'``.

    Example:
        >>> loaded = load_model('runs/ramp/model.pt')  # doctest: +SKIP
        >>> loaded.fingerprint()['model']  # doctest: +SKIP
        'torchscript'
    """

    module: torch.nn.Module
    name: str
    path: Path
    spec: str
    sha256: str
    config: ModelSidecar
    format: str = 'torchscript'

    def fingerprint(self) -> dict[str, str]:
        """What identifies the model in a run's arguments."""
        kind = self.format if self.spec == str(self.path) else self.spec
        return {'model': kind, 'model_sha256': self.sha256}


def _state_dict(loaded: Any, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        for key in ('state_dict', 'model'):
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and all(
                isinstance(v, torch.Tensor) for v in inner.values()
            ):
                return inner
        if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
            return loaded
    message = (
        f'{path} holds no state_dict (a mapping of parameter names to tensors,'
        " possibly under 'state_dict' or 'model')"
    )
    raise ValueError(message)


def _load_factory(spec: str, weights: Path, device: torch.device) -> torch.nn.Module:
    module_name, _, attribute = spec.partition(':')
    # Like uvicorn and gunicorn: modules in the working directory are found.
    if os.getcwd() not in sys.path and '' not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        message = f'--model {spec}: cannot import {module_name!r}: {error}'
        raise ValueError(message) from error
    for part in attribute.split('.'):
        if not hasattr(target, part):
            raise ValueError(f'--model {spec}: {module_name!r} has no {attribute!r}')
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f'--model {spec}: {attribute!r} is not callable')
    try:
        network = target()
    except Exception as error:  # user code: name the option and the failure
        text = str(error).strip().splitlines()
        message = (
            f'--model {spec}: calling {attribute}() failed:'
            f' {type(error).__name__}: {text[0] if text else ""}. The factory must'
            ' take no arguments and return a torch.nn.Module'
        )
        raise ValueError(message) from error
    if not isinstance(network, torch.nn.Module):
        message = (
            f'--model {spec}: the factory returned {type(network).__name__}, not a'
            ' torch.nn.Module'
        )
        raise ValueError(message)
    try:
        loaded = torch.load(weights, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        message = (
            f'cannot read the weights {weights} with torch.load(weights_only=True):'
            f' {str(error).splitlines()[0]}. Save model.state_dict() with'
            ' torch.save, not the whole model.'
        )
        raise ValueError(message) from error
    try:
        network.load_state_dict(_state_dict(loaded, weights))
    except RuntimeError as error:
        message = f'the weights {weights} do not fit {spec}: {error}'
        raise ValueError(message) from error
    return network.to(device)


def load_model(
    model: str | Path,
    weights: str | Path | None = None,
    *,
    device: str | torch.device = 'cpu',
    trust: bool = False,
) -> LoadedModel:
    """Load a model file (``torch.export``, ONNX, TorchScript), or
    ``module:factory`` with a ``state_dict``.

    Args:
        model: Path of a model file, or ``package.module:factory``.
        weights: The ``state_dict`` file (only with ``module:factory``).
        device: Where to put the network.
        trust: Load a model file without the checks of
            :mod:`torchio_ramp.model_files.safety`. A TorchScript file is
            loaded in any case (as the stress tools always have).

    Raises:
        FileNotFoundError: If the model or weights file is missing.
        ValueError: If it cannot be loaded (not a model file, no factory,
            weights that do not fit); the message names the file.

    Example:
        >>> loaded = load_model('runs/ramp/model.pt')  # doctest: +SKIP
        >>> loaded.name, loaded.config.patch_size  # doctest: +SKIP
        ('model', (96, 96, 96))
    """
    device = check_device(device, 'device')
    spec = str(model)
    path = Path(model)
    if path.is_file():
        if weights is not None:
            message = (
                f'--weights is only for --model module:factory; {path} is a file'
                ' (an exported model holds its weights)'
            )
            raise ValueError(message)
        trusted = trust or model_format(path) == 'torchscript'
        network, embedded, kind = load_model_file(path, device, trust=trusted)
    elif _FACTORY.fullmatch(spec) and not path.exists():
        if weights is None:
            raise ValueError(f'--model {spec} needs --weights STATE_DICT_FILE')
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f'weights file not found: {path}')
        network = _load_factory(spec, path, device)
        embedded, kind = None, 'factory'
    else:
        raise FileNotFoundError(
            f'model file not found: {spec} (expected a torch.export, ONNX or'
            ' TorchScript file, or package.module:factory with --weights)'
        )
    network.eval()
    config = read_model_config(path, embedded)
    return LoadedModel(
        module=network,
        name=default_name(path, config),
        path=path,
        spec=spec if weights is not None else str(path),
        sha256=file_sha256(path),
        config=config,
        format=kind,
    )
