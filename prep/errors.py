"""Errors raised by ``ramp-prep``; every message names the path involved."""

from __future__ import annotations

import errno
import os
import stat


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


SPECIAL_FILES = (
    (stat.S_ISFIFO, 'a named pipe, FIFO'),
    (stat.S_ISSOCK, 'a socket'),
    (stat.S_ISCHR, 'a character device'),
    (stat.S_ISBLK, 'a block device'),
    (stat.S_ISDIR, 'a folder'),
)
"""Kinds of file that ``ramp-prep`` never opens, with their names."""


def require_regular_file(path: object) -> None:
    """Refuse, without opening it, a path that exists but is no regular file.

    Opening a named pipe (FIFO) blocks until another process writes to it,
    and a device may never end, so a FIFO placed in a source folder (or left
    where ``state.json`` should be) would hang ``ramp-prep``. Symbolic links
    are followed: a link to a regular file is fine. A missing path passes
    (the caller says it is missing).

    Raises:
        PrepError: Naming the path and what it is.

    Example:
        >>> import tempfile
        >>> fifo = os.path.join(tempfile.mkdtemp(), 'ct.nii.gz')
        >>> os.mkfifo(fifo)
        >>> require_regular_file(fifo)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ramp_prep.errors.PrepError: .../ct.nii.gz: not a regular file (a named pipe, ...
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise describe_os_error(error, path, 'reading') from error
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in SPECIAL_FILES if test(mode)), 'not a file')
    raise PrepError(
        f'{path}: not a regular file ({kind}); ramp-prep reads only regular files'
        ' and does not open it (reading a pipe or device can block for ever).'
        ' Put the file itself there.'
    )
