"""The documentation site builds with warnings as errors (CI installs ``.[docs]``)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('sphinx')
pytest.importorskip('myst_parser')
pytest.importorskip('sphinx_click')

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / 'docs' / 'conf.py').is_file():  # e.g. an unpacked sdist
    pytest.skip('the documentation sources are not here', allow_module_level=True)


def test_sphinx_site_builds_without_warnings(tmp_path):
    command = [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q']
    command += ['-b', 'html', '-d', str(tmp_path / 'doctrees')]
    command += [str(ROOT / 'docs'), str(tmp_path / 'html')]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr + done.stdout
    site = tmp_path / 'html'
    # the API and CLI references are generated, not empty pages
    api = (site / 'api.html').read_text(encoding='utf-8')
    assert 'id="torchio_ramp.RampCorrupt"' in api
    assert 'id="torchio_ramp.kernels.gaussian_noise"' in api
    cli = (site / 'cli.html').read_text(encoding='utf-8')
    text = html.unescape(re.sub(r'<[^>]+>', '', cli))
    usages = ('ramp-prep totalseg [OPTIONS] SRC OUT', 'ramp-stress run [OPTIONS]')
    for usage in (*usages, 'ramp-train [OPTIONS]'):
        assert usage in text
    assert '--layout' in text and '--families' in text
