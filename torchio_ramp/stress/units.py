"""Severity levels in clinical units: Hounsfield units and millimetres.

The corruption kernels work on a CT windowed to ``[0, 1]`` by
:class:`~torchio_ramp.CTNormalize` and measure distances in voxels. For a
given HU window ``(low, high)`` and voxel spacing, :func:`physical_table`
translates each family's parameter at each severity level into what a
radiologist reads:

* an intensity in the normalised image is ``(high - low)`` HU per unit:
  noise standard deviations, shifts and stripe offsets become HU;
* a Gaussian sigma of ``s`` voxels has a full width at half maximum of
  ``2 sqrt(2 ln 2) s`` voxels, i.e. ``2.3548 s x spacing`` mm per axis;
* down-sampling by ``f`` leaves an effective voxel size of ``f x spacing``
  mm (an effective slice thickness along the slice axis);
* multiplicative or relative parameters (speckle, bias field, ghost weight,
  contrast blend, salt-and-pepper probability) are given in percent;
* a family registered by the user is listed with its raw parameters;
* the CT-physics families (``ct_physics``) act on HU and their parameters
  are already physical: dose in %, photons, rod diameter and motion in mm,
  cupping and ring amplitude in HU, view spacing in degrees, kernel MTF50 in
  lp/mm, time after injection in s.

Spacing is in the image's axis order (TorchIO's ``spacing``, usually
``x, y, z`` with ``z`` the slice axis), one number or three, read by the one
size parser :func:`~torchio_ramp.arguments.parse_size` (``1.5,1.5,3`` or
``1.5x1.5x3``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..arguments import parse_size
from ..families import FAMILIES
from ..families import check_families
from ..model_files import parse_hu_range
from ..operators import SEVERITY_LEVELS

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
"""Full width at half maximum of a Gaussian, in standard deviations (2.3548)."""


@dataclass(frozen=True)
class Scanner:
    """The HU window and voxel spacing that give the units.

    Attributes:
        hu_range: ``(low, high)`` window of the normalisation.
        spacing: Voxel size in mm per axis.
    """

    hu_range: tuple[float, float]
    spacing: tuple[float, float, float]

    @property
    def hu_per_unit(self) -> float:
        """HU per unit of the normalised intensity (the window width)."""
        return self.hu_range[1] - self.hu_range[0]

    def fwhm_mm(self, sigma: float) -> tuple[float, ...]:
        """FWHM in mm, per axis, of a Gaussian of ``sigma`` voxels."""
        return tuple(FWHM_PER_SIGMA * sigma * s for s in self.spacing)


Value = float | tuple[float, ...]


@dataclass(frozen=True)
class Quantity:
    """One clinical reading of a family's parameters.

    Attributes:
        name: What it is, e.g. ``'noise std'``.
        unit: ``'HU'``, ``'mm'`` or ``'%'`` (``'deg'``, ``'views'``,
            ``'photons'``, ``'lp/mm'``, ``'s'`` for the CT-physics families;
            ``''``: a family parameter without a clinical unit).
        value: ``(kernel parameters, scanner) -> number`` (or one number per
            axis, for ``mm``).
    """

    name: str
    unit: str
    value: Callable[[Mapping[str, float], Scanner], Value]


def _hu(parameter: str, name: str, scale: float = 1.0) -> Quantity:
    return Quantity(name, 'HU', lambda p, s: scale * p[parameter] * s.hu_per_unit)


def _percent(parameter: str, name: str) -> Quantity:
    return Quantity(name, '%', lambda p, s: 100 * p[parameter])


def _fwhm(parameter: str, name: str, scale: float = 1.0) -> Quantity:
    return Quantity(name, 'mm', lambda p, s: s.fwhm_mm(scale * p[parameter]))


def _bias(parameter: str, scale: float = 1.0) -> Quantity:
    # The field exp(strength * b) with |b| <= 1: the largest gain.
    return Quantity(
        'max bias gain',
        '%',
        lambda p, s: 100 * (math.exp(scale * p[parameter]) - 1),
    )


QUANTITIES: dict[str, tuple[Quantity, ...]] = {
    'gaussian_noise': (_hu('std', 'noise std'),),
    'blur': (_fwhm('sigma', 'blur FWHM'),),
    'rician_noise': (_hu('std', 'noise std per component'),),
    'motion_blur': (_fwhm('sigma', 'blur FWHM along the motion axis'),),
    'salt_pepper': (_percent('prob', 'corrupted voxels'),),
    'speckle_noise': (_percent('std', 'relative noise std'),),
    'bias_field': (_bias('strength'),),
    'ghosting': (_percent('intensity', 'weight of each ghost'),),
    'intensity_shift': (_hu('shift', 'offset (+ or -)'),),
    'contrast_reduction': (_percent('blend', 'contrast lost'),),
    'downsample': (
        Quantity(
            'effective voxel size',
            'mm',
            lambda p, s: tuple(p['factor'] * v for v in s.spacing),
        ),
    ),
    'stripe': (_hu('strength', 'max stripe offset'),),
    'compound': (
        _hu('level', 'noise std'),
        _fwhm('level', 'blur FWHM', scale=5.0),
        _bias('level', scale=3.0),
    ),
    # The CT-physics pool: parameters already in physical units (HU domain)
    'lowdose_noise': (Quantity('dose', '%', lambda p, s: 100 * p['dose']),),
    'dose_modulation': (Quantity('mean dose', '%', lambda p, s: 100 * p['dose']),),
    'photon_starvation': (
        Quantity('counts on the widest ray', 'photons', lambda p, s: p['counts']),
    ),
    'metal': (Quantity('rod diameter', 'mm', lambda p, s: p['diameter']),),
    'beam_hardening': (
        Quantity('cupping of 200 mm water', 'HU', lambda p, s: p['cupping']),
    ),
    'ring': (Quantity('peak ring amplitude', 'HU', lambda p, s: p['amplitude']),),
    'sparse_view': (
        Quantity('angle between views', 'deg', lambda p, s: p['step']),
        Quantity('views over 180 deg', 'views', lambda p, s: round(180 / p['step'])),
    ),
    'rigid_motion': (Quantity('in-plane shift', 'mm', lambda p, s: p['shift']),),
    'reconstruction_kernel': (
        Quantity('kernel MTF50', 'lp/mm', lambda p, s: p['mtf50']),
    ),
    'contrast_phase': (Quantity('time after injection', 's', lambda p, s: p['delay']),),
    'limited_angle': (Quantity('missing arc', 'deg', lambda p, s: p['wedge']),),
}
"""Clinical readings of every family (the registry's parameters)."""


def physical_table(
    hu_range: Sequence[float],
    spacing: Sequence[float] | float,
    *,
    families: Sequence[str] | None = None,
    levels: Sequence[float] = SEVERITY_LEVELS,
) -> list[dict[str, Any]]:
    """Each family's parameters at each level in clinical units.

    Args:
        hu_range: ``(low, high)`` HU window of the normalisation.
        spacing: Voxel size in mm (one number or three).
        families: Families (default: the paper's pool).
        levels: Severity levels.

    Returns:
        One row per family and quantity: ``family``, ``title``,
        ``quantity``, ``unit``, ``parameters`` (``{level: kernel
        parameters}``) and ``values`` (``{level: number or per-axis
        tuple}``).

    Example:
        >>> rows = physical_table((-200, 300), (1.5, 1.5, 3.0), families=['gaussian_noise'])
        >>> round(rows[0]['values'][0.15], 1), rows[0]['unit']
        (55.0, 'HU')
    """  # noqa: E501
    low, high = parse_hu_range(hu_range, 'hu_range')
    scanner = Scanner((low, high), parse_size(spacing, 'spacing', kind=float))
    rows = []
    for family in check_families(families):
        operator = FAMILIES[family]
        parameters = {
            level: operator.severity(operator, float(level)) for level in levels
        }
        quantities = QUANTITIES.get(family) or tuple(
            # A registered family without a clinical reading: its raw parameters
            Quantity(p.name, '', lambda values, _, name=p.name: values[name])
            for p in operator.parameters
        )
        for quantity in quantities:
            rows.append(
                {
                    'family': family,
                    'title': operator.title,
                    'quantity': quantity.name,
                    'unit': quantity.unit,
                    'parameters': parameters,
                    'values': {
                        level: quantity.value(parameters[level], scanner)
                        for level in levels
                    },
                }
            )
    return rows


def format_value(value: Value) -> str:
    """``55`` / ``1.8 x 1.8 x 3.5`` (per axis; one number when all equal).

    Example:
        >>> format_value(55.04), format_value((1.77, 1.77, 3.53)), format_value((2.0,) * 3)
        ('55', '1.8 x 1.8 x 3.5', '2')
    """  # noqa: E501
    if isinstance(value, tuple):
        if len(set(value)) == 1:
            return format_value(value[0])
        return ' x '.join(f'{v:.2g}' if v < 10 else f'{v:.0f}' for v in value)
    if abs(value) >= 10:
        return f'{value:.0f}'
    return f'{value:.2g}'


def table_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of :func:`physical_table` for printing.

    Example:
        >>> header, rows = table_rows(physical_table((-200, 300), 1.0,
        ...     families=['blur'], levels=[0.05]))
        >>> header, rows
        (['family', 'quantity', 'unit', '0.05'], [['blur', 'blur FWHM', 'mm', '1.2']])
    """
    levels = list(rows[0]['values']) if rows else []
    header = ['family', 'quantity', 'unit', *(f'{level:g}' for level in levels)]
    body = [
        [
            row['family'],
            row['quantity'],
            row['unit'],
            *(format_value(row['values'][level]) for level in levels),
        ]
        for row in rows
    ]
    return header, body
