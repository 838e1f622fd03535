"""The paper's corruption families as named random transforms (Table 2).

Each class is :class:`~torchio_ramp.transforms.operation.RandomCorruption` bound to
one family of :data:`~torchio_ramp.families.FAMILIES`; its arguments, defaults and
documentation come from the registry. Names avoid TorchIO's (``RandomNoise``,
``RandomBlur``, ``RandomBiasField``, ``RandomGhosting``, ``RandomMotion``), since
history replay looks transforms up by class name.
"""

from __future__ import annotations

from .operation import RandomCorruption


class RandomGaussianNoise(RandomCorruption, operator='gaussian_noise'):
    """Add Gaussian noise with a random standard deviation."""


class RandomIsotropicBlur(RandomCorruption, operator='blur'):
    """Blur with an isotropic Gaussian of random sigma."""


class RandomRicianNoise(RandomCorruption, operator='rician_noise'):
    """Add Rician-like (magnitude) noise with a random standard deviation."""


class RandomMotionBlur(RandomCorruption, operator='motion_blur'):
    """Blur along one random axis with a Gaussian of random sigma."""


class RandomSaltPepper(RandomCorruption, operator='salt_pepper'):
    """Set a random fraction of voxels to 0 or 1."""


class RandomSpeckleNoise(RandomCorruption, operator='speckle_noise'):
    """Apply multiplicative Gaussian noise with a random standard deviation."""


class RandomSmoothBiasField(RandomCorruption, operator='bias_field'):
    """Multiply by a smooth random field exp(b) of random strength."""


class RandomGhostCopies(RandomCorruption, operator='ghosting'):
    """Add 2-4 shifted copies of the image along a random axis."""


class RandomIntensityShift(RandomCorruption, operator='intensity_shift'):
    """Add or subtract a random global offset."""


class RandomContrastReduction(RandomCorruption, operator='contrast_reduction'):
    """Blend toward the global mean by a random factor."""


class RandomResolutionDegradation(RandomCorruption, operator='downsample'):
    """Down- and up-sample by a random factor, keeping the shape."""


class RandomStripes(RandomCorruption, operator='stripe'):
    """Add random offsets to 15% of the slices along a random axis."""


class RandomCompoundCorruption(RandomCorruption, operator='compound'):
    """Apply noise, blur and bias field driven by one random level."""
