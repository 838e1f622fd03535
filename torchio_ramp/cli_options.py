"""Click callbacks shared by the command-line tools (``ramp-stress``, ``train.py``)."""

from __future__ import annotations

import click
import torch

from .families import check_families


def split_list(values: tuple[str, ...]) -> list[str]:
    """Items of a repeatable, comma-separated option, blanks dropped.

    Example:
        >>> split_list(('blur, stripe', 'ghosting'))
        ['blur', 'stripe', 'ghosting']
    """
    items = (item.strip() for value in values for item in value.split(','))
    return [item for item in items if item]


def family_names(
    ctx: click.Context | None,
    param: click.Parameter | None,
    values: tuple[str, ...],
) -> tuple[str, ...] | None:
    """Corruption family names of an option, checked; ``None`` when not given.

    Example:
        >>> family_names(None, None, ('blur,stripe',))
        ('blur', 'stripe')
    """
    names = split_list(values)
    if not names:
        return None
    try:
        return check_families(names, argument=None)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def _device_problem(value: str | torch.device) -> tuple[torch.device | None, str]:
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
    device, problem = _device_problem(value)
    if device is None:
        raise ValueError(f'{option} {problem}')
    return device


def device_option(
    ctx: click.Context | None,
    param: click.Parameter | None,
    value: str | None,
) -> str | None:
    """Click callback: :func:`check_device` as a usage error (exit 2).

    Example:
        >>> device_option(None, None, 'cpu')
        'cpu'
    """
    if value is None:
        return None
    device, problem = _device_problem(value)
    if device is None:
        raise click.BadParameter(problem)
    return value
