"""Make the RAMP trainers visible to ``nnUNetv2_train -tr ...``.

nnU-Net looks trainers up by class name in its own package
``nnunetv2/training/nnUNetTrainer`` and then in the folders of the
``nnUNet_extTrainer`` environment variable; it has no entry-point plugin
mechanism. Two equivalent ways, both idempotent:

* ``python -m torchio_ramp.nnunet install`` writes one small module,
  ``torchio_ramp_trainers.py``, into nnU-Net's trainer package. It only
  imports the classes from :mod:`torchio_ramp.nnunet.trainers`, so upgrading
  torchio-ramp needs nothing; reinstalling nnU-Net removes it (run the command
  again). ``python -m torchio_ramp.nnunet uninstall`` removes it.
* ``export nnUNet_extTrainer=$(python -m torchio_ramp.nnunet ext-path)``
  points nnU-Net at a folder of this package holding the same module; nothing
  is written, but every shell running nnU-Net needs the variable.
"""

from __future__ import annotations

from pathlib import Path

SHIM_NAME = 'torchio_ramp_trainers.py'
EXT_FOLDER = Path(__file__).resolve().parent / 'ext'
"""Folder for ``nnUNet_extTrainer`` (holds :data:`SHIM_NAME`)."""


def shim_text() -> str:
    """The module written into nnU-Net's trainer package.

    Example:
        >>> 'from torchio_ramp.nnunet.trainers import *' in shim_text()
        True
    """
    return (EXT_FOLDER / SHIM_NAME).read_text(encoding='utf-8')


def trainer_folder() -> Path:
    """nnU-Net's own trainer package (``nnunetv2/training/nnUNetTrainer``)."""
    from . import require_nnunetv2

    require_nnunetv2()
    import nnunetv2

    return Path(nnunetv2.__path__[0]) / 'training' / 'nnUNetTrainer'


def install(folder: Path | None = None) -> tuple[Path, bool]:
    """Write the trainer module into ``folder`` (default: nnU-Net's package).

    Returns:
        The module's path and whether it was (re)written (``False``: it was
        already current).

    Raises:
        PermissionError: If the folder is not writable (use
            ``nnUNet_extTrainer`` instead, see the module docstring).

    Example:
        >>> path, written = install()  # doctest: +SKIP
    """
    folder = trainer_folder() if folder is None else Path(folder)
    path = folder / SHIM_NAME
    text = shim_text()
    if path.is_file() and path.read_text(encoding='utf-8') == text:
        return path, False
    try:
        partial = path.with_suffix('.tmp')
        partial.write_text(text, encoding='utf-8')
        partial.replace(path)
    except PermissionError as error:
        message = (
            f'cannot write {path} ({error.strerror}); instead set'
            f' nnUNet_extTrainer={EXT_FOLDER}'
        )
        raise PermissionError(message) from error
    return path, True


def uninstall(folder: Path | None = None) -> Path | None:
    """Remove the trainer module; returns its path, or ``None`` if absent."""
    folder = trainer_folder() if folder is None else Path(folder)
    path = folder / SHIM_NAME
    if not path.is_file():
        return None
    path.unlink()
    return path
