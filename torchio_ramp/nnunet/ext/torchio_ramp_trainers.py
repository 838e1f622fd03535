"""torchio-ramp's nnU-Net trainers, for nnU-Net's trainer search.

Found by nnU-Net through nnUNet_extTrainer (this folder) or installed into
nnunetv2/training/nnUNetTrainer by `python -m torchio_ramp.nnunet install`
(which records it in nnunetv2's RECORD, so that `pip uninstall nnunetv2`
removes it). Without torchio-ramp it does nothing, silently; a torchio-ramp
that is installed but fails to import is reported once per lookup.
"""

import importlib.util

if importlib.util.find_spec('torchio_ramp') is not None:
    try:
        from torchio_ramp.nnunet.trainers import *  # noqa: F403
    except ImportError as error:  # never break nnU-Net's search for other trainers
        import warnings

        warnings.warn(f'torchio-ramp trainers unavailable: {error}', stacklevel=1)
