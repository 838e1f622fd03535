"""The quickstart runs end to end in its smoke mode and writes its report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from click.testing import CliRunner

from torchio_ramp.families import PAPER_FAMILIES
from torchio_ramp.families import severity_grid

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


def load_quickstart(monkeypatch):
    spec = importlib.util.spec_from_file_location(
        'quickstart', EXAMPLES / 'quickstart.py'
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def test_quickstart_smoke_mode_writes_the_comparison_report(tmp_path, monkeypatch):
    quickstart = load_quickstart(monkeypatch)
    out = tmp_path / 'quickstart'
    monkeypatch.setenv(quickstart.SMOKE_VARIABLE, '1')  # as CI would set it
    result = CliRunner().invoke(quickstart.main, ['--out', str(out), '--no-progress'])
    assert result.exit_code == 0, result.output
    assert '(smoke mode)' in result.output

    size = quickstart.SIZES['smoke']
    for strategy in ('baseline', 'ramp'):
        run = out / 'runs' / strategy
        assert (run / 'best.pt').is_file()
        config = json.loads((run / 'config.json').read_text())
        assert config['strategy'] == strategy and config['synthetic'] is True
        summary = json.loads((out / 'stress' / strategy / 'summary.json').read_text())
        assert summary['complete'] and summary['synthetic']
        assert summary['settings'] == len(severity_grid())  # the paper's full grid
        assert summary['subjects'] == 2  # 7 phantoms: 4 train, 1 val, 2 test
        assert summary['model'] == strategy
    assert size.subjects == 7

    report = out / 'report' / 'report.md'
    text = report.read_text()
    assert 'SYNTHETIC DATA' in text and '`baseline`' in text and '`ramp`' in text
    figures = sorted(p.name for p in report.parent.glob('*.png'))
    strips = [name for name in figures if name.startswith('worst-')]
    assert len(figures) - len(strips) == 4, figures
    assert len(strips) == 2 * len(PAPER_FAMILIES)  # one per model and family
    assert (report.parent / 'report.html').is_file()
    assert f'Report: {report}' in result.output
    # The headline table printed at the end, one row per model
    settings = len(severity_grid())
    headline = f'SYNTHETIC phantom results (2 test subjects, clean + {settings}'
    assert headline in result.output
    assert '| baseline | ' in result.output and '| ramp | ' in result.output

    # A second run skips what is done: no epoch is trained again
    again = CliRunner().invoke(quickstart.main, ['--out', str(out), '--no-progress'])
    assert again.exit_code == 0, again.output
    assert 'epoch 1/1' not in again.output
    assert '0 subject(s) evaluated, 2 already done' in again.output
