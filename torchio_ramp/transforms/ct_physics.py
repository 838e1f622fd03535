"""The CT-physics families as named random transforms (projection domain).

Each class is :class:`~torchio_ramp.transforms.operation.RandomCorruption` bound
to one family of :data:`~torchio_ramp.ct_physics.CT_PHYSICS_FAMILIES`; like
every family it delegates to a deterministic
:class:`~torchio_ramp.Corruption` recorded in the history. These act on the CT
in Hounsfield units, before :class:`~torchio_ramp.CTNormalize`, and read the
voxel spacing from the image.
"""

from __future__ import annotations

from .operation import RandomCorruption


class RandomLowDoseNoise(RandomCorruption, operator='lowdose_noise'):
    """Add the noise of a scan at a random fraction of the dose."""


class RandomRingArtifact(RandomCorruption, operator='ring'):
    """Add rings of a random amplitude (HU) from detector gain errors."""


class RandomSparseView(RandomCorruption, operator='sparse_view'):
    """Add the streaks of a reconstruction from a random number of views."""


class RandomLimitedAngle(RandomCorruption, operator='limited_angle'):
    """Reconstruct without a random wedge of views."""


class RandomPhotonStarvation(RandomCorruption, operator='photon_starvation'):
    """Add the streaks of starved rays at a random photon count."""


class RandomBeamHardening(RandomCorruption, operator='beam_hardening'):
    """Add cupping and dark bands of a random water-correction error."""


class RandomRigidMotion(RandomCorruption, operator='rigid_motion'):
    """Move the patient by a random distance during part of the rotation."""
