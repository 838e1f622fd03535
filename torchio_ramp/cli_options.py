"""Click callbacks shared by the command-line tools (``ramp-stress``, ``train.py``)."""

from __future__ import annotations

import click

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
