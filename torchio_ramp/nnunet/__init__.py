"""RAMP inside nnU-Net v2: trainers, the intensity-domain mapping, a predictor.

Modules (only :mod:`~torchio_ramp.nnunet.domain` works without nnU-Net):

* :mod:`~torchio_ramp.nnunet.domain`: nnU-Net's z-scored CT <-> RAMP's
  ``[0, 1]`` HU window (pure torch).
* :mod:`~torchio_ramp.nnunet.trainers`: ``nnUNetTrainerRAMP`` and the other
  compared strategies as nnU-Net trainer classes.
* :mod:`~torchio_ramp.nnunet.install`: makes the trainers visible to
  ``nnUNetv2_train -tr ...`` (``nnUNet_extTrainer``, or
  ``python -m torchio_ramp.nnunet install``).
* :mod:`~torchio_ramp.nnunet.checkpoint` and
  :mod:`~torchio_ramp.nnunet.model_folder`: checkpoints and model folders
  read as data (no code from the files runs).
* :mod:`~torchio_ramp.nnunet.export`: a RAMP-trained model as a model folder
  that stock nnU-Net predicts with (``python -m torchio_ramp.nnunet
  export-model``).
* :mod:`~torchio_ramp.nnunet.predictor`: a trained nnU-Net model as a
  ``ramp-stress`` predictor, through nnU-Net's own ``nnUNetPredictor``.

Install nnU-Net with the extra: ``pip install 'torchio-ramp[nnunet]'``.
"""

from __future__ import annotations

STOCK_TRAINER = 'nnUNetTrainer'
"""nnU-Net's default trainer, whose network every RAMP trainer keeps."""

RAMP_TRAINERS = (
    'nnUNetTrainerRAMP',
    'nnUNetTrainerRAMPArtifact',
    'nnUNetTrainerRAMPGeometric',
    'nnUNetTrainerRAMPIntensity',
    'nnUNetTrainerRAMPPlus',
    'nnUNetTrainerRAMPPlus_Tiny',
    'nnUNetTrainerRAMP_Tiny',
    'nnUNetTrainer_Tiny',
)
"""The trainer classes of :mod:`~torchio_ramp.nnunet.trainers` (names only:
no nnU-Net import). They change the training augmentation (or schedule) and
nothing else, so their models are stock nnU-Net models."""


def package_version() -> str:
    """torchio-ramp's installed version (recorded in checkpoints it writes).

    Example:
        >>> package_version().count('.') >= 1
        True
    """
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version('torchio-ramp')
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return 'unknown'


EXTRA_HINT = (
    "nnU-Net v2 is not installed: pip install 'torchio-ramp[nnunet]' (or"
    " pip install -e '.[nnunet]' in a checkout)"
)


def require_nnunetv2() -> None:
    """Raise an :class:`ImportError` naming the extra if nnunetv2 is missing.

    A folder ``nnunetv2`` left behind by ``pip uninstall nnunetv2`` (it held
    files pip did not install) imports as an empty namespace package; that
    counts as missing, and the message names the folder.

    Example:
        >>> require_nnunetv2()  # doctest: +SKIP
    """
    try:
        import nnunetv2
    except ImportError as error:
        raise ImportError(EXTRA_HINT) from error
    if getattr(nnunetv2, '__file__', None) is None:  # a namespace package
        folders = ', '.join(str(p) for p in getattr(nnunetv2, '__path__', []))
        message = (
            f'{EXTRA_HINT}. Only a leftover folder of an uninstalled nnunetv2 is'
            f' there ({folders}): remove it (python -m torchio_ramp.nnunet'
            ' uninstall removes the trainer module and the folders it leaves empty)'
        )
        raise ImportError(message)
