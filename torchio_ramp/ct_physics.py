"""The CT-physics families: corruptions simulated in the projection domain.

An extended pool, outside the paper's defaults (:data:`CT_PHYSICS_FAMILIES`,
named ``'ct_physics'`` wherever a pool of families is accepted). Unlike the
paper's image-domain families they act on the CT in Hounsfield units, before
:class:`~torchio_ramp.CTNormalize` (``domain='hu'``): attenuation needs the full
HU range, which a clipped ``[0, 1]`` window destroys. Each family has one
physical parameter in physical units, a severity map onto it, and the kernel
of :mod:`torchio_ramp.kernels.ct_physics`.

Severity maps (levels 0.05 to 0.25 span the training range, as for the paper's
families): ``dose = 10^(-4 level)`` (0.63 to 0.10; level 0 is full dose),
``photons = 10^(4.8 - 6 level)`` (31600 to 2000 per view per mm of detector);
the others are linear (``ring`` 10 to 60 HU, ``beam_hardening`` 0.005 to 0.03,
``sparse_view`` 1.5 to 6 degrees between views, i.e. 120 to 30 views,
``limited_angle`` a 10 to 60 degree missing wedge, ``rigid_motion`` 2 to 10 mm).
"""

from __future__ import annotations

from dataclasses import dataclass

from .kernels import ct_physics as kernels
from .operators import Operator
from .operators import Option
from .operators import Parameter
from .operators import fraction
from .operators import positive_number


@dataclass(frozen=True)
class ExponentialSeverity:
    """Severity map ``value = 10^(start - rate level)``, clamped to its domain.

    For parameters that fall as severity grows (dose, photons): equal steps of
    level are equal factors. A class, so operators and transforms pickle.

    Example:
        >>> from torchio_ramp.families import FAMILIES
        >>> ExponentialSeverity(0.0, 4.0)(FAMILIES['lowdose_noise'], 0.25)
        {'dose': 0.1}
    """

    start: float
    rate: float

    def __call__(self, operator: Operator, level: float) -> dict[str, float]:
        (parameter,) = operator.parameters
        value = 10 ** (self.start - self.rate * level)
        return {parameter.name: parameter.clamp(value)}


def _positive(value, name: str) -> float:
    value = positive_number(value, name)
    if value == 0:
        raise ValueError(f'{name} must be a positive number, not {value!r}')
    return value


CT_PHYSICS_OPERATORS: tuple[Operator, ...] = (
    Operator(
        name='lowdose_noise',
        title='Low-dose noise (projection domain)',
        kernel=kernels.lowdose_noise,
        parameters=(
            Parameter(
                'dose', 0.1, 0.63, minimum=1e-3, maximum=1.0, doc='dose fraction'
            ),
        ),
        options=(
            Option(
                'photons',
                kernels.DEFAULT_PHOTONS,
                _positive,
                'incident photons per view per mm of detector at full dose',
            ),
            Option(
                'electronic',
                kernels.DEFAULT_ELECTRONIC,
                positive_number,
                'electronic noise std (photon counts)',
            ),
        ),
        summary='Poisson (Gaussian limit) and electronic noise of a scan at a'
        ' fraction of the dose, added on the sinogram and reconstructed:'
        ' correlated, streaky along attenuating paths, stronger in the centre.',
        reference='Yu et al. 2012, Med. Phys. 39(10)',
        severity=ExponentialSeverity(0.0, 4.0),
        domain='hu',
    ),
    Operator(
        name='ring',
        title='Ring artifact',
        kernel=kernels.ring,
        parameters=(
            Parameter(
                'amplitude', 10.0, 60.0, minimum=0.0, doc='peak ring amplitude (HU)'
            ),
        ),
        options=(
            Option('fraction', 0.05, fraction, 'fraction of miscalibrated elements'),
        ),
        summary='Gain errors of a few detector elements: rings around the'
        ' rotation axis, peak amplitude in HU.',
        reference='not in the paper (projection domain)',
        domain='hu',
    ),
    Operator(
        name='sparse_view',
        title='Sparse-view streaks',
        kernel=kernels.sparse_view,
        parameters=(
            Parameter(
                'step',
                1.5,
                6.0,
                minimum=0.0,
                maximum=90.0,
                doc='degrees between views (180 / views)',
            ),
        ),
        summary='Filtered back-projection from few views: streaks fanning out'
        ' from dense structures.',
        reference='not in the paper (projection domain)',
        domain='hu',
    ),
    Operator(
        name='limited_angle',
        title='Limited-angle scan',
        kernel=kernels.limited_angle,
        parameters=(
            Parameter(
                'wedge',
                10.0,
                60.0,
                minimum=0.0,
                maximum=170.0,
                doc='missing arc (degrees)',
            ),
        ),
        summary='Reconstruction without a wedge of views: edges along the'
        ' missing directions smear out.',
        reference='not in the paper (projection domain)',
        domain='hu',
    ),
    Operator(
        name='photon_starvation',
        title='Photon starvation',
        kernel=kernels.photon_starvation,
        parameters=(
            Parameter(
                'photons',
                2000.0,
                30000.0,
                minimum=1.0,
                doc='incident photons per view per mm of detector',
            ),
        ),
        options=(
            Option(
                'electronic',
                kernels.DEFAULT_ELECTRONIC,
                positive_number,
                'electronic noise std (photon counts)',
            ),
        ),
        summary='Counts clipped near zero along the most attenuating rays: dark'
        ' and bright streaks between dense structures.',
        reference='not in the paper (projection domain)',
        severity=ExponentialSeverity(4.8, 6.0),
        domain='hu',
    ),
    Operator(
        name='beam_hardening',
        title='Beam hardening',
        kernel=kernels.beam_hardening,
        parameters=(
            Parameter(
                'strength',
                0.005,
                0.03,
                minimum=0.0,
                doc='water-correction error (per unit attenuation)',
            ),
        ),
        options=(
            Option('bone_weight', 10.0, positive_number, 'extra hardening of bone'),
        ),
        summary='A residual polynomial error of the water correction: cupping'
        ' and dark bands between dense structures.',
        reference='not in the paper (projection domain)',
        domain='hu',
    ),
    Operator(
        name='rigid_motion',
        title='Rigid motion (projection domain)',
        kernel=kernels.rigid_motion,
        parameters=(
            Parameter('shift', 2.0, 10.0, minimum=0.0, doc='in-plane shift (mm)'),
        ),
        options=(
            Option('fraction', 0.5, fraction, 'fraction of the views after motion'),
        ),
        summary='An in-plane translation of the patient during part of the'
        ' rotation: doubled edges and streaks.',
        reference='not in the paper (projection domain)',
        domain='hu',
    ),
)
"""The CT-physics operators, in order of the pool."""

CT_PHYSICS_FAMILIES: tuple[str, ...] = tuple(op.name for op in CT_PHYSICS_OPERATORS)
"""The extended pool ``'ct_physics'``: families acting on HU before CTNormalize."""
