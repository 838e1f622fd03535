"""Pure tensor kernels: torch only, no TorchIO, no global state.

Every kernel maps an image ``(C, D, H, W)`` or a batch ``(B, C, D, H, W)`` in
``[0, 1]`` to a new tensor of the same shape, dtype and device, clipped to
``[0, 1]``; random numbers come only from the ``generator`` argument. See
:mod:`torchio_ramp.kernels.base` for the full contract.
"""

from .artifacts import add_ghosts
from .artifacts import add_slice_offsets
from .artifacts import ghosting
from .artifacts import stripes
from .base import IntensityError
from .base import check_intensities
from .blur import gaussian_blur
from .blur import motion_blur
from .blur import sharpen
from .compound import compound
from .elastic import elastic_deform
from .elastic import elastic_displacement
from .elastic import elastic_grid
from .elastic import sample
from .elastic import sample_many
from .elastic import warp
from .fields import bias_field
from .fields import bias_field_map
from .fields import smooth_noise_field
from .filters import gaussian_filter
from .intensity import contrast_reduction
from .intensity import gamma
from .intensity import histogram_warp
from .intensity import intensity_shift
from .intensity import local_contrast
from .intensity import polynomial_warp
from .intensity import window_level
from .noise import gaussian_noise
from .noise import rician_noise
from .noise import salt_pepper
from .noise import speckle_noise
from .resolution import downsample

__all__ = [
    'IntensityError',
    'add_ghosts',
    'add_slice_offsets',
    'bias_field',
    'bias_field_map',
    'check_intensities',
    'compound',
    'contrast_reduction',
    'downsample',
    'elastic_deform',
    'elastic_displacement',
    'elastic_grid',
    'gamma',
    'gaussian_blur',
    'gaussian_filter',
    'gaussian_noise',
    'ghosting',
    'histogram_warp',
    'intensity_shift',
    'local_contrast',
    'motion_blur',
    'polynomial_warp',
    'rician_noise',
    'salt_pepper',
    'sample',
    'sample_many',
    'sharpen',
    'smooth_noise_field',
    'speckle_noise',
    'stripes',
    'warp',
    'window_level',
]
