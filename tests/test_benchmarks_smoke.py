"""Smoke test of the benchmark harness: it runs and prints well-formed tables.

Runs ``benchmarks/run.py --quick`` (32^3 patches, a few repeats; about 30 s on
two cores) and ``benchmarks/check_cuda.py`` on the CPU in subprocesses. No
timing is asserted: only the structure of the report and the values that do
not depend on the machine (every operator present, the plain-torch references
computing the same numbers as the kernels).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from torchio_ramp.families import FAMILY_NAMES
from torchio_ramp.intensity_ops import INTENSITY_OPERATIONS

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / 'benchmarks'
OPERATORS = [*FAMILY_NAMES, *INTENSITY_OPERATIONS, 'elastic', 'flip']
SECTIONS = [
    'Operators',
    'Peer transforms',
    'Where the time goes (operators)',
    'Reference costs',
    'Pipelines',
    'Where the time goes (pipelines)',
    'Thread scaling',
    'tio.Queue throughput',
    'Memory',
    'Elastic field vs the dense definition',
    'Targets',
]


def _run(*arguments: str, timeout: int = 300) -> str:
    completed = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def _tables(report: str) -> dict[str, list[dict[str, str]]]:
    """Each ``### section``'s first markdown table as a list of row dicts."""
    tables: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r'^### ', report, flags=re.MULTILINE)[1:]:
        title, _, body = block.partition('\n')
        lines = [line for line in body.splitlines() if line.startswith('|')]
        header = _cells(lines[0])
        separator = _cells(lines[1])
        assert len(separator) == len(header), title
        assert all(re.fullmatch(r':?-{3,}:?', cell) for cell in separator), title
        rows = []
        for line in lines[2:]:
            if line.startswith('| ---') or not line.strip():
                break
            cells = _cells(line)
            if len(cells) != len(header) and rows:
                break  # the next table of the same section
            assert len(cells) == len(header), (title, line)
            rows.append(dict(zip(header, cells, strict=True)))
        tables[title.strip()] = rows
    return tables


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip('|').split('|')]


def _milliseconds(cell: str) -> float:
    """A timing cell such as ``12.3`` or ``1234*`` (``-`` is NaN)."""
    if cell == '-':
        return math.nan
    value = float(cell.rstrip('*'))
    assert value >= 0
    return value


@pytest.fixture(scope='module')
def report() -> str:
    return _run('benchmarks/run.py', '--quick')


def test_report_has_every_section(report):
    assert report.startswith('## torchio-ramp benchmarks')
    assert 'Command: `python benchmarks/run.py --quick`' in report
    assert re.search(r'Load average \(1, 5, 15 min\): [\d.]+, [\d.]+, [\d.]+', report)
    assert re.search(
        r'Peer libraries: TorchIO [\d.]+, MONAI (not installed|[\d.]+),'
        r' batchgeneratorsv2 (not installed|[\d.]+)',
        report,
    )
    titles = [title.strip() for title in re.findall(r'^### (.+)$', report, re.M)]
    assert titles == SECTIONS


def test_operator_table(report):
    rows = _tables(report)['Operators']
    assert [row['operator'] for row in rows] == OPERATORS
    for row in rows:
        name = row['operator']
        transform = _milliseconds(row['ours transform ms †'])
        reference = _milliseconds(row['plain torch ms'])
        assert transform > 0 and reference > 0, name
        kernel = _milliseconds(row['ours kernel ms'])
        assert math.isnan(kernel) == (name == 'flip'), name
        # The plain-torch reference computes the same numbers as our kernel
        # (up to float32 rounding of filters and interpolation).
        assert float(row['max abs diff vs plain']) <= 1e-4, name
        if name != 'flip':
            assert re.fullmatch(r'\d+ \(\d+\.\d\)', row['new buffers (volumes)']), name
            assert 'float64' not in row['new buffers (volumes)'], name
    with_torchio = {row['operator'] for row in rows if row['TorchIO ms †'] != '-'}
    assert {'gaussian_noise', 'blur', 'bias_field', 'ghosting', 'downsample'} <= (
        with_torchio
    )
    assert {'elastic', 'gamma', 'flip'} <= with_torchio


def test_pipeline_queue_memory_and_targets(report):
    tables = _tables(report)
    pipelines = {row['pipeline (per patch)']: row for row in tables['Pipelines']}
    for name in ('RampCorrupt()', 'Ramp()'):
        assert _milliseconds(pipelines[name]['ours median ms']) > 0
        assert _milliseconds(pipelines[name]['TorchIO-built median ms']) > 0
        assert pipelines[name]['TorchIO-built / ours (median)'].endswith('x')
    queue = tables['tio.Queue throughput']
    assert [row['workers'] for row in queue] == ['1', '2']
    for row in queue:
        assert float(row['CTNormalize + Ramp() (patches/s)']) > 0
    memory = {row['operator']: row for row in tables['Memory']}
    assert set(memory) == {'Ramp()'}
    for name in ('RampCorrupt()', 'Ramp()'):
        floor = _milliseconds(pipelines[name]['torch.randn median ms'])
        ours = _milliseconds(pipelines[name]['ours median ms'])
        listed = float(pipelines[name]['ours / torch.randn (median)'].rstrip('x'))
        assert math.isclose(listed, ours / floor, rel_tol=0.05, abs_tol=0.5), name
    targets = [row['target'] for row in tables['Targets']]
    assert targets[0].startswith('every operator: ours / plain torch <= 1.5')
    assert 'RampCorrupt() median <= 2.5x torch.randn (same run)' in targets
    assert 'Ramp() median <= 4x torch.randn (same run)' in targets
    assert any(t.startswith('every transform <= 1x the fastest peer') for t in targets)
    assert any(target.startswith('BatchRampCorrupt on CUDA') for target in targets)


def test_peer_table_names_the_fastest_peer(report):
    rows = {row['operator']: row for row in _tables(report)['Peer transforms']}
    assert list(rows) == OPERATORS
    columns = ['TorchIO ms', 'MONAI ms', 'batchgeneratorsv2 ms']
    for name, row in rows.items():
        times = {c.split()[0]: _milliseconds(row[c]) for c in columns}
        present = {k: v for k, v in times.items() if not math.isnan(v)}
        if not present:
            assert row['fastest peer'] == 'none', name
            continue
        fastest = min(present, key=present.get)
        assert row['fastest peer'] == fastest, name
        ours = _milliseconds(row['ours transform ms'])
        listed = row['ours / fastest peer (target <= 1)']
        assert math.isclose(
            float(listed.rstrip('x')), ours / present[fastest], rel_tol=0.1
        ), name
    # TorchIO is always there; flip has a peer in every library
    assert rows['flip']['TorchIO ms'] != '-'


def test_time_breakdown_adds_up(report):
    tables = _tables(report)
    for row in tables['Where the time goes (operators)']:
        name = row['operator']
        if name == 'flip':
            assert row['kernel ms'] == '-'
            continue
        transform = _milliseconds(row['transform ms'])
        kernel = _milliseconds(row['kernel ms'])
        shell = float(row['shell ms (transform - kernel)'])
        # the cells are rounded to 3 significant digits
        slack = 0.01 + 0.01 * max(transform, kernel)
        assert math.isclose(shell, transform - kernel, rel_tol=0.1, abs_tol=slack)
        assert _milliseconds(row['random numbers ms']) >= 0
    shares = {
        row['operator']: row['random share of kernel']
        for row in tables['Where the time goes (operators)']
    }
    # Noise draws random numbers, a blur draws none
    assert shares['blur'] == '0%'
    assert shares['gaussian_noise'] != '0%'
    pipelines = tables['Where the time goes (pipelines)']
    assert {row['pipeline (per patch)'] for row in pipelines} >= {
        'RampCorrupt()',
        'Ramp()',
    }


def test_thread_scaling_rows(report):
    rows = _tables(report)['Thread scaling']
    assert [row['ours'] for row in rows][: len(OPERATORS)] == OPERATORS
    assert {'RampCorrupt()', 'Ramp()'} <= {row['ours'] for row in rows}
    for row in rows:
        assert _milliseconds(row['2 threads median ms']) > 0
        assert row['speed-up (median of paired calls)'].endswith('x')


def test_elastic_equivalence_rows(report):
    rows = _tables(report)['Elastic field vs the dense definition']
    statistics = [row['statistic'] for row in rows]
    assert statistics[0] == 'displacement std (voxels)'
    assert sum(name.startswith('power fraction') for name in statistics) == 5
    fractions = [
        float(row['ours (coarse grid)'].split()[0])
        for row in rows
        if row['statistic'].startswith('power fraction')
    ]
    assert math.isclose(sum(fractions), 1.0, rel_tol=1e-3)


def test_check_cuda_runs_on_the_cpu():
    output = _run(
        'benchmarks/check_cuda.py',
        '--device',
        'cpu',
        '--size',
        '16',
        '--check-size',
        '12',
        '--repeats',
        '2',
    )
    agreement = re.findall(
        r'^\| (\w+) \| ([\d.e+-]+) \| (\d+) \| (\w+) \|$', output, re.M
    )
    assert [row[0] for row in agreement] == OPERATORS[:-1]
    assert all(row[3] == 'yes' for row in agreement)
    assert 'WARNING: 12^3 fits in one elastic slab' in output
    assert 'Pipeline agrees within' in output
    timings = re.findall(
        r'^\| (BatchRampCorrupt\(.*?\)) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|',
        output,
        re.M,
    )
    assert [row[0] for row in timings] == [
        'BatchRampCorrupt()',
        "BatchRampCorrupt(generator_device='input')",
    ]
    assert re.search(r'(Target met by: |No generator variant meets)', output)


def test_check_cuda_skips_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip('CUDA is available: the script would run for real')
    output = _run('benchmarks/check_cuda.py')
    assert output.startswith('SKIPPED: CUDA is not available')


def test_breakdown_lists_torch_operators():
    output = _run('benchmarks/breakdown.py', 'gamma', '--size', '8', '--calls', '1')
    assert '| torch operator | calls | self CPU ms per call | share |' in output
    rows = re.findall(r'^\| aten::\w+ \| [\d.]+ \| [\d.]+ \| \d+% \|$', output, re.M)
    assert rows


def test_sliding_window_memory_compares_equal_logits():
    output = _run(
        'benchmarks/sliding_window.py',
        *('--shape', '32', '32', '24', '--classes', '3', '--patch', '16'),
    )
    assert '| blending | peak MiB above input | x input |' in output
    assert re.search(r'^\| one-channel \| \d+ \| [\d.]+ \|$', output, re.M)
    assert re.search(r'^\| full-channel \| \d+ \| [\d.]+ \|$', output, re.M)
    assert output.rstrip().endswith('largest absolute difference of the logits: 0')
