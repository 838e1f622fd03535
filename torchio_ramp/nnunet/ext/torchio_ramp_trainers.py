"""torchio-ramp's nnU-Net trainers, for nnU-Net's trainer search.

Found by nnU-Net through nnUNet_extTrainer (this folder) or installed into
nnunetv2/training/nnUNetTrainer by `python -m torchio_ramp.nnunet install`.
"""

try:
    from torchio_ramp.nnunet.trainers import *  # noqa: F403
except ImportError as error:  # never break nnU-Net's search for other trainers
    import warnings

    warnings.warn(f'torchio-ramp trainers unavailable: {error}', stacklevel=1)
