"""Make the RAMP trainers visible to ``nnUNetv2_train -tr ...``.

nnU-Net looks trainers up by class name: it imports every module of its own
trainer package (``nnunetv2/training/nnUNetTrainer``, sub-packages included)
and then the folders of the ``nnUNet_extTrainer`` environment variable; it
has no entry-point plugin mechanism. Two ways:

* ``export nnUNet_extTrainer=$(python -m torchio_ramp.nnunet ext-path)``,
  nnU-Net's own mechanism and the default: nothing is written anywhere. It
  works wherever nnU-Net's search of its own package works, which needs
  every trainer module of nnU-Net to import; the Primus trainers import
  ``timm`` and with it ``torchvision``, which fails when torch and
  torchvision come from different package indexes (a CPU torch next to the
  package index's CUDA torchvision). :func:`trainer_search_problem` runs that
  search in a fresh interpreter and says what fails, with the fix.
* ``python -m torchio_ramp.nnunet install``, the fallback: one small module,
  ``torchio_ramp_trainers.py``, in nnU-Net's trainer package, found before
  the sub-packages whose imports fail. It only imports the classes from
  :mod:`torchio_ramp.nnunet.trainers`. The module (and its bytecode) is
  recorded in nnunetv2's ``RECORD`` file, so ``pip uninstall nnunetv2`` (or a
  reinstall) removes it and leaves no ``nnunetv2`` folder behind;
  ``python -m torchio_ramp.nnunet uninstall`` removes it and the record.
  Without torchio-ramp (uninstalled) the module does nothing, silently.

``python -m torchio_ramp.nnunet check`` reports which of the two works.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SHIM_NAME = 'torchio_ramp_trainers.py'
EXT_FOLDER = Path(__file__).resolve().parent / 'ext'
"""Folder for ``nnUNet_extTrainer`` (holds :data:`SHIM_NAME`)."""

DISTRIBUTIONS = ('nnunetv2',)
"""Distributions whose ``RECORD`` lists the installed module (pip removes it
with them)."""

PROBE = """
import os
import nnunetv2
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
folder = os.path.join(nnunetv2.__path__[0], 'training', 'nnUNetTrainer')
package = 'nnunetv2.training.nnUNetTrainer'
recursive_find_python_class(folder, '_NoSuchTrainer_', package)
"""
"""nnU-Net's search of its own trainer package for a class that does not exist
(so every module is imported), as ``nnUNetv2_train`` runs it before reading
``nnUNet_extTrainer``."""


def shim_text() -> str:
    """The module written into nnU-Net's trainer package.

    Example:
        >>> 'from torchio_ramp.nnunet.trainers import *' in shim_text()
        True
    """
    return (EXT_FOLDER / SHIM_NAME).read_text(encoding='utf-8')


def nnunet_package_folders() -> list[Path]:
    """The folders ``import nnunetv2`` would use (also a leftover namespace).

    Example:
        >>> [p.name for p in nnunet_package_folders()]  # doctest: +SKIP
        ['nnunetv2']
    """
    spec = importlib.util.find_spec('nnunetv2')
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def trainer_folder() -> Path:
    """nnU-Net's own trainer package (``nnunetv2/training/nnUNetTrainer``).

    Raises:
        ImportError: If nnunetv2 is missing or only a leftover folder of an
            uninstalled one is there (the message names it).
    """
    from . import require_nnunetv2

    require_nnunetv2()
    import nnunetv2

    return Path(nnunetv2.__path__[0]) / 'training' / 'nnUNetTrainer'


def torchvision_fix() -> str:
    """How to get a torchvision that imports next to the installed torch.

    Example:
        >>> 'same package index' in torchvision_fix()
        True
    """
    import torch

    version = torch.__version__.split('+')[0]
    build = torch.__version__.partition('+')[2] or 'the CUDA build of the package index'
    major, minor = (int(v) for v in version.split('.')[:2])
    vision = f'0.{minor + 15}' if major == 2 else 'the matching version'
    return (
        f'install torch and torchvision from the same package index, e.g. for this'
        f' torch {version} ({build}): pip install --force-reinstall'
        f' torch=={version} torchvision=={vision}.* --index-url <the PyTorch index'
        f' your torch came from> (PyTorch\'s "cpu" index for a CPU-only torch)'
    )


def trainer_search_problem() -> str | None:
    """Why nnU-Net's search of its own trainers fails here, or ``None``.

    Runs :data:`PROBE` in a fresh interpreter (a failed import leaves half
    registered libraries behind). Where torchvision is the cause, the answer
    says so and gives :func:`torchvision_fix`.

    Example:
        >>> trainer_search_problem()  # doctest: +SKIP
        "nnU-Net's trainer search fails: ... torchvision ..."
    """
    env = {k: v for k, v in os.environ.items() if k != 'nnUNet_extTrainer'}
    completed = subprocess.run(
        [sys.executable, '-c', PROBE],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if completed.returncode == 0:
        return None
    lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else f'exit status {completed.returncode}'
    message = (
        "nnU-Net's trainer search fails, so nnUNet_extTrainer cannot work (nor"
        f" nnU-Net's own trainers outside its top folder) ({last})"
    )
    if 'torchvision' in completed.stderr:
        return f'{message}: torchvision does not import next to this torch; fix:' + (
            f' {torchvision_fix()}'
        )
    return message


@dataclass(frozen=True)
class Installed:
    """The trainer module in nnU-Net's package and the records listing it."""

    path: Path
    written: bool
    records: tuple[Path, ...]


def bytecode_paths(path: Path) -> list[Path]:
    """The bytecode files Python may write for the module ``path``.

    Example:
        >>> [p.parent.name for p in bytecode_paths(Path('m.py'))]
        ['__pycache__', '__pycache__', '__pycache__']
    """
    return [
        Path(importlib.util.cache_from_source(str(path), optimization=level))
        for level in ('', 1, 2)
    ]


def record_files() -> list[Path]:
    """The ``RECORD`` files of :data:`DISTRIBUTIONS` that are installed."""
    return [record for name in DISTRIBUTIONS if (record := _record_file(name))]


def _record_file(name: str) -> Path | None:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == 'RECORD' and file.parent.name.endswith('.dist-info'):
            path = Path(str(file.locate()))
            return path if path.is_file() else None
    return None


def _record_lines(record: Path, paths: list[Path]) -> list[str]:
    base = record.parent.parent.resolve()
    lines = []
    for path in paths:
        resolved = path.resolve()
        entry = (
            resolved.relative_to(base).as_posix()
            if resolved.is_relative_to(base)
            else resolved.as_posix()
        )
        lines.append(f'{entry},,')
    return lines


def edit_records(records: list[Path], paths: list[Path], add: bool) -> tuple[Path, ...]:
    """Add ``paths`` to (or remove them from) pip's ``RECORD`` files.

    pip removes every file its ``RECORD`` lists when the distribution is
    uninstalled or replaced. Entries are relative to the record's
    ``site-packages`` (absolute elsewhere), without a hash, as pip accepts.

    Returns:
        The records that list the paths (``add``) or no longer do.
    """
    edited = []
    for record in records:
        wanted = _record_lines(record, paths)
        text = record.read_text(encoding='utf-8')
        lines = text.splitlines()
        kept = [line for line in lines if line not in wanted]
        new = [*kept, *wanted] if add else kept
        if new != lines:
            try:
                record.write_text('\n'.join(new) + '\n', encoding='utf-8')
            except OSError:  # a read-only record: pip will not remove the module
                continue
        edited.append(record)
    return tuple(edited)


def _write_error(path: Path, error: OSError) -> PermissionError:
    reason = error.strerror or type(error).__name__
    message = (
        f'cannot write {path} ({reason}); use nnUNet_extTrainer={EXT_FOLDER}'
        ' instead (python -m torchio_ramp.nnunet check says whether it works here)'
    )
    return PermissionError(message)


def install(folder: Path | None = None) -> Installed:
    """Write the trainer module into ``folder`` (default: nnU-Net's package).

    Returns:
        The module's path, whether it was (re)written (``False``: it was
        already current), and the ``RECORD`` file(s) now listing it (only for
        nnU-Net's own package).

    Raises:
        PermissionError: If the folder cannot be written (read-only file
            system, no permission): the message names it and the
            ``nnUNet_extTrainer`` alternative.
        ImportError: If nnunetv2 is missing (or only a leftover folder).

    Example:
        >>> installed = install()  # doctest: +SKIP
    """
    own_package = folder is None
    folder = trainer_folder() if folder is None else Path(folder)
    path = folder / SHIM_NAME
    text = shim_text()
    written = False
    if not (path.is_file() and path.read_text(encoding='utf-8') == text):
        partial = path.with_suffix('.tmp')
        try:
            partial.write_text(text, encoding='utf-8')
            partial.replace(path)
        except OSError as error:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise _write_error(path, error) from error
        written = True
    records = (
        edit_records(record_files(), [path, *bytecode_paths(path)], add=True)
        if own_package
        else ()
    )
    return Installed(path, written, records)


def _remove_empty_parents(folder: Path, top: Path) -> None:
    for candidate in [folder, *folder.parents]:
        if candidate == top or not candidate.is_relative_to(top):
            break
        pycache = candidate / '__pycache__'
        if pycache.is_dir() and not any(pycache.iterdir()):
            pycache.rmdir()
        if any(candidate.iterdir()):
            break
        candidate.rmdir()


def uninstall(folder: Path | None = None) -> Path | None:
    """Remove the trainer module, its bytecode and its records.

    Also works on the folder a ``pip uninstall nnunetv2`` left behind (an
    older install of the module was not recorded): there, the folders left
    empty are removed too, so ``import nnunetv2`` fails again as it should.

    Returns:
        The removed module's path, or ``None`` if there was none.

    Raises:
        PermissionError: If the module cannot be removed (names the file).

    Example:
        >>> uninstall()  # doctest: +SKIP
        PosixPath('.../nnunetv2/training/nnUNetTrainer/torchio_ramp_trainers.py')
    """
    if folder is not None:
        candidates = [(Path(folder), None)]
    else:
        candidates = [
            (root / 'training' / 'nnUNetTrainer', root)
            for root in nnunet_package_folders()
        ]
    removed = None
    for trainers, root in candidates:
        path = trainers / SHIM_NAME
        leftovers = [path, path.with_suffix('.tmp'), *bytecode_paths(path)]
        if path.is_file():
            removed = path
        try:
            for file in leftovers:
                file.unlink(missing_ok=True)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise PermissionError(f'cannot remove {path} ({reason})') from error
        if folder is None:
            edit_records(record_files(), [path, *bytecode_paths(path)], add=False)
        if root is not None and not (root / '__init__.py').is_file():
            _remove_empty_parents(trainers, root.parent)  # a leftover namespace
    return removed
