"""Command-line options shared by ``ramp-train``, ``ramp-prep`` and ``ramp-stress``.

The same thing is spelled the same way in every tool: a size is ``N``,
``N,N,N`` or ``NxNxN`` (:func:`size_option`, parsed by the one
:func:`~torchio_ramp.arguments.parse_size`), a device is ``--device`` with the
one default rule :func:`~torchio_ramp.arguments.resolve_device`, and
``--hu-range LOW HIGH``, ``--seed``, ``-j/--workers``, ``--progress/--no-progress``
and ``--version`` are declared once here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .arguments import SIZE_FORMS
from .arguments import check_device
from .arguments import device_problem
from .arguments import parse_size
from .arguments import resolve_device

SIZE_METAVAR = 'N|N,N,N|NxNxN'
"""How a size option shows its value in ``--help``."""

DEVICE_HELP = (
    'auto (cuda:$LOCAL_RANK if CUDA is available, else cpu), cpu, cuda, cuda:1...'
)
"""Help of every ``--device`` option."""

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


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
    from .families import check_families

    names = split_list(values)
    if not names:
        return None
    try:
        return check_families(names, argument=None)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def size_callback(
    kind: type = int, allow_zero: bool = False
) -> Callable[[Any, Any, Any], tuple | None]:
    """Click callback: :func:`~torchio_ramp.arguments.parse_size` of the value.

    Example:
        >>> size_callback()(None, None, '64x64x48')
        (64, 64, 48)
    """

    def callback(ctx: Any, param: Any, value: Any) -> tuple | None:
        if value is None:
            return None
        name = param.opts[0] if param is not None else 'size'
        try:
            return parse_size(value, name, kind=kind, allow_zero=allow_zero)
        except ValueError as error:
            raise click.BadParameter(str(error)) from error

    return callback


def size_option(
    *declarations: str,
    kind: type = int,
    allow_zero: bool = False,
    **attributes: Any,
) -> Decorator:
    """An option taking a size: ``N``, ``N,N,N`` or ``NxNxN``.

    Example:
        >>> @click.command()
        ... @size_option('--patch-size', default='64')
        ... def command(patch_size):
        ...     click.echo(patch_size)
        >>> from click.testing import CliRunner
        >>> CliRunner().invoke(command, ['--patch-size', '64x64x48']).output
        '(64, 64, 48)\\n'
    """
    return click.option(
        *declarations,
        callback=size_callback(kind, allow_zero),
        metavar=SIZE_METAVAR,
        **attributes,
    )


def data_option(**attributes: Any) -> Decorator:
    """``--data DIRECTORY``: a dataset folder prepared by ``ramp-prep``."""
    values = {'help': 'Dataset folder prepared by ramp-prep (holds dataset.json).'}
    return click.option(
        '--data',
        type=click.Path(file_okay=False, path_type=Path),
        **{**values, **attributes},
    )


def _device(ctx: Any, param: Any, value: str | None) -> str | None:
    """Refuse (exit 2) a device this machine does not have; ``auto`` always works."""
    if value is None or value == 'auto':
        return value
    _, problem = device_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def device_option(**attributes: Any) -> Decorator:
    """``--device`` (default ``auto``, resolved by the one device rule).

    The value is returned as given (``'auto'`` stays ``'auto'``); pass it to
    :func:`~torchio_ramp.arguments.resolve_device`.
    """
    values = {'default': 'auto', 'show_default': True, 'help': DEVICE_HELP}
    return click.option(
        '--device', metavar='DEVICE', callback=_device, **{**values, **attributes}
    )


def hu_range_option(**attributes: Any) -> Decorator:
    """``--hu-range LOW HIGH``: the HU window of ``CTNormalize``."""
    values = {'help': 'HU window of CTNormalize.'}
    return click.option(
        '--hu-range',
        nargs=2,
        type=float,
        metavar='LOW HIGH',
        **{**values, **attributes},
    )


def seed_option(**attributes: Any) -> Decorator:
    """``--seed`` (an integer in ``[0, 2**64 - 1]``, what ``torch.Generator`` takes)."""
    values = {'default': 0, 'show_default': True}
    return click.option(
        '--seed', type=click.IntRange(0, 2**64 - 1), **{**values, **attributes}
    )


def workers_option(minimum: int = 0, **attributes: Any) -> Decorator:
    """``-j/--workers``: worker processes."""
    return click.option(
        '-j',
        '--workers',
        type=click.IntRange(min=minimum),
        show_default=True,
        **attributes,
    )


def progress_option(**attributes: Any) -> Decorator:
    """``--progress/--no-progress`` (progress bars on stderr, shown by default)."""
    values = {
        'default': True,
        'show_default': True,
        'help': 'Show progress bars (on stderr).',
    }
    return click.option('--progress/--no-progress', **{**values, **attributes})


__all__ = [
    'DEVICE_HELP',
    'SIZE_FORMS',
    'SIZE_METAVAR',
    'check_device',
    'data_option',
    'device_option',
    'family_names',
    'hu_range_option',
    'parse_size',
    'progress_option',
    'resolve_device',
    'seed_option',
    'size_callback',
    'size_option',
    'split_list',
    'workers_option',
]
