"""The CT-physics families: corruptions of the scan's physics, in Hounsfield units.

An extended pool, outside the paper's defaults (:data:`CT_PHYSICS_FAMILIES`,
named ``'ct_physics'`` wherever a pool of families is accepted). Unlike the
paper's image-domain families they act on the CT in Hounsfield units, before
:class:`~torchio_ramp.CTNormalize` (``domain='hu'``): attenuation needs the full
HU range, which a clipped ``[0, 1]`` window destroys. Each family has one
physical parameter in physical units and a severity map from a level a
radiologist would call mild (0.05) to a non-diagnostic one (0.25); sources in
``docs/ct-physics.md``:

==========================  ===============================  ==============
family                      parameter (unit)                 0.05 -> 0.25
==========================  ===============================  ==============
``lowdose_noise``           dose fraction of the scan's own  0.63 -> 0.10
``dose_modulation``         mean dose fraction, with AEC     0.63 -> 0.10
``photon_starvation``       counts on the widest ray         50 -> 1
``metal``                   rod diameter (mm)                4 -> 28
``beam_hardening``          cupping of 200 mm water (HU)     5 -> 40
``ring``                    peak ring amplitude (HU)         10 -> 60
``sparse_view``             degrees between views            1.5 -> 6
``rigid_motion``            in-plane shift (mm)              2 -> 10
``reconstruction_kernel``   kernel MTF50 (lp/mm)             0.45 -> 0.9
``contrast_phase``          seconds after injection          56 -> 0
==========================  ===============================  ==============

``limited_angle`` (a missing wedge of views, a C-arm or tomosynthesis
geometry rather than a diagnostic CT failure) is registered but outside the
pool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .kernels import ct_physics as kernels
from .kernels.ct_image import ENHANCEMENT
from .kernels.ct_metal import METALS
from .labels import CLASS_IDS
from .operators import SEVERITY_LEVELS
from .operators import Operator
from .operators import Option
from .operators import Parameter
from .operators import fraction
from .operators import positive_number


def _progress(level: float) -> float:
    first, last = SEVERITY_LEVELS[0], SEVERITY_LEVELS[-1]
    return (level - first) / (last - first)


@dataclass(frozen=True)
class LinearSeverity:
    """Severity map linear from ``first`` at level 0.05 to ``last`` at 0.25.

    Independent of the training range (which may span both directions, e.g.
    smoother and sharper kernels), clamped to the parameter's domain. A class,
    so operators and transforms pickle.

    Example:
        >>> from torchio_ramp.families import FAMILIES
        >>> LinearSeverity(5.0, 40.0)(FAMILIES['beam_hardening'], 0.25)
        {'cupping': 40.0}
    """

    first: float
    last: float

    def __call__(self, operator: Operator, level: float) -> dict[str, float]:
        (parameter,) = operator.parameters
        value = self.first + _progress(level) * (self.last - self.first)
        return {parameter.name: parameter.clamp(value)}


@dataclass(frozen=True)
class GeometricSeverity:
    """Severity map with equal factors per step: ``first`` at 0.05, ``last`` at 0.25.

    For parameters whose effect is multiplicative (dose, photon counts, kernel
    frequencies); clamped to the parameter's domain.

    Example:
        >>> from torchio_ramp.families import FAMILIES
        >>> GeometricSeverity(10**-0.2, 0.1)(FAMILIES['lowdose_noise'], 0.25)
        {'dose': 0.1}
    """

    first: float
    last: float

    def __call__(self, operator: Operator, level: float) -> dict[str, float]:
        (parameter,) = operator.parameters
        ratio = math.log(self.last / self.first)
        value = self.first * math.exp(_progress(level) * ratio)
        return {parameter.name: parameter.clamp(round(value, 12))}


def _positive(value: Any, name: str) -> float:
    value = positive_number(value, name)
    if value == 0:
        raise ValueError(f'{name} must be a positive number, not {value!r}')
    return value


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f'{name} must be True or False, not {value!r}')
    return value


def _material(value: Any, name: str) -> str:
    if value not in METALS:
        raise ValueError(f'{name} must be one of {METALS}, not {value!r}')
    return value


def _classes(value: Any, name: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f'{name} must map organ names to label values, not {value!r}')
    unknown = sorted(set(value) - set(ENHANCEMENT) - set(CLASS_IDS))
    if unknown:
        message = (
            f'{name}: unknown organ {unknown[0]!r}; organs with enhancement'
            f' curves: {sorted(ENHANCEMENT)}'
        )
        raise ValueError(message)
    for organ, label in value.items():
        if isinstance(label, bool) or not isinstance(label, int) or label < 1:
            message = f'{name}: the label of {organ!r} must be a positive integer'
            raise ValueError(f'{message}, not {label!r}')
    return dict(value)


_PHOTONS = Option(
    'photons',
    kernels.DEFAULT_PHOTONS,
    _positive,
    'incident photons per view per mm^2 of detector (without calibration)',
)
_ELECTRONIC = Option(
    'electronic',
    kernels.DEFAULT_ELECTRONIC,
    positive_number,
    'electronic noise std (counts per reference reading)',
)
_CALIBRATE = Option(
    'calibrate', True, _boolean, "scale the noise to the scan's own noise"
)
_DOSE = Parameter(
    'dose', 0.1, 0.63, minimum=1e-3, maximum=1.0, doc="dose fraction of the scan's"
)
_DOSE_SEVERITY = GeometricSeverity(10**-0.2, 0.1)

CT_PHYSICS_OPERATORS: tuple[Operator, ...] = (
    Operator(
        name='lowdose_noise',
        title='Low-dose noise (projection domain)',
        kernel=kernels.lowdose_noise,
        parameters=(_DOSE,),
        options=(_PHOTONS, _ELECTRONIC, _CALIBRATE),
        summary='The scan at a fraction of its own dose (calibrated to its'
        ' noise): quantum and electronic noise added on the sinogram and'
        ' reconstructed with the soft-tissue kernel.',
        reference='Yu et al. 2012, Med. Phys. 39(10)',
        severity=_DOSE_SEVERITY,
        domain='hu',
    ),
    Operator(
        name='dose_modulation',
        title='Low dose with tube-current modulation',
        kernel=kernels.dose_modulation,
        parameters=(_DOSE,),
        options=(
            Option(
                'strength',
                0.5,
                positive_number,
                'exponent of the current on the attenuation (0.5: square root)',
            ),
            _PHOTONS,
            _ELECTRONIC,
            _CALIBRATE,
        ),
        summary='A reduced mean dose whose tube current follows the attenuation'
        ' along z and with the view angle (automatic exposure control).',
        reference='Gies et al. 1999, Med. Phys. 26(11)',
        severity=_DOSE_SEVERITY,
        domain='hu',
    ),
    Operator(
        name='photon_starvation',
        title='Photon starvation',
        kernel=kernels.photon_starvation,
        parameters=(
            Parameter(
                'counts',
                1.0,
                50.0,
                minimum=0.1,
                doc='expected photons on the most attenuating reading',
            ),
        ),
        options=(
            _ELECTRONIC,
            _PHOTONS,
            Option(
                'calibrate', False, _boolean, "measure the scan's flux from its noise"
            ),
        ),
        summary='A tube output so low that the widest rays (shoulders, hips)'
        ' run dry: exact counts clipped at one, streaks along those rays.',
        reference='Hsieh 2009, Computed Tomography, ch. 7',
        severity=GeometricSeverity(50.0, 1.0),
        domain='hu',
    ),
    Operator(
        name='metal',
        title='Metal implants',
        kernel=kernels.metal,
        parameters=(
            Parameter(
                'diameter',
                4.0,
                28.0,
                minimum=0.0,
                maximum=80.0,
                doc='diameter of each of two metal rods (mm)',
            ),
        ),
        options=(
            Option('material', 'steel', _material, f'metal, one of {METALS}'),
            _PHOTONS,
            _ELECTRONIC,
        ),
        summary='Two metal rods in the body through a 120 kVp polychromatic'
        ' projection: beam hardening, starvation, streaks between them.',
        reference='Zhang and Yu 2018, IEEE TMI 37(6)',
        severity=LinearSeverity(4.0, 28.0),
        domain='hu',
    ),
    Operator(
        name='beam_hardening',
        title='Beam hardening',
        kernel=kernels.beam_hardening,
        parameters=(
            Parameter(
                'cupping',
                5.0,
                40.0,
                minimum=0.0,
                doc='cupping of a 200 mm water phantom (HU)',
            ),
        ),
        options=(
            Option('bone_weight', 10.0, positive_number, 'extra hardening of bone'),
        ),
        summary='A residual error of the water correction: cupping and dark'
        ' bands between dense structures.',
        reference='ACR CT accreditation phantom uniformity (5 HU)',
        severity=LinearSeverity(5.0, 40.0),
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
        reference='Hsieh 2009, Computed Tomography, ch. 7',
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
        reference='Kak and Slaney 1988, ch. 5',
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
        reference='Hsieh 2009, Computed Tomography, ch. 7',
        domain='hu',
    ),
    Operator(
        name='reconstruction_kernel',
        title='Reconstruction kernel',
        kernel=kernels.reconstruction_kernel,
        parameters=(
            Parameter(
                'mtf50',
                0.15,
                0.9,
                minimum=0.05,
                maximum=2.0,
                doc='50% MTF frequency of the kernel (lp/mm)',
            ),
        ),
        options=(
            Option(
                'native_mtf50',
                kernels.SOFT_TISSUE_MTF50,
                _positive,
                "50% MTF frequency of the scan's own kernel (lp/mm)",
            ),
        ),
        summary='The same scan reconstructed with a smoother or sharper kernel:'
        ' the MTF and the noise power spectrum shift.',
        reference='Nickoloff and Riley 1985, Med. Phys. 12(4)',
        severity=GeometricSeverity(0.45, 0.9),
        domain='hu',
    ),
    Operator(
        name='contrast_phase',
        title='Contrast phase',
        kernel=kernels.contrast_phase,
        parameters=(
            Parameter(
                'delay',
                0.0,
                300.0,
                minimum=0.0,
                maximum=600.0,
                doc='seconds after the start of contrast injection',
            ),
        ),
        options=(
            Option(
                'classes',
                {name: CLASS_IDS[name] for name in ENHANCEMENT},
                _classes,
                'label value of each organ',
            ),
        ),
        summary='Organ enhancement of another contrast phase (label map read,'
        ' never written), from published enhancement curves.',
        reference='Bae 2010, Radiology 256(1)',
        severity=LinearSeverity(56.0, 0.0),
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
        ' missing directions smear out (not a diagnostic CT failure).',
        reference='Kak and Slaney 1988, ch. 5',
        domain='hu',
    ),
)
"""The CT-physics operators: the pool's, then ``limited_angle``."""

CT_PHYSICS_FAMILIES: tuple[str, ...] = tuple(
    op.name for op in CT_PHYSICS_OPERATORS if op.name != 'limited_angle'
)
"""The extended pool ``'ct_physics'``: families acting on HU before CTNormalize."""
