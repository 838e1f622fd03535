"""Smoke test of ``benchmarks/surface_metrics.py`` on a small volume.

No timing is asserted: the report must be well formed, name the load, and its
values must agree with MONAI's (the false-positive liver island the benchmark
adds must be counted).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROWS = ('torchio-ramp NSD + HD95', 'false-positive components', 'MONAI NSD + HD95')


@pytest.fixture(scope='module')
def report() -> str:
    pytest.importorskip('monai')
    command = [
        sys.executable,
        'benchmarks/surface_metrics.py',
        *('--shape', '40', '36', '20', '--rounds', '1'),
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _rows(report: str, title: str) -> list[list[str]]:
    section = report.split(f'### {title}', 1)[1].split('\n### ', 1)[0]
    lines = [line for line in section.splitlines() if line.startswith('|')]
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in lines[2:]]


def test_report_states_the_load_and_the_volume(report):
    assert re.search(
        r'^Load average: [\d.]+, [\d.]+, [\d.]+ at the start', report, re.M
    )
    assert 'Volume: 40 x 36 x 20 voxels of 0.8 x 0.8 x 3 mm' in report


def test_time_table_has_every_implementation_with_ratios(report):
    rows = {row[0]: row for row in _rows(report, 'Time per volume')}
    assert tuple(rows) == ROWS
    for _, seconds, ratio in rows.values():
        assert float(seconds) >= 0 and float(ratio) >= 0
    assert rows['MONAI NSD + HD95'][2] == '1.00'


def test_values_agree_with_monai_and_count_the_island(report):
    rows = _rows(report, 'Values')
    assert [row[0] for row in rows] == ['liver', 'spleen', 'kidney', 'heart', 'colon']
    for _, nsd, hd95, count, volume, monai_nsd, monai_hd95 in rows:
        assert 0 <= float(nsd) <= 1 and float(hd95) >= 0
        assert abs(float(nsd) - float(monai_nsd)) <= 1e-6
        assert abs(float(hd95) - float(monai_hd95)) <= 1e-6 * max(1.0, float(hd95))
        assert int(count) >= 0 and float(volume) >= 0
    liver = rows[0]
    assert int(liver[3]) == 1 and float(liver[4]) > 0
    match = re.search(
        r'Largest difference from MONAI: NSD (\S+), HD95 (\S+) mm', report
    )
    assert match and float(match[1]) <= 1e-6
