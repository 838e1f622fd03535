"""The README stays true: set-up commands, CI command and the operator tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import torchio_ramp as tr
from torchio_ramp.families import severity_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text(encoding='utf-8')


def _setup_block() -> list[str]:
    match = re.search(r'## Set-up\n.*?```bash\n(.*?)```', README, re.DOTALL)
    assert match, 'README needs a "## Set-up" section with a bash block'
    return [line for line in match.group(1).splitlines() if line and line[0] != '#']


def test_set_up_is_two_commands_and_ci_runs_the_readme_test_command():
    install_and_demo, tests = _setup_block()
    assert 'pip install torch==2.13.0' in install_and_demo
    assert 'examples/quickstart.py' in install_and_demo
    ci_commands = (ROOT / '.ci' / 'run').read_text().strip().splitlines()
    assert ci_commands[-1] == tests


@pytest.mark.parametrize('name', sorted(set(tr.__all__) - {'FAMILIES'}))
def test_every_export_is_documented(name):
    pattern = rf'`(?:torchio_ramp\.)?{name}\b|\b{name}\('
    assert re.search(pattern, README), f'{name} is exported but not in README.md'


@pytest.mark.parametrize('family', tr.FAMILY_NAMES)
def test_family_rows_match_the_registry(family):
    operator = tr.FAMILIES[family]
    (row,) = [line for line in README.splitlines() if f'(`{family}`)' in line]
    for parameter in operator.parameters:
        assert f'`{parameter.name}` {parameter.low:g}–{parameter.high:g}' in row


@pytest.mark.parametrize('operation', tr.INTENSITY_OPERATIONS)
def test_intensity_rows_match_the_registry(operation):
    operator = tr.INTENSITY_OPERATIONS[operation]
    (row,) = [line for line in README.splitlines() if f'(`{operation}`)' in line]
    assert f'| {operator.probability} |' in row
    for parameter in operator.parameters:
        assert f'`{parameter.name}` {parameter.low:g}–{parameter.high:g}' in row


def test_severity_table_matches_the_registry():
    for entry in severity_table():
        values = ' | '.join(f'{entry[level]:g}' for level in tr.SEVERITY_LEVELS)
        expected = f'| `{entry["family"]}` | `{entry["parameter"]}` | {values} |'
        assert expected in README


def test_linked_files_exist():
    for target in re.findall(r'\]\(((?:examples|benchmarks|tests)/[^)#]+)\)', README):
        assert (ROOT / target).exists(), target
