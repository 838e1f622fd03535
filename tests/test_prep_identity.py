"""``prep/`` has one import identity, ``ramp_prep``, and its doctests run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import ramp_prep
import ramp_prep.errors

ROOT = Path(__file__).resolve().parents[1]


def test_prep_is_an_alias_of_the_installed_package():
    completed = subprocess.run(
        [
            sys.executable,
            '-c',
            'import prep, prep.images, ramp_prep.errors\n'
            'from prep.errors import PrepError\n'
            'assert prep.images.__name__ == "ramp_prep.images"\n'
            'assert PrepError is ramp_prep.errors.PrepError\n'
            'print(PrepError.__module__)',
        ],
        cwd=ROOT,  # the checkout is on sys.path: ``prep`` is importable by name
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == 'ramp_prep.errors'


def test_an_error_raised_through_either_name_is_caught_by_both():
    import prep.images

    with pytest.raises(ramp_prep.errors.PrepError) as error:
        prep.images.write_text(ROOT / 'no-such-folder' / 'x.txt', 'x')
    assert type(error.value).__module__ == 'ramp_prep.errors'


def test_prep_doctests_are_collected_by_default(pytestconfig):
    assert 'prep' in pytestconfig.getini('testpaths')
    assert '--doctest-modules' in pytestconfig.getini('addopts')


def test_tests_import_ramp_prep_only():
    pattern = re.compile(r'^\s*(from|import)\s+prep\b', re.MULTILINE)
    offenders = [
        path.name
        for path in (ROOT / 'tests').glob('*.py')
        if path.name != Path(__file__).name and pattern.search(path.read_text())
    ]
    assert not offenders
