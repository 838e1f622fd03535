"""Errors raised by ``ramp-prep``; every message names the path involved."""

from __future__ import annotations

import errno
import os


class PrepError(Exception):
    """A problem with one input or output, explained for the user.

    The message always names the file or folder concerned and, where there is
    one, what to do about it.
    """


class FatalPrepError(PrepError):
    """A problem that stops the whole run (disk full, OUT not writable)."""


def describe_os_error(error: OSError, path: object, action: str) -> PrepError:
    """Turn an ``OSError`` into a :class:`PrepError` naming ``path``.

    Disk full, quota exceeded, read-only file system and permission errors
    on output become :class:`FatalPrepError`, since every other subject would
    fail the same way.

    Args:
        error: The error raised by the operating system.
        path: The file or folder being accessed.
        action: What was being done, e.g. ``'writing'``.

    Example:
        >>> import errno
        >>> full = OSError(errno.ENOSPC, 'No space')
        >>> err = describe_os_error(full, '/o/x', 'writing')
        >>> type(err).__name__, str(err)
        ('FatalPrepError', 'Disk full while writing /o/x (No space left on device)')
    """
    code = error.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = 'Disk full' if code == errno.ENOSPC else 'Disk quota exceeded'
        return FatalPrepError(f'{what} while {action} {path} ({os.strerror(code)})')
    if code == errno.EROFS:
        return FatalPrepError(f'Read-only file system: cannot write {path}')
    if code in (errno.EACCES, errno.EPERM) and action == 'writing':
        return FatalPrepError(f'Permission denied while writing {path}')
    reason = error.strerror or str(error)
    return PrepError(f'Error while {action} {path}: {reason}')
