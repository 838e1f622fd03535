"""Predictors: load a trained model and predict whole volumes.

A *predictor* is any callable ``image (C, D, H, W) float tensor in [0, 1] ->
integer label map (D, H, W)``. :func:`load_model` reads a model as

* a model file, recognised by its content (see
  :mod:`~torchio_ramp.stress.loaders`): a ``torch.export`` archive
  (``torch.export.save``, ``.pt2``), an ONNX model (run with onnxruntime,
  the ``onnx`` extra) or a TorchScript file (``torch.jit.save``; legacy), or
* ``package.module:factory`` plus a ``state_dict`` file (``--weights``): the
  factory (importable from the working directory or ``PYTHONPATH``) is
  called without arguments and must return the network; the
  weights are read with ``torch.load(..., weights_only=True)`` (no pickled
  code is run) and may be a plain ``state_dict`` or a checkpoint dictionary
  holding it under ``'state_dict'`` or ``'model'``.

:func:`make_predictor` wraps the network in
:class:`~torchio_ramp.inference.SlidingWindowPredictor` (TorchIO's
``GridSampler``, Hann-weighted blending).

Model sidecar. The intensity window and the patch size must be those of
training. The training script writes them to a JSON file next to the model,
found as ``<model path without suffix>.json`` or, failing that,
``config.json`` in the model's folder (for ``module:factory`` the model path
is the ``--weights`` file); a model file without either is searched
for an embedded ``config.json`` (``torch.export.save(..., extra_files=...)``,
``torch.jit.save(..., _extra_files=...)`` as ``torchio_ramp.training`` writes
``best.pt``, or an ONNX metadata property ``config.json``). Keys (others are ignored):

* ``hu_range``: ``[low, high]`` Hounsfield window of
  :class:`~torchio_ramp.CTNormalize`, e.g. ``[-200, 300]``;
* ``patch_size``: one int or three, the training patch size in voxels;
* ``num_classes`` (optional): output channels including background (6 for
  the five-organ head); checked against the model's output;
* ``strategy`` (optional): augmentation strategy name, e.g. ``"ramp"``;
  recorded with the results.

Command-line flags (``--hu-range``, ``--patch-size``) override the sidecar.

Model name. The file's stem (``ramp.pt`` -> ``ramp``), except when the
settings come from a ``config.json`` describing the whole folder (a training
run folder such as ``runs/ramp/best.pt``): then the folder's name (``ramp``),
since every run's file is called ``best.pt``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pickle
import re
import sys
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..arguments import check_device
from ..arguments import parse_size
from ..inference import SlidingWindowPredictor
from .loaders import load_model_file
from .loaders import model_format
from .store import file_sha256

_FACTORY = re.compile(r'[A-Za-z_][\w.]*:[A-Za-z_][\w.]*')


@dataclass(frozen=True)
class ModelConfig:
    """Training settings read from a model sidecar (see the module docstring).

    Attributes:
        hu_range: Hounsfield window, or ``None`` if not given.
        patch_size: Patch size (three ints), or ``None``.
        num_classes: Output channels incl. background, or ``None``.
        strategy: Augmentation strategy name, or ``None``.
        source: Where the settings came from (a file, or
            ``'<model>!config.json'`` for a file embedded in the model), or
            ``None`` if there is no sidecar.

    Example:
        >>> ModelConfig(patch_size=(64, 64, 64)).hu_range is None
        True
    """

    hu_range: tuple[float, float] | None = None
    patch_size: tuple[int, int, int] | None = None
    num_classes: int | None = None
    strategy: str | None = None
    source: str | None = None


def find_sidecar(model_path: str | Path) -> Path | None:
    """The sidecar of a model file: ``<path without suffix>.json``, else
    ``config.json`` in its folder, else ``None``.

    Example:
        >>> find_sidecar('runs/ramp/model.pt')  # doctest: +SKIP
        PosixPath('runs/ramp/model.json')
    """
    path = Path(model_path)
    for candidate in (path.with_suffix('.json'), path.parent / 'config.json'):
        if candidate.is_file() and candidate != path:
            return candidate
    return None


def parse_patch_size(value: Any, name: str = 'patch_size') -> tuple[int, int, int]:
    """One positive int or three, as a triple (:func:`~torchio_ramp.arguments.parse_size`).

    Example:
        >>> parse_patch_size(64), parse_patch_size([96, 96, 64])
        ((64, 64, 64), (96, 96, 64))
    """  # noqa: E501
    return parse_size(value, name)


def parse_hu_range(value: Any, name: str = 'hu_range') -> tuple[float, float]:
    """``[low, high]`` with ``low < high``, as floats.

    Example:
        >>> parse_hu_range([-200, 300])
        (-200.0, 300.0)
    """
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as error:
        message = f'{name} must be two numbers [low, high], not {value!r}'
        raise ValueError(message) from error
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f'{name} must satisfy low < high, not {value!r}')
    return low, high


def read_model_config(
    model_path: str | Path,
    embedded: str | bytes | None = None,
) -> ModelConfig:
    """Read the sidecar of a model file (an empty config if there is none).

    Args:
        model_path: The model file or the weights file.
        embedded: Text of a ``config.json`` stored inside the model file,
            used when no sidecar file exists.

    Raises:
        ValueError: If the sidecar is not valid JSON or a key has a wrong
            value; the message names the file and the key.

    Example:
        >>> read_model_config('runs/ramp/best.pt').patch_size  # doctest: +SKIP
        (96, 96, 96)
        >>> read_model_config('absent.pt', embedded='{"patch_size": 32}').patch_size
        (32, 32, 32)
    """
    path = find_sidecar(model_path)
    if path is not None:
        source = str(path)
        text = path.read_bytes()
    elif embedded:
        source = f'{model_path}!config.json'
        text = embedded.encode('utf-8') if isinstance(embedded, str) else embedded
    else:
        return ModelConfig()
    try:
        data = json.loads(text.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        message = f'model sidecar {source} is not valid JSON: {error}'
        raise ValueError(message) from error
    if not isinstance(data, dict):
        raise ValueError(f'model sidecar {source} must hold a JSON object')
    try:
        hu_range = data.get('hu_range')
        patch_size = data.get('patch_size')
        num_classes = data.get('num_classes')
        strategy = data.get('strategy')
        if num_classes is not None and (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, int)
            or num_classes < 2
        ):
            message = f'num_classes must be an integer >= 2, not {num_classes!r}'
            raise ValueError(message)
        if strategy is not None and not isinstance(strategy, str):
            raise ValueError(f'strategy must be a string, not {strategy!r}')
        return ModelConfig(
            hu_range=None if hu_range is None else parse_hu_range(hu_range),
            patch_size=None if patch_size is None else parse_patch_size(patch_size),
            num_classes=num_classes,
            strategy=strategy,
            source=source,
        )
    except ValueError as error:
        raise ValueError(f'model sidecar {source}: {error}') from error


def default_name(path: Path, config: ModelConfig) -> str:
    """Model name: the folder's for a run folder's ``config.json``, else the stem.

    Example:
        >>> config = ModelConfig(source='runs/ramp/config.json')
        >>> default_name(Path('runs/ramp/best.pt'), config)
        'ramp'
        >>> default_name(Path('models/ramp.pt'), ModelConfig())
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
    config: ModelConfig
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
            :mod:`torchio_ramp.model_safety`. A TorchScript file is loaded
            in any case (as the stress tools always have).

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


def check_output(
    module: torch.nn.Module,
    patch_size: Sequence[int],
    *,
    in_channels: int = 1,
    num_classes: int | None = None,
    device: str | torch.device = 'cpu',
    name: str = 'the model',
) -> int:
    """Run one blank patch through ``module`` and return its number of classes.

    Raises:
        ValueError: If the forward pass fails, the output is not
            ``(1, K, *patch_size)`` logits, or ``K`` differs from
            ``num_classes``; the message names ``name``.

    Example:
        >>> check_output(torch.nn.Conv3d(1, 6, 1), (8, 8, 8))
        6
    """
    patch = torch.zeros(1, in_channels, *patch_size, device=device)
    try:
        with torch.no_grad():
            output = module(patch)
    except Exception as error:  # any failure of user code: say where it happened
        message = (
            f'{name} failed on a blank (1, {in_channels}, {", ".join(map(str, patch_size))})'  # noqa: E501
            f' patch: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'  # noqa: E501
        )
        raise ValueError(message) from error
    if not isinstance(output, torch.Tensor):
        raise ValueError(f'{name} returned {type(output).__name__}, not a tensor')
    shape = tuple(output.shape)
    if len(shape) != 5 or shape[0] != 1 or shape[2:] != tuple(patch_size):
        message = (
            f'{name} maps a (1, {in_channels}, *{tuple(patch_size)}) patch to shape'
            f' {shape}; expected logits (1, K, *{tuple(patch_size)})'
        )
        raise ValueError(message)
    if num_classes is not None and shape[1] != num_classes:
        message = (
            f'{name} outputs {shape[1]} channels but its sidecar says num_classes'
            f' = {num_classes}'
        )
        raise ValueError(message)
    return shape[1]


def default_overlap(patch_size: Sequence[int]) -> tuple[int, int, int]:
    """Half the patch per axis, rounded down to an even number.

    Example:
        >>> default_overlap((96, 96, 25))
        (48, 48, 12)
    """
    values = [(p // 2) // 2 * 2 for p in patch_size]
    return (values[0], values[1], values[2])


def make_predictor(
    module: torch.nn.Module,
    patch_size: Sequence[int],
    *,
    overlap: int | Sequence[int] | None = None,
    batch_size: int = 2,
    device: str | torch.device | None = None,
    amp: bool = False,
    aggregation_device: str | torch.device = 'cpu',
) -> SlidingWindowPredictor:
    """Sliding-window predictor over ``module`` (see
    :class:`~torchio_ramp.inference.SlidingWindowPredictor`).

    Args:
        module: Network mapping ``(B, 1, *patch)`` to logits.
        patch_size: Patch size in voxels (three ints).
        overlap: Overlap in voxels (default: :func:`default_overlap`).
        batch_size: Patches per forward pass.
        device: Device of the forward pass (default: the module's).
        amp: bfloat16 automatic mixed precision (CUDA only).
        aggregation_device: Device of the blended output volume (default: the
            CPU, so a GPU holds only a batch of patches).

    Example:
        >>> predict = make_predictor(torch.nn.Conv3d(1, 6, 1), (8, 8, 8))
        >>> predict(torch.rand(1, 10, 9, 8)).shape
        torch.Size([10, 9, 8])
    """
    patch_size = parse_patch_size(list(patch_size))
    if overlap is None:
        overlap = default_overlap(patch_size)
    return SlidingWindowPredictor(
        module,
        patch_size=patch_size,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        amp=amp,
        aggregation_device=aggregation_device,
    )
