"""The model sidecar: the training settings a model needs at inference.

One type, :class:`ModelSidecar`, is the file format: ``ramp-train`` writes it
(the top-level keys of a run's ``config.json``, also embedded in ``best.pt``
and ``best.pt2``) and ``ramp-stress run`` reads it (:func:`read_model_config`).

The intensity window and the patch size must be those of training. The
sidecar of a model file is found as ``<model path without suffix>.json`` or,
failing that, ``config.json`` in the model's folder (for ``module:factory``
the model path is the ``--weights`` file); a model file without either is
searched for an embedded ``config.json`` (``torch.export.save(...,
extra_files=...)``, ``torch.jit.save(..., _extra_files=...)`` or an ONNX
metadata property ``config.json``). Keys (others are ignored):

* ``hu_range``: ``[low, high]`` Hounsfield window of
  :class:`~torchio_ramp.CTNormalize`, e.g. ``[-200, 300]``;
* ``patch_size``: one int or three, the training patch size in voxels;
* ``num_classes`` (optional): output channels including background (6 for
  the five-organ head); checked against the model's output;
* ``strategy`` (optional): augmentation strategy name, e.g. ``"ramp"``;
  recorded with the results.

Command-line flags (``--hu-range``, ``--patch-size``) override the sidecar.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arguments import parse_size


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


@dataclass(frozen=True)
class ModelSidecar:
    """Training settings of a model (see the module docstring).

    Attributes:
        hu_range: Hounsfield window, or ``None`` if not given.
        patch_size: Patch size (three ints), or ``None``.
        num_classes: Output channels incl. background, or ``None``.
        strategy: Augmentation strategy name, or ``None``.
        source: Where the settings came from (a file, or
            ``'<model>!config.json'`` for a file embedded in the model), or
            ``None`` if there is no sidecar (or it was not read from one).

    Example:
        >>> sidecar = ModelSidecar((-200.0, 300.0), (64, 64, 64), 6, 'ramp')
        >>> sidecar.to_dict()
        {'hu_range': [-200.0, 300.0], 'patch_size': [64, 64, 64], 'num_classes': 6, 'strategy': 'ramp'}
        >>> ModelSidecar.from_dict(sidecar.to_dict()) == sidecar
        True
    """  # noqa: E501

    hu_range: tuple[float, float] | None = None
    patch_size: tuple[int, int, int] | None = None
    num_classes: int | None = None
    strategy: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's JSON keys (those that are set), as training writes them."""
        values = {
            'hu_range': None if self.hu_range is None else list(self.hu_range),
            'patch_size': None if self.patch_size is None else list(self.patch_size),
            'num_classes': self.num_classes,
            'strategy': self.strategy,
        }
        return {key: value for key, value in values.items() if value is not None}

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], source: str | None = None
    ) -> ModelSidecar:
        """Read the sidecar's keys from a JSON object (others are ignored).

        Raises:
            ValueError: If a key has a wrong value, naming ``source`` (when
                given) and the key.
        """
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
            return cls(
                hu_range=None if hu_range is None else parse_hu_range(hu_range),
                patch_size=None if patch_size is None else parse_patch_size(patch_size),
                num_classes=num_classes,
                strategy=strategy,
                source=source,
            )
        except ValueError as error:
            if source is None:
                raise
            raise ValueError(f'model sidecar {source}: {error}') from error


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


def read_model_config(
    model_path: str | Path,
    embedded: str | bytes | None = None,
) -> ModelSidecar:
    """Read the sidecar of a model file (an empty one if there is none).

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
        return ModelSidecar()
    try:
        data = json.loads(text.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        message = f'model sidecar {source} is not valid JSON: {error}'
        raise ValueError(message) from error
    if not isinstance(data, dict):
        raise ValueError(f'model sidecar {source} must hold a JSON object')
    return ModelSidecar.from_dict(data, source)
