"""The house: which part of the package may import which, read from the code.

Every module of ``torchio_ramp`` and ``prep`` (installed as ``ramp_prep``)
belongs to a room (:data:`ROOMS`); a room may import only the rooms that
:data:`ALLOWED` lists for it. The imports are read with ``ast`` (module-level
and function-level alike, so a lazy import is an edge too). The tests fail on
an import circle, on an import that :data:`ALLOWED` does not list, and on the
three rules the layout is built on: ``training/`` and ``nnunet/`` never import
``stress/``, and nothing in ``torchio_ramp`` imports ``prep``. A new edge is
therefore a visible decision: one entry in :data:`ALLOWED`.

Floors, lowest first: ground (sizes, devices, files, labels), kernels, the
registry (operators, families, CT physics), transforms, pipelines (and the
package's exports), then the shared evaluation floor (metrics, inference,
model files, models) with the data it reads (datasets, integrity, phantoms)
and the tools' options, then the wings: training, nnunet, monai, stress.
``prep`` stands beside ``torchio_ramp`` and uses only its lower floors.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {'torchio_ramp': 'torchio_ramp', 'prep': 'ramp_prep'}
"""Folder -> import name."""

ROOMS: dict[str, tuple[str, ...]] = {
    'ground': (
        'torchio_ramp.arguments',
        'torchio_ramp.files',
        'torchio_ramp.labels',
    ),
    'kernels': ('torchio_ramp.kernels',),
    'registry': (
        'torchio_ramp.operators',
        'torchio_ramp.families',
        'torchio_ramp.ct_physics',
        'torchio_ramp.intensity_ops',
    ),
    'transforms': ('torchio_ramp.transforms',),
    'pipelines': ('torchio_ramp.pipelines', 'torchio_ramp.batch'),
    'exports': ('torchio_ramp.__init__',),
    'data': (
        'torchio_ramp.integrity',
        'torchio_ramp.phantoms',
        'torchio_ramp.datasets',
    ),
    'tool options': ('torchio_ramp.cli_options',),
    'evaluation': (
        'torchio_ramp.metrics',
        'torchio_ramp.inference',
        'torchio_ramp.model_files',
        'torchio_ramp.models',
    ),
    'training': ('torchio_ramp.training',),
    'nnunet': ('torchio_ramp.nnunet',),
    'monai': ('torchio_ramp.monai',),
    'stress': ('torchio_ramp.stress',),
    'prep': ('ramp_prep',),
}
"""Room -> the modules in it (a name and everything under it); the package's
own ``__init__`` is spelt ``torchio_ramp.__init__``."""

_LOW = {'ground', 'kernels', 'registry', 'transforms', 'pipelines'}

ALLOWED: dict[str, set[str]] = {
    'ground': set(),
    'kernels': set(),
    'registry': {'ground', 'kernels'},
    'transforms': {'ground', 'kernels', 'registry'},
    'pipelines': {'ground', 'kernels', 'registry', 'transforms'},
    'exports': {'registry', 'transforms', 'pipelines'},
    'data': {'ground'},
    'tool options': {'ground', 'registry'},
    'evaluation': {'ground'},
    'training': {*_LOW, 'exports', 'data', 'tool options', 'evaluation'},
    'nnunet': {*_LOW, 'evaluation'},
    'monai': {*_LOW},
    'stress': {*_LOW, 'exports', 'data', 'tool options', 'evaluation', 'nnunet'},
    'prep': {'ground', 'data', 'tool options'},
}
"""Room -> the rooms it may import (besides itself)."""


def module_files() -> dict[str, tuple[Path, bool]]:
    """Import name -> (file, is a package ``__init__``) of every module."""
    found = {}
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob('*.py')):
            parts = [name, *path.relative_to(ROOT / folder).with_suffix('').parts]
            is_package = parts[-1] == '__init__'
            found['.'.join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _canonical(name: str) -> str:
    """``prep.x`` (the checkout alias) is ``ramp_prep.x``."""
    if name == 'prep' or name.startswith('prep.'):
        return 'ramp_prep' + name[len('prep') :]
    return name


def imports(
    module: str, source: str, is_package: bool, known: Iterable[str]
) -> set[str]:
    """The modules of ``known`` that ``source`` imports (anywhere in the file).

    ``from package import name`` is an import of the submodule ``name`` when
    there is one, else of the package.
    """
    known = set(known)
    package = module.split('.') if is_package else module.split('.')[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [_canonical(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                origin = '.'.join([*base, *([node.module] if node.module else [])])
            else:
                origin = _canonical(node.module or '')
            targets = []
            for alias in node.names:
                submodule = f'{origin}.{alias.name}'
                targets.append(submodule if submodule in known else origin)
        else:
            continue
        for target in targets:
            # the deepest known module named by the import
            while target and target not in known:
                target = target.rpartition('.')[0]
            if target and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    files = module_files()
    return {
        module: imports(module, path.read_text(encoding='utf-8'), is_package, files)
        for module, (path, is_package) in files.items()
    }


def room_of(module: str) -> str | None:
    """The room of a module (the longest matching name), or ``None``."""
    name = 'torchio_ramp.__init__' if module == 'torchio_ramp' else module
    best, length = None, -1
    for room, prefixes in ROOMS.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + '.')) and len(
                prefix
            ) > length:
                best, length = room, len(prefix)
    return best


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def forbidden_edges(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """``'a -> b (room -> room)'`` for every import :data:`ALLOWED` does not list."""
    problems = []
    for module, targets in sorted(graph.items()):
        source = room_of(module)
        for target in sorted(targets):
            room = room_of(target)
            if room != source and room not in ALLOWED.get(source, set()):
                problems.append(f'{module} -> {target} ({source} -> {room})')
    return problems


@pytest.fixture(scope='module')
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_scan_sees_both_packages(graph):
    assert {'torchio_ramp', 'torchio_ramp.stress.runner', 'ramp_prep.cli'} <= set(graph)
    assert 'torchio_ramp.metrics' in graph['torchio_ramp.training.validation']
    assert 'torchio_ramp.labels' in graph['ramp_prep.convert']


def test_every_module_has_a_room(graph):
    homeless = [module for module in graph if room_of(module) is None]
    assert not homeless, f'place these modules in ROOMS: {homeless}'


def test_no_import_circle(graph):
    assert circles(graph) == []


def test_imports_follow_the_floors(graph):
    problems = forbidden_edges(graph)
    assert not problems, 'imports that ALLOWED does not list:\n' + '\n'.join(problems)


def test_the_allowed_rooms_form_floors():
    # No circle between rooms either: the rooms stack up into floors.
    assert circles(ALLOWED) == []
    assert set(ALLOWED) == set(ROOMS)


@pytest.mark.parametrize('wing', ['training', 'nnunet'])
def test_training_and_nnunet_never_import_the_stress_wing(graph, wing):
    assert 'stress' not in ALLOWED[wing]
    offending = [
        f'{module} -> {target}'
        for module, targets in graph.items()
        if room_of(module) == wing
        for target in targets
        if room_of(target) == 'stress'
    ]
    assert offending == []


def test_nothing_in_torchio_ramp_imports_prep(graph):
    assert all('prep' not in rooms for room, rooms in ALLOWED.items() if room != 'prep')
    offending = [
        f'{module} -> {target}'
        for module, targets in graph.items()
        if module.startswith('torchio_ramp')
        for target in targets
        if target.startswith('ramp_prep')
    ]
    assert offending == []


def test_prep_uses_only_lower_floors():
    assert ALLOWED['prep'] <= {'ground', 'data', 'tool options', 'evaluation'}


def test_the_checks_find_a_circle_and_an_upward_import():
    # A made-up package: the checks must catch what they are for.
    source = 'from ..stress.runner import execute\nfrom . import loop\n'
    known = {
        'torchio_ramp.training.loop',
        'torchio_ramp.training.validation',
        'torchio_ramp.stress.runner',
    }
    found = imports('torchio_ramp.training.validation', source, False, known)
    assert found == {'torchio_ramp.stress.runner', 'torchio_ramp.training.loop'}
    graph = {
        'torchio_ramp.training.validation': found,
        'torchio_ramp.training.loop': {'torchio_ramp.training.validation'},
    }
    assert circles(graph) == [
        ['torchio_ramp.training.loop', 'torchio_ramp.training.validation']
    ]
    assert forbidden_edges(graph) == [
        'torchio_ramp.training.validation -> torchio_ramp.stress.runner'
        ' (training -> stress)'
    ]
