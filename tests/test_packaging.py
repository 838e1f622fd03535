"""Release metadata: licence, typing marker, declared dependencies, sdist contents.

The full release check (build, ``twine check``, the wheel in a fresh venv, the
sdist's tests collecting) is ``.ci/package-check``, run by ``.ci/run``.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = configparser.ConfigParser()
CONFIG.read(ROOT / 'setup.cfg', encoding='utf-8')
FIRST_PARTY = {'torchio_ramp', 'ramp_prep', 'prep', 'tests'}


def _requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.strip().splitlines():
        match = re.match(r'\s*([A-Za-z0-9_.\-]+)', line)
        if match:
            names.add(_normalise(match.group(1)))
    return names


def _normalise(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _imported_modules(folder: Path) -> dict[str, Path]:
    """Top-level module of every import in ``folder``'s files -> one file using it."""
    modules = {}
    for path in sorted(folder.rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.partition('.')[0], path)
    return modules


def test_licence_is_the_apache_2_text_and_ships_in_the_wheel():
    text = (ROOT / 'LICENSE').read_text(encoding='utf-8')
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'END OF TERMS AND CONDITIONS' in text
    assert CONFIG['metadata']['license'] == 'Apache-2.0'
    assert CONFIG['metadata']['license_files'].split() == ['LICENSE']


def test_metadata_names_authors_keywords_and_typing():
    metadata = CONFIG['metadata']
    assert metadata['author'] == metadata['maintainer'] == 'torchio-ramp contributors'
    assert 'segmentation' in metadata['keywords']
    assert 'Typing :: Typed' in metadata['classifiers']
    assert (ROOT / 'torchio_ramp' / 'py.typed').is_file()
    assert 'py.typed' in CONFIG['options.package_data']['torchio_ramp']


@pytest.mark.parametrize('folder', ['torchio_ramp', 'prep'])
def test_every_third_party_import_is_declared(folder):
    required = _requirement_names(CONFIG['options']['install_requires'])
    for extra in CONFIG['options.extras_require'].values():
        required |= _requirement_names(extra)
    distributions = packages_distributions()
    undeclared = {}
    for module, path in _imported_modules(ROOT / folder).items():
        if module in sys.stdlib_module_names or module in FIRST_PARTY:
            continue
        # A module not installed here is named like its distribution (nnunetv2)
        names = {_normalise(name) for name in distributions.get(module, [module])}
        if not names & required:
            undeclared[module] = str(path.relative_to(ROOT))
    assert not undeclared, f'imported but not in setup.cfg: {undeclared}'


def test_sdist_manifest_ships_what_the_tests_need():
    manifest = (ROOT / 'MANIFEST.in').read_text(encoding='utf-8').split()
    for folder in ('tests', 'examples', 'benchmarks', 'docs', '.ci'):
        assert folder in manifest, folder
    assert 'LICENSE' in manifest


def test_ci_runs_the_release_check_before_the_test_command():
    lines = (ROOT / '.ci' / 'run').read_text(encoding='utf-8').strip().splitlines()
    assert '.ci/package-check' in lines
    assert lines.index('.ci/package-check') < len(lines) - 1
    assert lines[-1] == 'python -m pytest -q'
    assert (ROOT / '.ci' / 'constraints.txt').read_text().split() == ['torch==2.13.0']
