"""TorchIO transforms built on the kernels."""

from .corruptions import RandomCompoundCorruption
from .corruptions import RandomContrastReduction
from .corruptions import RandomGaussianNoise
from .corruptions import RandomGhostCopies
from .corruptions import RandomIntensityShift
from .corruptions import RandomIsotropicBlur
from .corruptions import RandomMotionBlur
from .corruptions import RandomResolutionDegradation
from .corruptions import RandomRicianNoise
from .corruptions import RandomSaltPepper
from .corruptions import RandomSmoothBiasField
from .corruptions import RandomSpeckleNoise
from .corruptions import RandomStripes
from .ct_intensity import RandomHistogramWarp
from .ct_intensity import RandomLocalContrast
from .ct_intensity import RandomSharpen
from .ct_intensity import RandomTwoStepGamma
from .ct_intensity import RandomWindowShift
from .ct_physics import RandomBeamHardening
from .ct_physics import RandomContrastPhase
from .ct_physics import RandomDoseModulation
from .ct_physics import RandomLimitedAngle
from .ct_physics import RandomLowDoseNoise
from .ct_physics import RandomMetalArtifact
from .ct_physics import RandomPhotonStarvation
from .ct_physics import RandomReconstructionKernel
from .ct_physics import RandomRigidMotion
from .ct_physics import RandomRingArtifact
from .ct_physics import RandomSparseView
from .elastic import DenseElastic
from .elastic import RandomDenseElastic
from .laterality import LateralityFlip
from .laterality import RandomLateralityFlip
from .normalization import CTNormalize
from .operation import Corruption
from .operation import CTIntensity
from .operation import RandomCorruption
from .operation import RandomCTIntensity

__all__ = [
    'CTIntensity',
    'CTNormalize',
    'Corruption',
    'DenseElastic',
    'LateralityFlip',
    'RandomBeamHardening',
    'RandomCTIntensity',
    'RandomCompoundCorruption',
    'RandomContrastPhase',
    'RandomContrastReduction',
    'RandomCorruption',
    'RandomDenseElastic',
    'RandomDoseModulation',
    'RandomGaussianNoise',
    'RandomGhostCopies',
    'RandomHistogramWarp',
    'RandomIntensityShift',
    'RandomIsotropicBlur',
    'RandomLateralityFlip',
    'RandomLimitedAngle',
    'RandomLocalContrast',
    'RandomLowDoseNoise',
    'RandomMetalArtifact',
    'RandomMotionBlur',
    'RandomPhotonStarvation',
    'RandomReconstructionKernel',
    'RandomResolutionDegradation',
    'RandomRicianNoise',
    'RandomRigidMotion',
    'RandomRingArtifact',
    'RandomSaltPepper',
    'RandomSharpen',
    'RandomSmoothBiasField',
    'RandomSparseView',
    'RandomSpeckleNoise',
    'RandomStripes',
    'RandomTwoStepGamma',
    'RandomWindowShift',
]
