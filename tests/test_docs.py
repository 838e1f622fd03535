"""Every ``python`` and ``bash`` block of README.md and docs/*.md runs as written.

Each page runs in its own temporary folder, its blocks in document order: python
blocks in one namespace per page (in this process), bash blocks with ``bash -e``
in a subprocess. The folder holds SYNTHETIC stand-ins of the two public datasets
in their release layouts (``ramp-prep synth``), under the names the pages use
(``Totalsegmentator_dataset_v201``, ``AbdomenCT-1K``), ``$nnUNet_raw`` points into
it, and ``examples/`` links to the repository's. A block that cannot run here (a
real dataset, a GPU, hours of training) is preceded by the line
``<!-- not-run: REASON -->``, and the reason must say why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import torchio_ramp as tr
from ramp_prep.synth import write_synthetic
from torchio_ramp.families import PAPER_FAMILIES
from torchio_ramp.families import severity_table

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / 'docs' / 'conf.py').is_file():  # e.g. an unpacked sdist
    pytest.skip('the documentation sources are not here', allow_module_level=True)
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
RUN_LANGUAGES = ('python', 'bash')

FENCE = re.compile(
    r'^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)\n'
    r'(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$',
    re.MULTILINE | re.DOTALL,
)
NOT_RUN = re.compile(r'^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$')

STAND_INS = {
    'Totalsegmentator_dataset_v201': ('totalseg', 8),
    'AbdomenCT-1K': ('abdomenct1k', 6),
    'totalseg-example': ('totalseg', 2),
}
"""Phantom folders (layout, subjects) named like the real releases the pages
convert; written as ``ramp-prep synth OUT --layout L --subjects N`` would."""

RELEASE_SPLITS = {
    'Totalsegmentator_dataset_v201': ['train'] * 5 + ['val', 'test', 'test'],
    'totalseg-example': ['train', 'test'],
}
"""The ``split`` column the TotalSegmentator stand-ins' ``meta.csv`` gives, in
id order, as the release's does (``--release-split``)."""

REAL_EXAMPLE = ROOT.parent / 'shared' / 'data' / 'totalseg-example'
"""Two real CTs in the TotalSegmentator layout (``../shared`` beside the checkout):
``totalseg-example`` is a copy of them where present (their ``meta.csv`` gives the
same split), else phantoms."""


OPTIONAL_PACKAGES = {'monai', 'onnx', 'onnxruntime', 'nnunetv2', 'matplotlib'}
"""Packages of the extras: a page that imports one is skipped where it is absent
(CI installs every extra, so there the page runs)."""


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    not_run: str | None

    def __str__(self) -> str:
        return f'{self.page.relative_to(ROOT)}:{self.line} ({self.language})'


def code_blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with their ``not-run`` reasons."""
    text = page.read_text(encoding='utf-8')
    blocks = []
    for match in FENCE.finditer(text):
        words = match['info'].strip().split()
        language = words[0] if words else ''
        line = text.count('\n', 0, match.start()) + 1
        before = [x for x in text[: match.start()].splitlines() if x.strip()]
        marker = NOT_RUN.match(before[-1]) if before else None
        blocks.append(
            Block(
                page=page,
                line=line,
                language=language,
                code=textwrap.dedent(match['body']),
                not_run=marker['reason'].strip() if marker else None,
            )
        )
    return blocks


def runnable(page: Path) -> list[Block]:
    return [
        block
        for block in code_blocks(page)
        if block.language in RUN_LANGUAGES and block.not_run is None
    ]


@pytest.fixture(scope='session')
def stand_ins(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('stand-ins')
    for name, options in STAND_INS.items():
        if name == 'totalseg-example' and (REAL_EXAMPLE / 'meta.csv').is_file():
            shutil.copytree(REAL_EXAMPLE, folder / name)
            continue
        write_synthetic(folder / name, *options)
    for name, splits in RELEASE_SPLITS.items():
        meta = folder / name / 'meta.csv'
        if (folder / name / 'SYNTHETIC.txt').is_file():
            rows = [row.rsplit(';', 1)[0] for row in meta.read_text().splitlines()]
            pairs = zip(rows, ['split', *splits], strict=True)
            meta.write_text(''.join(f'{row};{split}\n' for row, split in pairs))
    return folder


def _environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'
    env['nnUNet_raw'] = str(workdir / 'nnUNet_raw')
    env['OMP_NUM_THREADS'] = '1'
    env['MPLBACKEND'] = 'Agg'
    env.pop('RANK', None)
    env.pop('WORLD_SIZE', None)
    return env


@pytest.mark.parametrize('page', PAGES, ids=lambda page: page.name)
def test_not_run_markers_give_a_reason(page):
    lines = page.read_text(encoding='utf-8').splitlines()
    markers = [x for x in lines if x.lstrip().startswith('<!--') and 'not-run' in x]
    for line in markers:
        marker = NOT_RUN.match(line)
        assert marker, f'{page.name}: malformed marker {line!r}'
        assert marker['reason'].strip(), f'{page.name}: {line!r} gives no reason'
    marked = [b for b in code_blocks(page) if b.not_run is not None]
    assert len(markers) == len(marked), (
        f'{page.name}: a not-run marker precedes no block'
    )
    for block in marked:
        assert block.language in RUN_LANGUAGES, (
            f'{block}: only python/bash need markers'
        )


@pytest.mark.parametrize(
    'page', [p for p in PAGES if runnable(p)], ids=lambda page: page.name
)
def test_code_blocks_run(page, stand_ins, tmp_path, monkeypatch):
    for name in STAND_INS:
        shutil.copytree(stand_ins / name, tmp_path / name)
    (tmp_path / 'nnUNet_raw').mkdir()
    (tmp_path / 'examples').symlink_to(ROOT / 'examples')
    env = _environment(tmp_path)
    for key in ('nnUNet_raw', 'MPLBACKEND'):
        monkeypatch.setenv(key, env[key])
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {'__name__': '__docs__'}
    for block in runnable(page):
        if block.language == 'python':
            try:
                exec(compile(block.code, str(block), 'exec'), namespace)
            except ModuleNotFoundError as error:
                package = (error.name or '').partition('.')[0]
                if package not in OPTIONAL_PACKAGES:
                    raise
                pytest.skip(f'{block} needs {package} (an extra CI installs)')
            except Exception as error:
                raise AssertionError(f'{block} failed:\n{block.code}') from error
        else:
            done = subprocess.run(
                ['bash', '-e', '-o', 'pipefail', '-c', block.code],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, (
                f'{block} exited {done.returncode}:\n{block.code}\n'
                f'--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}'
            )


# The augmentation page's tables are the registries' for the paper's pool (Table 2);
# families registered beyond it are documented by their own docstrings.

AUGMENTATION = (ROOT / 'docs' / 'augmentation.md').read_text(encoding='utf-8')
DOCS_TEXT = '\n'.join(page.read_text(encoding='utf-8') for page in PAGES)


@pytest.mark.parametrize('name', sorted(set(tr.__all__) - {'FAMILIES'}))
def test_every_export_is_documented(name):
    pattern = rf'`(?:torchio_ramp\.)?{name}\b|\b{name}\('
    assert re.search(pattern, DOCS_TEXT), f'{name} is exported but not in the docs'


def _row(name: str) -> str:
    rows = [line for line in AUGMENTATION.splitlines() if f'(`{name}`)' in line]
    assert len(rows) == 1, f'docs/augmentation.md needs one table row for {name}'
    return rows[0]


@pytest.mark.parametrize('family', PAPER_FAMILIES)
def test_family_rows_match_the_registry(family):
    row = _row(family)
    for parameter in tr.FAMILIES[family].parameters:
        assert f'`{parameter.name}` {parameter.low:g}–{parameter.high:g}' in row


@pytest.mark.parametrize('operation', tr.INTENSITY_OPERATIONS)
def test_intensity_rows_match_the_registry(operation):
    operator = tr.INTENSITY_OPERATIONS[operation]
    row = _row(operation)
    assert f'| {operator.probability} |' in row
    for parameter in operator.parameters:
        assert f'`{parameter.name}` {parameter.low:g}–{parameter.high:g}' in row


def test_severity_table_matches_the_registry():
    entries = [e for e in severity_table() if e['family'] in PAPER_FAMILIES]
    assert {e['family'] for e in entries} == set(PAPER_FAMILIES)
    for entry in entries:
        values = ' | '.join(f'{entry[level]:g}' for level in tr.SEVERITY_LEVELS)
        expected = f'| `{entry["family"]}` | `{entry["parameter"]}` | {values} |'
        assert expected in AUGMENTATION


def test_spatial_and_sampler_rows_match_the_code():
    flip, elastic = tr.RampSpatial().transforms
    assert (flip.flip_probability, elastic.probability) == (0.5, 0.15)
    assert (elastic.alpha_range, elastic.sigma_range) == ((80, 80), (10, 10))
    row = [line for line in AUGMENTATION.splitlines() if '| `RampSpatial()` |' in line]
    assert row, 'docs/augmentation.md needs the RampSpatial row'
    assert 'flip p = 0.5 per axis, elastic p = 0.15, `alpha=80`, `sigma=10`' in row[0]
    corrupt = tr.RampCorrupt()
    assert (corrupt.probability, corrupt.num_corruptions) == (0.85, (2, 4))
    assert '| `RampCorrupt` | `p=0.85`, `num_corruptions=(2, 4)`' in AUGMENTATION
