"""Crash-safe files: atomic replacement, JSON, SHA-256 and an advisory lock.

The one place where ``ramp-prep``, ``ramp-stress`` and training write the
files a user keeps:

* :func:`atomic_path` yields a temporary name beside the destination; when
  the block succeeds the file is flushed to disk (``fsync``) and renamed over
  the destination (``os.replace``), so a reader or a crash sees the old file
  or the new one, never half of one. On any error the temporary file is
  removed and the destination is left as it was.
* :func:`write_atomic` and :func:`write_json` write text and JSON that way;
  :func:`append_synced` appends and ``fsync``\\ s (the rows of a CSV).
* :func:`file_sha256` fingerprints a file.
* :class:`FileLock` is an exclusive advisory lock (``flock``) that fails at
  once when another process holds it.

Temporary files are named ``.NAME.ramp-tmp-PID-TOKEN.EXT`` (see
:func:`temp_path`), keep the extension (writers such as SimpleITK choose the
format from it) and get the usual permissions (``0666`` minus the umask),
unlike :func:`tempfile.mkstemp`'s ``0600``. :func:`remove_stale_temporaries`
clears those a killed process left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import IO
from typing import Any

TMP_MARKER = '.ramp-tmp-'
"""Part of every temporary file's name (see :func:`temp_path`)."""

BLOCK = 1 << 20
"""Bytes read at a time by :func:`file_sha256`."""


def temp_path(destination: Path) -> Path:
    """A fresh temporary name beside ``destination`` (same file system).

    The name keeps the extension (``.nii.gz`` as a whole) so writers that
    choose the format from it still work.

    Example:
        >>> p = temp_path(Path('out/labels/s1.nii.gz'))
        >>> p.parent, p.name.startswith('.s1.nii.gz.ramp-tmp-')
        (PosixPath('out/labels'), True)
        >>> p.name.endswith('.nii.gz')
        True
    """
    destination = Path(destination)
    suffix = '.nii.gz' if destination.name.endswith('.nii.gz') else destination.suffix
    token = f'{os.getpid()}-{secrets.token_hex(4)}'
    return destination.with_name(f'.{destination.name}{TMP_MARKER}{token}{suffix}')


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk.

    Example:
        >>> fsync_file(Path('out/results.csv'))  # doctest: +SKIP
    """
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


@contextlib.contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``destination`` on success.

    Write the file at the yielded path. When the block ends without an
    error, the file is ``fsync``\\ ed and renamed to ``destination``; on any
    exception (including a failing rename) it is removed and ``destination``
    is left as it was. The parent folder must exist.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_path(folder / 'a.txt') as tmp:
        ...     _ = tmp.write_text('new')
        >>> (folder / 'a.txt').read_text(), [p.name for p in folder.iterdir()]
        ('new', ['a.txt'])
    """
    destination = Path(destination)
    tmp = temp_path(destination)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, destination)
    except BaseException:
        _unlink(tmp)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Atomically write text (UTF-8, newlines as given) or bytes.

    Creates the parent folders.

    Example:
        >>> write_atomic(Path('results/summary.json'), '{}')  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            with tmp.open('x', encoding='utf-8', newline='') as stream:
                stream.write(data)


def json_safe(data: Any) -> Any:
    """``data`` with NaN and infinities as ``None`` and mapping keys as strings.

    Example:
        >>> json_safe({1: [float('nan'), 0.5, (2, float('inf'))]})
        {'1': [None, 0.5, [2, None]]}
    """
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, Mapping):
        return {str(k): json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def json_text(data: Any) -> str:
    """Indented JSON of :func:`json_safe` ``(data)``, with a final newline.

    Example:
        >>> print(json_text({'gap': float('nan')}), end='')
        {
          "gap": null
        }
    """
    return json.dumps(json_safe(data), indent=2) + '\n'


def write_json(path: Path, data: Any) -> None:
    """Atomically write indented JSON (NaN and infinities as ``null``).

    Example:
        >>> write_json(Path('results/summary.json'), {'gap': 0.1})  # doctest: +SKIP
    """
    write_atomic(path, json_text(data))


def append_synced(path: Path, text: str) -> None:
    """Append ``text`` in one write, then flush it to disk.

    Example:
        >>> append_synced(Path('runs/a/metrics.csv'), 'epoch\\r\\n')  # doctest: +SKIP
    """
    with Path(path).open('a', encoding='utf-8', newline='') as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'empty'
        >>> _ = path.write_bytes(b'')
        >>> file_sha256(path)[:16]
        'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with Path(path).open('rb') as stream:
        for block in iter(lambda: stream.read(BLOCK), b''):
            digest.update(block)
    return digest.hexdigest()


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files a killed process left in ``folder``.

    Only call it while holding the folder's lock (no other process writes).

    Example:
        >>> remove_stale_temporaries(Path('out/images'))  # doctest: +SKIP
        []
    """
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith('.') and TMP_MARKER in path.name:
                _unlink(path)
                removed.append(path)
    return removed


class LockHeld(OSError):
    """Another process holds a :class:`FileLock`.

    Example:
        >>> issubclass(LockHeld, OSError)
        True
    """


class FileLock:
    """Exclusive advisory lock on a file (``flock``), taken without waiting.

    A second process (or a second lock object) asking for the same file
    gets :class:`LockHeld` at once. Where the OS has no ``fcntl`` (Windows)
    the lock does nothing. The lock file is created and left in place.

    Args:
        path: The lock file (its folder must exist).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / 'lock'
        >>> with FileLock(path):
        ...     FileLock(path).acquire()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        torchio_ramp.files.LockHeld: ... is locked by another process
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._handle: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._handle is not None

    def acquire(self) -> FileLock:
        """Take the lock.

        Raises:
            LockHeld: If another process (or lock object) holds it.
            OSError: If the lock file cannot be opened.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory locks
            return self
        handle = self.path.open('ab')
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            message = f'{self.path} is locked by another process'
            raise LockHeld(message) from error
        self._handle = handle
        return self

    def release(self) -> None:
        """Release the lock (closing the file releases ``flock``)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


__all__ = [
    'BLOCK',
    'TMP_MARKER',
    'FileLock',
    'LockHeld',
    'append_synced',
    'atomic_path',
    'file_sha256',
    'fsync_file',
    'json_safe',
    'json_text',
    'remove_stale_temporaries',
    'temp_path',
    'write_atomic',
    'write_json',
]
