"""The project speaks only of itself: no issue numbers, no files outside its tree.

Code, docs, README, examples and benchmarks must not cite tracker issues or
architecture notes that ship elsewhere; only the tests may name the real example
data kept beside a checkout (and skip when it is absent).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / 'docs' / 'conf.py').is_file():  # e.g. an unpacked sdist
    pytest.skip('not a full checkout of the project', allow_module_level=True)
FOLDERS = ('torchio_ramp', 'prep', 'tests', 'examples', 'benchmarks', 'docs', '.ci')
TOP_FILES = ('README.md', 'setup.cfg', 'setup.py', 'pyproject.toml', 'MANIFEST.in')
SUFFIXES = {'.py', '.md', '.txt', '.cfg', '.toml', '.rst', '.ini', '.yml', '.yaml', ''}
SKIP_PARTS = {'__pycache__', '_build', 'build', 'dist', '.pytest_cache', '.ruff_cache'}

FORBIDDEN = {
    'an issue number': re.compile(r'\bissues?[\s_-]*(?:#|no\.?\s*)?\d+', re.IGNORECASE),
    'the outside architecture notes': re.compile(
        r'\bdesign' + r'\.md\b', re.IGNORECASE
    ),
    'a path outside the tree': re.compile(r'\.\./shared\b|/work/'),
}
TESTS_MAY_NAME = {'a path outside the tree'}
"""The tests read real example CTs from ../shared beside the checkout, with a skip."""


def project_files() -> list[Path]:
    files = [ROOT / name for name in TOP_FILES if (ROOT / name).is_file()]
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob('*')):
            relative = path.relative_to(ROOT).parts
            if (
                path.is_file()
                and path.suffix in SUFFIXES
                and not SKIP_PARTS.intersection(relative)
                and not any(part.endswith('.egg-info') for part in relative)
            ):
                files.append(path)
    return files


def test_the_scan_sees_the_project():
    names = {p.relative_to(ROOT).as_posix() for p in project_files()}
    assert {
        'README.md',
        'torchio_ramp/__init__.py',
        'docs/index.md',
        '.ci/run',
    } <= names


@pytest.mark.parametrize('what', sorted(FORBIDDEN))
def test_no_outside_references(what):
    pattern = FORBIDDEN[what]
    found = []
    for path in project_files():
        relative = path.relative_to(ROOT)
        if path == Path(__file__).resolve():
            continue
        if what in TESTS_MAY_NAME and relative.parts[0] == 'tests':
            continue
        text = path.read_text(encoding='utf-8', errors='replace')
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                found.append(f'{relative}:{number}: {line.strip()[:100]}')
    assert not found, f'{what} in:\n' + '\n'.join(found)
