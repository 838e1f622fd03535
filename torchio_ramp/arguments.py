"""Values the Python API and every tool read the same way: sizes and devices.

* :func:`parse_size` is the one parser of "one size or three": ``64``,
  ``(64, 64, 48)``, ``'64'``, ``'64,64,48'`` or ``'64x64x48'``. Patch sizes,
  overlaps, grids, phantom shapes and spacings all go through it.
* :func:`resolve_device` is the one default-device rule: ``'auto'`` is
  ``cuda:$LOCAL_RANK`` when CUDA is available (one GPU per ``torchrun``
  process), else ``cpu``; a bare ``'cuda'`` is ``cuda:$LOCAL_RANK``.
  :func:`check_device` says why a machine cannot use a device.

The command-line options built on them are in :mod:`torchio_ramp.cli_options`.
This module depends on nothing else in the package, so the lowest layers
(operators, inference) use it too.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from typing import Any

import torch

SIZE_FORMS = 'N, N,N,N or NxNxN'
"""The accepted spellings of a size, as error messages and help name them."""

_SEPARATOR = re.compile(r'\s*[,xX]\s*')


def parse_size(
    value: Any,
    name: str = 'size',
    *,
    kind: type = int,
    allow_zero: bool = False,
) -> tuple:
    """One size or three, as a triple.

    Args:
        value: A number, three numbers, or a string ``'N'``, ``'N,N,N'`` or
            ``'NxNxN'``.
        name: What the value is, for the error message (e.g. ``'patch_size'``
            or ``'--patch-size'``).
        kind: ``int`` (voxels) or ``float`` (e.g. millimetres).
        allow_zero: Accept 0 (overlaps); otherwise every size is positive.

    Raises:
        ValueError: Naming ``name``, the accepted forms and the value.

    Example:
        >>> parse_size('64x64x48'), parse_size(64), parse_size([96, 96, 64])
        ((64, 64, 48), (64, 64, 64), (96, 96, 64))
        >>> parse_size('1.5, 1.5, 3', 'spacing', kind=float)
        (1.5, 1.5, 3.0)
        >>> parse_size('64,64', 'patch_size')
        Traceback (most recent call last):
        ...
        ValueError: patch_size must be N, N,N,N or NxNxN with positive integers, not '64,64'
    """  # noqa: E501
    bound = 'non-negative' if allow_zero else 'positive'
    noun = 'integers' if kind is int else 'numbers'
    message = f'{name} must be {SIZE_FORMS} with {bound} {noun}, not {value!r}'
    if isinstance(value, str):
        text = value.strip()
        try:
            values = [kind(part) for part in _SEPARATOR.split(text)]
        except ValueError as error:
            raise ValueError(message) from error
    elif isinstance(value, numbers.Number):
        values = [value]
    else:
        try:
            values = list(value)
        except TypeError as error:
            raise ValueError(message) from error
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise ValueError(message)
    checked = []
    for item in values:
        wanted = numbers.Integral if kind is int else numbers.Real
        if isinstance(item, bool) or not isinstance(item, wanted):
            raise ValueError(message)
        number = kind(item)
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            raise ValueError(message)
        checked.append(number)
    return tuple(checked)


def local_rank() -> int:
    """This process's GPU index under ``torchrun`` (``LOCAL_RANK``, else 0).

    Example:
        >>> local_rank() >= 0
        True
    """
    return int(os.environ.get('LOCAL_RANK', 0))


def device_problem(value: str | torch.device) -> tuple[torch.device | None, str]:
    """``(device, '')`` if this machine has ``value``, else ``(None, why not)``.

    Example:
        >>> device_problem('cpu')
        (device(type='cpu'), '')
        >>> device_problem('meta')
        (None, "meta: unsupported device type 'meta'")
    """
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        return None, f'{value!r} is not a device name (e.g. cpu, cuda, cuda:1)'
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            why = 'this torch build has no CUDA' if torch.version.cuda is None else ''
            why = why or 'no GPU is visible'
            return None, f'{value}: CUDA is not available ({why}); use --device cpu'
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return None, f'{value}: there are only {count} GPU(s) (cuda:0..)'
    elif device.type == 'mps':
        if not torch.backends.mps.is_available():
            return None, f'{value}: MPS is not available on this machine'
    elif device.type != 'cpu':
        return None, f'{value}: unsupported device type {device.type!r}'
    return device, ''


def check_device(value: str | torch.device, option: str = '--device') -> torch.device:
    """Parse a device name and make sure this machine has it.

    Raises:
        ValueError: Naming ``option``: an unknown device name, CUDA requested
            on a machine (or a torch build) without it, or a GPU index
            beyond the GPUs present.

    Example:
        >>> check_device('cpu')
        device(type='cpu')
        >>> check_device('bogus')
        Traceback (most recent call last):
        ...
        ValueError: --device 'bogus' is not a device name (e.g. cpu, cuda, cuda:1)
    """
    device, problem = device_problem(value)
    if device is None:
        raise ValueError(f'{option} {problem}')
    return device


def resolve_device(
    device: str | torch.device | None = 'auto',
    rank: int | None = None,
) -> torch.device:
    """The device a tool runs on (the one default-device rule).

    It does not check that the machine has the device (:func:`check_device`).

    Args:
        device: ``'auto'`` (or ``None``): ``cuda:rank`` if CUDA is available,
            else ``cpu``; ``'cuda'`` without an index: ``cuda:rank``; anything
            else as :class:`torch.device` reads it (``'cpu'``, ``'cuda:1'``,
            ``'mps'``).
        rank: GPU index of this process (default: :func:`local_rank`).

    Raises:
        ValueError: If ``device`` is not a device name.

    Example:
        >>> resolve_device('cpu'), resolve_device('cuda', rank=1)
        (device(type='cpu'), device(type='cuda', index=1))
    """
    rank = local_rank() if rank is None else rank
    if device is None or device == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda', rank)
        return torch.device('cpu')
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        message = f'{device!r} is not a device name (e.g. cpu, cuda, cuda:1)'
        raise ValueError(message) from error
    if resolved.type == 'cuda' and resolved.index is None:
        resolved = torch.device('cuda', rank)
    return resolved


__all__ = [
    'SIZE_FORMS',
    'check_device',
    'device_problem',
    'local_rank',
    'parse_size',
    'resolve_device',
]
