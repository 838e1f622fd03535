"""The CT-physics families as named random transforms (Hounsfield units).

Each class is :class:`~torchio_ramp.transforms.operation.RandomCorruption` bound
to one family of :mod:`torchio_ramp.ct_physics`; like every family it
delegates to a deterministic :class:`~torchio_ramp.Corruption` recorded in the
history. These act on the CT in Hounsfield units, before
:class:`~torchio_ramp.CTNormalize`, and read the voxel spacing and the axial
slice axis from the image (``RandomContrastPhase`` also reads the subject's
label map, never writing it).
"""

from __future__ import annotations

from .operation import RandomCorruption


class RandomLowDoseNoise(RandomCorruption, operator='lowdose_noise'):
    """Add the noise of the scan at a random fraction of its dose."""


class RandomDoseModulation(RandomCorruption, operator='dose_modulation'):
    """Add the noise of a reduced dose with tube-current modulation."""


class RandomPhotonStarvation(RandomCorruption, operator='photon_starvation'):
    """Starve the most attenuating rays at a random photon count."""


class RandomMetalArtifact(RandomCorruption, operator='metal'):
    """Place two metal rods of a random diameter, with their artifacts."""


class RandomBeamHardening(RandomCorruption, operator='beam_hardening'):
    """Add cupping and dark bands of a random water-correction error."""


class RandomRingArtifact(RandomCorruption, operator='ring'):
    """Add rings of a random amplitude (HU) from detector gain errors."""


class RandomSparseView(RandomCorruption, operator='sparse_view'):
    """Add the streaks of a reconstruction from a random number of views."""


class RandomRigidMotion(RandomCorruption, operator='rigid_motion'):
    """Move the patient by a random distance during part of the rotation."""


class RandomReconstructionKernel(RandomCorruption, operator='reconstruction_kernel'):
    """Reconstruct the scan with a random smoother or sharper kernel."""


class RandomContrastPhase(RandomCorruption, operator='contrast_phase'):
    """Bring the organs to a random time after contrast injection."""


# its example needs the organs: a label map in the subject
RandomContrastPhase.__doc__ = RandomContrastPhase.__doc__.replace(
    '    >>> subject = tio.Subject(ct=ct)',
    '    >>> organs = tio.LabelMap(tensor=(ct.data > 0).to(torch.uint8))\n'
    '    >>> subject = tio.Subject(ct=ct, organs=organs)',
)


class RandomLimitedAngle(RandomCorruption, operator='limited_angle'):
    """Reconstruct without a random wedge of views."""
