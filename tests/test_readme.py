"""The README stays true: set-up commands, the CI command and its links.

The operator tables moved to docs/augmentation.md (checked in tests/test_docs.py).
"""

from __future__ import annotations

import re
from pathlib import Path

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


def test_linked_files_exist():
    targets = re.findall(r'\]\(((?:docs|examples|benchmarks|tests)/[^)#]+)', README)
    assert any(target.startswith('docs/') for target in targets)
    for target in targets:
        assert (ROOT / target).exists(), target


def test_readme_stays_short():
    # also the package's long description: what a visitor needs, the rest in docs/
    assert len(README.encode('utf-8')) < 12_000
