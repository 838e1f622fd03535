"""Failure pictures, report.html, and the page in a real (headless) browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.prep_fixtures import prepare_phantoms
from torchio_ramp.stress.cli import main
from torchio_ramp.stress.protocol import StressProtocol
from torchio_ramp.stress.report.html import to_html
from torchio_ramp.stress.runner import run_stress_test
from torchio_ramp.stress.worst import load_worst

CHROMIUM = Path('/usr/bin/chromium')
PROTOCOL = StressProtocol(families=['gaussian_noise', 'ghosting'], levels=[0.1, 0.25])
CENTRES = torch.tensor([0.2, 0.52, 0.5, 0.7, 0.48, 0.46]) + 0.0007
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'

# Test-only instrumentation injected into a copy of the page: it records
# resource errors (a broken <img>), uncaught errors and console errors or
# warnings, and after the load event lists the images that did not decode.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t.tagName ? 'resource ' + (t.src || t.href)
                                      : 'error ' + e.message);
}, true);
['error', 'warn'].forEach(function (k) {
  var original = console[k];
  console[k] = function () {
    var text = Array.prototype.join.call(arguments, ' ');
    window.__errors.push('console.' + k + ' ' + text);
    original.apply(console, arguments);
  };
});
window.addEventListener('load', function () {
  var broken = Array.prototype.filter.call(document.images, function (i) {
    return !i.complete || i.naturalWidth === 0;
  });
  var out = document.createElement('pre');
  out.id = '__probe';
  out.textContent = JSON.stringify({
    images: document.images.length,
    broken: broken.map(function (i) { return i.getAttribute('src'); }),
    errors: window.__errors, title: document.title,
    tables: document.querySelectorAll('table').length});
  document.body.appendChild(out);
});
</script>"""


def nearest_intensity(image: torch.Tensor) -> torch.Tensor:
    return (image[0, ..., None] - CENTRES).abs().argmin(-1)


def blurry(image: torch.Tensor) -> torch.Tensor:
    smooth = torch.nn.functional.avg_pool3d(image[None], 3, 1, 1)[0]
    return nearest_intensity(smooth)


def invoke(arguments, code=0):
    result = CliRunner().invoke(main, [str(a) for a in arguments])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope='module')
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('html')
    prepare_phantoms(root, 4, '24,24,20')
    folders = {}
    for name, predictor in (('sharp', nearest_intensity), ('blurry', blurry)):
        out = root / 'results' / name
        run_stress_test(predictor, root / 'prepared', out, protocol=PROTOCOL,
                        name=name, save_worst=2)  # fmt: skip
        folders[name] = out
    invoke(['gate', folders['sharp'], '--require', 'clean>=0.2', '--require',
            'family:ghosting>=0.99'], code=1)  # fmt: skip
    return folders


@pytest.fixture(scope='module')
def report(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('report')
    invoke(['report', runs['sharp'], runs['blurry'], '--out', out, '--resamples',
            200, '--spacing', '1.5,1.5,3'])  # fmt: skip
    return out


def test_worst_cases_are_bounded_and_complete(runs):
    for folder in runs.values():
        files = sorted((folder / 'worst').glob('*/*.npz'))
        assert {f.parent.name for f in files} == {'gaussian_noise', 'ghosting'}
        assert len(files) == 2 * 2  # 2 per family, of 4 subjects
        assert sum(f.stat().st_size for f in files) < 200_000
    found = load_worst(runs['sharp'])
    summary = json.loads((runs['sharp'] / 'summary.json').read_text())
    for family, entries in found.items():
        assert [e['score'] for e in entries] == sorted(e['score'] for e in entries)
        for entry in entries:
            assert entry['images'].shape == entry['predictions'].shape
            assert entry['images'].shape[0] == 1 + len(PROTOCOL.levels)
            assert entry['levels'].tolist() == [0.0, 0.1, 0.25]
            assert entry['label'].shape == entry['images'].shape[1:]
            assert entry['label'].any()  # the slice through the organs
            assert np.isclose(entry['score'], entry['dice'][1:].mean())
        # They are the worst: no other subject has a lower family mean.
        worst = max(e['score'] for e in entries)
        assert worst <= np.sort(_family_means(runs['sharp'], family))[1] + 1e-9
    assert summary['complete']


def _family_means(folder: Path, family: str) -> np.ndarray:
    from torchio_ramp.stress.store import load_results

    results = load_results(folder)
    columns = [j for j, s in enumerate(results.settings) if s.family == family]
    return results.subject_dice()[:, columns].mean(axis=1)


def test_save_worst_on_resume_and_cli_validation(runs, tmp_path):
    # A finished run resumed with --save-worst keeps the files it has.
    folder = tmp_path / 'sharp'
    shutil.copytree(runs['sharp'], folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob('*.npz'))
    data = json.loads((folder / 'results.json').read_text())['sessions'][0]
    run_stress_test(nearest_intensity, data['data'], folder, protocol=PROTOCOL,
                    name='sharp', save_worst=2)  # fmt: skip
    assert sorted(p.relative_to(folder) for p in folder.rglob('*.npz')) == before
    output = invoke(['run', '--model', 'x.pt2', '--data', tmp_path, '--out', tmp_path,
                     '--save-worst', '-1'], code=2)  # fmt: skip
    assert "Invalid value for '--save-worst'" in output


def test_report_html_is_self_contained(report):
    text = (report / 'report.html').read_text()
    markdown = (report / 'report.md').read_text()
    assert text.startswith('<!DOCTYPE html>')
    assert '<script' not in text and 'http://' not in text and 'https://' not in text
    assert '<style>' in text
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert len(sources) == 4 + 2 * 2  # 4 figures + 2 models x 2 families
    for source in sources:
        assert '/' not in source  # beside the page
        assert (report / source).read_bytes()[:8] == PNG_SIGNATURE
        assert f'({source})' in markdown  # report.md shows the same pictures
    # The gate verdict and the clinical units, in both.
    assert 'family:ghosting&gt;=0.99' in text
    assert 'family:ghosting>=0.99' in markdown
    for document in (text, markdown):
        assert 'Deployment gate' in document and 'sharp' in document
        assert 'Severity in clinical units' in document
        assert 'Failure pictures' in document
    assert '<td class="fail">' in text and '<td class="pass">' in text
    assert 'voxel spacing 1.5 x 1.5 x 3 mm' in markdown


def test_markdown_subset():
    html = to_html(
        '# A <b>\n\n> **Note** `x<y`\n\n- one\n- two\n\ntext *it* line\nnext\n\n'
        '| h | v |\n|---|---|\n| `a` | FAIL |\n\n![fig](f.png)'
    )
    assert html.splitlines() == [
        '<h1 id="a-b">A &lt;b&gt;</h1>',
        '<blockquote><strong>Note</strong> <code>x&lt;y</code></blockquote>',
        '<ul><li>one</li><li>two</li></ul>',
        '<p>text <em>it</em> line next</p>',
        '<table><thead><tr><th>h</th><th>v</th></tr></thead><tbody><tr><td>'
        '<code>a</code></td><td class="fail"><span class="fail">FAIL</span></td>'
        '</tr></tbody></table>',
        '<img src="f.png" alt="fig">',
    ]


def test_report_of_one_model_and_of_no_subject(runs, tmp_path):
    invoke(['report', runs['blurry'], '--out', tmp_path / 'one', '--resamples', 100,
            '--no-figures'])  # fmt: skip
    assert (tmp_path / 'one' / 'report.html').is_file()
    empty = tmp_path / 'empty'
    shutil.copytree(runs['blurry'], empty)
    csv = empty / 'results.csv'
    csv.write_text(csv.read_text().splitlines()[0] + '\n')
    output = invoke(['report', empty, '--out', tmp_path / 'none'], code=1)
    assert "the results of 'blurry'" in output and 'hold no subject' in output
    assert not (tmp_path / 'none' / 'report.html').exists()


def render(page: Path, profile: Path) -> dict:
    """Load ``page`` (instrumented copy) in headless Chromium; the probe's report."""
    probe = page.with_name(f'probe-{page.name}')
    probe.write_text(page.read_text().replace('<head>', '<head>\n' + PROBE, 1))
    command = [
        str(CHROMIUM), '--headless', '--no-sandbox', '--disable-gpu',
        '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', f'--user-data-dir={profile}',
        '--virtual-time-budget=10000', '--dump-dom', probe.as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="__probe">(.*?)</pre>', result.stdout, re.S)
    assert match, result.stderr[-2000:]
    return json.loads(match.group(1).replace('&quot;', '"').replace('&amp;', '&'))


@pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason='headless Chromium is not installed (apt-get install -y chromium)',
)
def test_report_renders_in_chromium(report, tmp_path):
    outcome = render(report / 'report.html', tmp_path / 'profile')
    assert outcome['title'] == 'Robustness stress test report'
    assert outcome['images'] == 8 and outcome['tables'] > 5
    assert outcome['broken'] == [] and outcome['errors'] == []
    # The probe does see a broken image (so the check above can fail).
    damaged = tmp_path / 'damaged'
    shutil.copytree(report, damaged)
    missing = sorted(damaged.glob('worst-*.png'))[0]
    missing.unlink()
    outcome = render(damaged / 'report.html', tmp_path / 'profile-2')
    assert outcome['broken'] == [missing.name]
    assert any(missing.name in error for error in outcome['errors'])
