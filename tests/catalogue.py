"""Every exported transform, constructed so that it always acts (p = 1).

The contract suite is parametrised over this catalogue; a test checks that it
covers every transform exported by :mod:`torchio_ramp`. A registered
corruption family without a named class is covered as
``RandomCorruption[<family>]`` (:data:`UNNAMED_FAMILIES`), so a family added to
the registry is checked without editing this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torchio as tio

import torchio_ramp as tr

Factory = Callable[..., tio.Transform]


def _named(cls: type) -> Factory:
    return lambda **kwargs: cls(**kwargs)


def _on_hu(operator: str | None) -> bool:
    """Whether a family acts on Hounsfield units (before CTNormalize)."""
    return operator in tr.FAMILIES and tr.FAMILIES[operator].domain == 'hu'


_BOUND = {
    name: getattr(tr, name)
    for name in tr.__all__
    if name.startswith('Random')
    and issubclass(getattr(tr, name), tr.transforms.operation.RandomOperatorTransform)
    and getattr(tr, name).bound_operator is not None
}

INTENSITY: dict[str, Factory] = {
    name: _named(cls) for name, cls in _BOUND.items() if not _on_hu(cls.bound_operator)
}
INTENSITY.update(
    {
        'Corruption': lambda **kw: tr.Corruption('stripe', level=0.2, seed=3, **kw),
        'CTIntensity': lambda **kw: tr.CTIntensity(
            'sharpen', {'sigma': 1.0, 'amount': 1.0}, **kw
        ),
        'RandomCorruption': lambda **kw: tr.RandomCorruption('rician_noise', **kw),
        'RandomCTIntensity': lambda **kw: tr.RandomCTIntensity('histogram_warp', **kw),
        'RampCorrupt': lambda **kw: tr.RampCorrupt(**{'p': 1, **kw}),
        'RampIntensity': lambda **kw: tr.RampIntensity(
            probabilities=dict.fromkeys(tr.INTENSITY_OPERATIONS, 1.0), **kw
        ),
    }
)


def _random_corruption(family: str) -> Factory:
    return lambda **kwargs: tr.RandomCorruption(family, **kwargs)


_NAMED_OPERATORS = {
    getattr(tr, name).bound_operator
    for name in tr.__all__
    if isinstance(getattr(tr, name), type)
    and issubclass(getattr(tr, name), tr.transforms.operation.RandomOperatorTransform)
}

UNNAMED_FAMILIES: dict[str, Factory] = {
    f'RandomCorruption[{family}]': _random_corruption(family)
    for family in tr.FAMILIES
    if family not in _NAMED_OPERATORS and not _on_hu(family)
}
INTENSITY.update(UNNAMED_FAMILIES)

HU: dict[str, Factory] = {
    name: _named(cls) for name, cls in _BOUND.items() if _on_hu(cls.bound_operator)
}
"""Transforms of the CT-physics families: they take Hounsfield units, so their
contract is checked on HU subjects (``tests/test_ct_physics.py``), not here."""
HU.update(
    {
        f'RandomCorruption[{family}]': _random_corruption(family)
        for family in tr.FAMILIES
        if family not in _NAMED_OPERATORS and _on_hu(family)
    }
)

SPATIAL: dict[str, Factory] = {
    'LateralityFlip': lambda **kw: tr.LateralityFlip(axes=(0, 2), **kw),
    'RandomLateralityFlip': lambda **kw: tr.RandomLateralityFlip(
        flip_probability=1.0, **kw
    ),
    'DenseElastic': lambda **kw: tr.DenseElastic(alpha=150, sigma=3, seed=1, **kw),
    'RandomDenseElastic': lambda **kw: tr.RandomDenseElastic(alpha=150, sigma=3, **kw),
    'RampSpatial': lambda **kw: tr.RampSpatial(
        flip_probability=1.0, elastic_probability=1.0, alpha=150, sigma=3, **kw
    ),
}

MIXED: dict[str, Factory] = {
    'Ramp': lambda **kw: tr.Ramp(p_corrupt=1.0, **kw),
}

NORMALIZATION: dict[str, Factory] = {
    'CTNormalize': lambda **kw: tr.CTNormalize(hu_range=(-0.5, 1.5), **kw),
}

ALL: dict[str, Factory] = {**INTENSITY, **SPATIAL, **MIXED, **NORMALIZATION}


def build(name: str, **kwargs: Any) -> tio.Transform:
    return ALL[name](**kwargs)
