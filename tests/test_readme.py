"""The README stays true: set-up commands, the CI command and its links.

The operator tables moved to docs/augmentation.md (checked in tests/test_docs.py).
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text(encoding='utf-8')


def _setup_block() -> list[str]:
    match = re.search(r'## Set-up\n.*?```bash\n(.*?)```', README, re.DOTALL)
    assert match, 'README needs a "## Set-up" section with a bash block'
    return [line for line in match.group(1).splitlines() if line and line[0] != '#']


CPU_TORCH = (
    'pip install torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu'
)
"""PyTorch's CPU build where its index is reached, else the package index's torch."""


def test_set_up_is_two_commands_and_ci_runs_the_readme_test_command():
    install_and_demo, tests = _setup_block()
    assert 'pip install torch==2.13.0' in install_and_demo
    assert 'examples/quickstart.py' in install_and_demo
    ci_commands = (ROOT / '.ci' / 'run').read_text().strip().splitlines()
    assert ci_commands[-1] == tests


def test_ci_installs_exactly_what_the_readme_installs():
    install_and_demo, _ = _setup_block()
    torch_line, package_line, demo = install_and_demo.split(' && ')
    assert torch_line == CPU_TORCH
    assert package_line == "pip install -c .ci/constraints.txt -e '.[all]'"
    assert demo == 'python examples/quickstart.py'
    ci = (ROOT / '.ci' / 'run').read_text().splitlines()
    quiet = [x.replace('python -m pip install --quiet', 'pip install') for x in ci]
    assert torch_line in quiet and package_line in quiet
    assert 'not on the Python package index' in README  # where it comes from


def test_the_all_extra_is_every_other_extra():
    config = configparser.ConfigParser()
    config.read(ROOT / 'setup.cfg', encoding='utf-8')
    extras = config['options.extras_require']
    (requirement,) = extras['all'].split()
    named = re.fullmatch(r'torchio-ramp\[([a-z,]+)\]', requirement)
    assert named, requirement
    assert sorted(named.group(1).split(',')) == sorted(set(extras) - {'all'})


def test_every_heavy_entry_names_existing_tests():
    sys.path.insert(0, str(ROOT))
    try:
        from conftest import HEAVY
    finally:
        sys.path.remove(str(ROOT))
    for prefix, why in HEAVY.items():
        path, _, name = prefix.partition('::')
        assert (ROOT / path).is_file(), prefix
        assert not name or f'def {name}' in (ROOT / path).read_text(), prefix
        assert why, prefix
    development = (ROOT / 'docs' / 'development.md').read_text(encoding='utf-8')
    assert 'python -m pytest -q -m "not heavy"' in development
    assert '-m "not' in README and 'heavy"' in README


def test_linked_files_exist():
    targets = re.findall(r'\]\(((?:docs|examples|benchmarks|tests)/[^)#]+)', README)
    assert any(target.startswith('docs/') for target in targets)
    for target in targets:
        assert (ROOT / target).exists(), target


def test_readme_stays_short():
    # also the package's long description: what a visitor needs, the rest in docs/
    assert len(README.encode('utf-8')) < 12_000
