"""Doctest collection: modules of an optional extra are skipped without it.

``pytest`` collects the doctests of every module under ``torchio_ramp``; a
module that needs an extra's package (``torchio_ramp.monai`` needs ``monai``,
the nnU-Net trainers need ``nnunetv2``) cannot be imported without it, so it is
left out when that package is absent. The nnU-Net trainer files under
``torchio_ramp/nnunet/ext`` are copied into nnU-Net, never imported from here.
"""

from __future__ import annotations

import importlib.util

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
