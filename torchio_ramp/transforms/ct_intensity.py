"""The five CT intensity operations as named random transforms (paper Table 1).

Each class is :class:`~torchio_ramp.transforms.operation.RandomCTIntensity` bound
to one entry of :data:`~torchio_ramp.intensity_ops.INTENSITY_OPERATIONS`. Their
default probability is 1, as for every TorchIO transform;
:class:`~torchio_ramp.RampIntensity` applies each with its Table 1 probability.
"""

from __future__ import annotations

from .operation import RandomCTIntensity


class RandomTwoStepGamma(RandomCTIntensity, operator='gamma'):
    """Apply two sequential gamma transformations with random exponents."""


class RandomWindowShift(RandomCTIntensity, operator='window_level'):
    """Shift the intensity window centre and scale its width at random."""


class RandomHistogramWarp(RandomCTIntensity, operator='histogram_warp'):
    """Remap intensities with a random monotonic cubic polynomial."""


class RandomLocalContrast(RandomCTIntensity, operator='local_contrast'):
    """Blend with a patch-wise contrast stretch by a random factor."""


class RandomSharpen(RandomCTIntensity, operator='sharpen'):
    """Unsharp-mask with random sigma and strength."""
