"""Doctest collection and the ``heavy`` marker.

The ``heavy`` tests (:data:`HEAVY`, and every test marked ``nnunet``) run
whole programs: the real nnU-Net, the quickstart, every documentation page's
commands, the documentation site in Chromium, killed and multi-process runs.
CI runs them all; ``python -m pytest -q -m "not heavy"`` leaves them out for
a quick check while developing (see docs/development.md).

Modules of an optional extra are skipped without it.

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

import pytest

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


HEAVY = {
    'tests/test_quickstart.py': 'the quickstart end to end (smoke mode)',
    'tests/test_docs.py::test_code_blocks_run': "every page's commands",
    'tests/test_docs_build.py': 'the documentation site, built and read in Chromium',
    'tests/test_first_real_ct.py': 'the example script on real CTs',
    'tests/test_training.py::test_two_process_ddp_on_cpu_writes_one_run': 'DDP',
    'tests/test_training.py::test_resume_': 'two training runs compared',
    'tests/test_training.py::test_same_seed_same_weights': 'three training runs',
    'tests/test_training_pointers.py': 'ramp-train end to end',
    'tests/test_ramp_corrupt.py::test_application_rate_is_p': 'sampling statistics',
    'tests/test_open_registry.py::test_contract_tests_are_parametrised': 'pytest run',
    'tests/test_faults_prep.py::test_workers_die_with_a_killed_run': 'kill -9',
    'tests/test_faults_prep.py::test_a_run_killed_while': 'kill -9',
    'tests/test_prep_resume.py::test_killed_run': 'kill -9',
    'tests/test_prep_resume.py::test_worker_count': 'worker processes',
}
"""Node-id prefix -> what makes those tests heavy (tests marked ``nnunet``,
the real nnU-Net, are heavy too)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        prefixes = (p for p in HEAVY if item.nodeid.startswith(p))
        if item.get_closest_marker('nnunet') or next(prefixes, None):
            item.add_marker(pytest.mark.heavy)
