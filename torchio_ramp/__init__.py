"""torchio-ramp: RAMP multi-corruption augmentation and robustness stress testing.

Example:
    >>> import torchio as tio
    >>> from torchio_ramp import CTNormalize, Ramp
    >>> augment = tio.Compose([CTNormalize(hu_range=(-200, 300)), Ramp()])
"""

__version__ = '0.1.0'

from .batch import BatchRampCorrupt
from .families import FAMILIES
from .families import FAMILY_NAMES
from .families import severity_grid
from .intensity_ops import INTENSITY_OPERATIONS
from .operators import SEVERITY_LEVELS
from .pipelines import STRATEGIES
from .pipelines import Ramp
from .pipelines import RampCorrupt
from .pipelines import RampIntensity
from .pipelines import RampSpatial
from .pipelines import strategy
from .transforms import *  # noqa: F403
from .transforms import __all__ as _transforms

__all__ = [
    'BatchRampCorrupt',
    'FAMILIES',
    'FAMILY_NAMES',
    'INTENSITY_OPERATIONS',
    'SEVERITY_LEVELS',
    'STRATEGIES',
    'Ramp',
    'RampCorrupt',
    'RampIntensity',
    'RampSpatial',
    'severity_grid',
    'strategy',
    *_transforms,
]
