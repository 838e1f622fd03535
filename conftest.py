"""Doctest collection: modules of an optional extra are skipped without it.

``pytest`` collects the doctests of every module under ``torchio_ramp``; a
module that needs an extra's package (``torchio_ramp.monai`` needs ``monai``,
the nnU-Net trainers need ``nnunetv2``) cannot be imported without it, so it is
left out when that package is absent (and ``prep/`` when the installed
``ramp_prep`` is not this folder's). The nnU-Net trainer files under
``torchio_ramp/nnunet/ext`` are copied into nnU-Net, never imported from here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

OPTIONAL_MODULES = {
    'torchio_ramp/monai.py': 'monai',
    'torchio_ramp/nnunet/augment.py': 'nnunetv2',
    'torchio_ramp/nnunet/trainers.py': 'nnunetv2',
}
"""Module path -> the package it needs (installed by the matching extra)."""


def _missing(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is None
    except ValueError:  # sys.modules[package] is None: deliberately hidden
        return True


collect_ignore_glob = ['torchio_ramp/nnunet/ext/*']
collect_ignore = [
    path for path, package in OPTIONAL_MODULES.items() if _missing(package)
]


def _checkout_prep() -> bool:
    """Whether the installed ``ramp_prep`` is this folder's ``prep/``.

    ``prep`` is an alias of the installed ``ramp_prep`` (see
    ``prep/__init__.py``). From an unpacked source distribution next to an
    installed wheel, ``ramp_prep`` is the wheel's copy, and pytest would refuse
    to collect ``prep/*.py`` from another file; their doctests run from a
    checkout installed in editable mode.
    """
    try:
        spec = importlib.util.find_spec('ramp_prep')
    except ValueError:
        return False
    if spec is None or spec.origin is None:
        return False
    here = Path(__file__).resolve().parent / 'prep'
    return Path(spec.origin).resolve().parent == here


if not _checkout_prep():
    collect_ignore_glob.append('prep/*.py')
