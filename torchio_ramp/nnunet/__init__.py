"""RAMP inside nnU-Net v2: trainers, the intensity-domain mapping, a predictor.

Modules (only :mod:`~torchio_ramp.nnunet.domain` works without nnU-Net):

* :mod:`~torchio_ramp.nnunet.domain`: nnU-Net's z-scored CT <-> RAMP's
  ``[0, 1]`` HU window (pure torch).
* :mod:`~torchio_ramp.nnunet.trainers`: ``nnUNetTrainerRAMP`` and the other
  compared strategies as nnU-Net trainer classes.
* :mod:`~torchio_ramp.nnunet.install`: makes the trainers visible to
  ``nnUNetv2_train -tr ...`` (``python -m torchio_ramp.nnunet install``).
* :mod:`~torchio_ramp.nnunet.predictor`: a trained nnU-Net model as a
  ``ramp-stress`` predictor, through nnU-Net's own ``nnUNetPredictor``.

Install nnU-Net with the extra: ``pip install 'torchio-ramp[nnunet]'``.
"""

from __future__ import annotations

EXTRA_HINT = (
    "nnU-Net v2 is not installed: pip install 'torchio-ramp[nnunet]' (or"
    " pip install -e '.[nnunet]' in a checkout)"
)


def require_nnunetv2() -> None:
    """Raise an :class:`ImportError` naming the extra if nnunetv2 is missing.

    Example:
        >>> require_nnunetv2()  # doctest: +SKIP
    """
    try:
        import nnunetv2  # noqa: F401
    except ImportError as error:
        raise ImportError(EXTRA_HINT) from error
