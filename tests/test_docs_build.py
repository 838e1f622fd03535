"""The documentation site: built with warnings as errors, read in headless Chromium.

The site is built once (CI installs ``.[docs]``); the tests read its HTML: the
generated references, options as typed, the navigation's reading order, every
figure shown, and, in Chromium at a desktop and a phone width, code blocks
that fit their column and no Markdown left unrendered.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('sphinx')
pytest.importorskip('myst_parser')
pytest.importorskip('sphinx_click')
pytest.importorskip('furo')

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / 'docs' / 'conf.py').is_file():  # e.g. an unpacked sdist
    pytest.skip('the documentation sources are not here', allow_module_level=True)
DOCS = ROOT / 'docs'
CHROMIUM = Path('/usr/bin/chromium')
TOCTREE = re.compile(r'^```\{toctree\}\n(?P<body>.*?)^```$', re.MULTILINE | re.DOTALL)


@pytest.fixture(scope='module')
def site(tmp_path_factory) -> Path:
    """The site, built with warnings as errors."""
    out = tmp_path_factory.mktemp('site')
    command = [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q']
    command += ['-b', 'html', '-d', str(out / 'doctrees')]
    command += [str(DOCS), str(out / 'html')]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr + done.stdout
    return out / 'html'


def text_of(page: Path) -> str:
    """The visible text of a built page (tags removed, entities decoded)."""
    body = re.sub(r'<(script|style)\b.*?</\1>', '', page.read_text(), flags=re.S)
    return html.unescape(re.sub(r'<[^>]+>', '', body))


def test_sphinx_site_builds_without_warnings(site):
    # the API and CLI references are generated, not empty pages
    api = (site / 'api.html').read_text(encoding='utf-8')
    assert 'id="torchio_ramp.RampCorrupt"' in api
    assert 'id="torchio_ramp.kernels.gaussian_noise"' in api
    text = text_of(site / 'cli.html')
    usages = ('ramp-prep totalseg [OPTIONS] SRC OUT', 'ramp-stress run [OPTIONS]')
    for usage in (*usages, 'ramp-train [OPTIONS]'):
        assert usage in text
    assert '--layout' in text and '--families' in text


def test_options_and_defaults_read_as_typed(site):
    cli = (site / 'cli.html').read_text(encoding='utf-8')
    text = text_of(site / 'cli.html')
    assert '``' not in text and "'ramp'" not in text  # no RST or repr left over
    # Defaults are inline code as typed: ramp, 0.7,0.15,0.15, 42.
    for value in ('ramp', '0.7,0.15,0.15', '42'):
        assert f'<span class="pre">{value}</span></code>' in cli, value
    assert '**Required**' not in text and '<strong>Required</strong>' in cli
    # No smart quotes or dashes: every --option of the sources appears as typed.
    sources = '\n'.join(p.read_text(encoding='utf-8') for p in DOCS.glob('*.md'))
    options = set(re.findall(r'(?<![\w-])--[a-z][a-z0-9-]+', sources))
    assert {'--fractions', '--release-split', '--model'} <= options
    built = '\n'.join(text_of(p) for p in site.glob('*.html'))
    for option in sorted(options):
        assert option in built, option
    dashed = set(re.findall('\u2013[a-z][a-z-]+', built))  # --fractions as –fractions
    assert dashed <= set(re.findall('\u2013[a-z][a-z-]+', sources)), dashed
    assert not re.search('[\u2018\u2019\u201c\u201d]', built)  # curly quotes


def contents_order() -> list[tuple[str, list[str]]]:
    """(caption, pages) of each toctree of the index, in order."""
    index = (DOCS / 'index.md').read_text(encoding='utf-8')
    sections = []
    for match in TOCTREE.finditer(index):
        lines = [x.strip() for x in match['body'].splitlines() if x.strip()]
        caption = next(x for x in lines if x.startswith(':caption:'))
        pages = [x for x in lines if not x.startswith(':')]
        sections.append((caption.removeprefix(':caption:').strip(), pages))
    return sections


def test_navigation_lists_every_page_in_reading_order(site):
    sections = contents_order()
    captions = [caption for caption, _ in sections]
    assert captions[0] == 'Start here' and captions[-1] == 'Reference'
    pages = [page for _, names in sections for page in names]
    assert pages[:3] == ['getting-started', 'installation', 'first-real-ct']
    assert len(set(pages)) == len(pages)
    nav = (site / 'index.html').read_text(encoding='utf-8')
    tree = nav[nav.index('class="sidebar-tree"') :]
    tree = tree[: tree.index('</div>')]
    linked = re.findall(r'class="reference internal" href="([\w-]+)\.html"', tree)
    shown = [c for c in re.findall(r'<span class="caption-text">([^<]+)<', tree)]
    every = sorted(p.stem for p in DOCS.glob('*.md') if p.stem != 'index')
    listed = sorted(set(pages))
    # A page the index does not list yet still appears, last, under "More".
    extra = sorted(set(every) - set(listed))
    assert linked == pages + extra
    assert shown == captions + (['More'] if extra else [])


def test_every_figure_is_shown_and_every_image_exists(site):
    pages = {p.name: p.read_text(encoding='utf-8') for p in site.glob('*.html')}
    sources = {
        src
        for text in pages.values()
        for src in re.findall(r'<img[^>]+src="([^"]+)"', text)
    }
    for src in sources:
        assert (site / src).is_file(), src
    shown = {Path(src).name for src in sources}
    for figure in sorted((ROOT / 'examples' / 'figures').glob('*.png')):
        assert figure.name in shown, f'{figure.name} is on no page of the site'


PAGES = (
    'index',
    'getting-started',
    'installation',
    'first-real-ct',
    'cli',
    'deployment-gate',
    'ct-physics',
)
"""Pages read in Chromium: the navigation, the set-up commands, long output
lines, the option reference and the figures."""

WIDTHS = (1400, 390)
"""A desktop window and a phone, in CSS pixels."""

HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<pre id="__probe"></pre><script>
var PAGES = __PAGES__, WIDTHS = __WIDTHS__, frames = [];
PAGES.forEach(function (page) { WIDTHS.forEach(function (width) {
  var frame = document.createElement('iframe');
  frame.style.width = width + 'px'; frame.style.height = '800px';
  frame.src = page + '.html'; frame.dataset.page = page; frame.dataset.width = width;
  document.body.appendChild(frame); frames.push(frame);
}); });
window.addEventListener('load', function () {
  var outcome = frames.map(function (frame) {
    var doc = frame.contentDocument, view = frame.contentWindow;
    var article = doc.querySelector('article') || doc.body;
    var column = article.getBoundingClientRect();
    var wide = [];
    doc.querySelectorAll('pre').forEach(function (pre) {
      var box = pre.getBoundingClientRect();
      if (pre.scrollWidth > pre.clientWidth + 1 || box.right > column.right + 1) {
        wide.push(pre.textContent.slice(0, 50));
      }
    });
    var prose = article.cloneNode(true);
    prose.querySelectorAll('pre, code, script, style').forEach(function (e) {
      e.remove();
    });
    var markdown = prose.textContent.match(/```|\\]\\(|\\*\\*\\w|^#{1,6} /gm) || [];
    var broken = Array.prototype.filter.call(doc.images, function (image) {
      return !image.complete || image.naturalWidth === 0;
    });
    return {page: frame.dataset.page, width: +frame.dataset.width,
            viewport: view.innerWidth, scroll: doc.documentElement.scrollWidth,
            column: Math.round(column.width),
            blocks: doc.querySelectorAll('pre').length,
            wide: wide, markdown: markdown, images: doc.images.length,
            broken: broken.map(function (image) { return image.getAttribute('src'); })};
  });
  document.getElementById('__probe').textContent = JSON.stringify(outcome);
});
</script></body></html>
"""

BAD_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
<article><p>A literal ```fence``` and a [link](x.html) left as Markdown.</p>
<pre style="white-space: pre">{line}</pre><img src="missing.png"></article>
</body></html>
"""
"""A page with every fault the probe looks for (it can fail)."""


def measure(site: Path, pages: list[str], profile: Path) -> list[dict]:
    """Load ``pages`` in headless Chromium at each width; what the probe saw."""
    harness = site / 'probe-harness.html'
    page_list, width_list = json.dumps(pages), json.dumps(list(WIDTHS))
    text = HARNESS.replace('__PAGES__', page_list).replace('__WIDTHS__', width_list)
    harness.write_text(text, encoding='utf-8')
    command = [
        str(CHROMIUM), '--headless', '--no-sandbox', '--disable-gpu',
        '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', f'--user-data-dir={profile}',
        '--allow-file-access-from-files', '--hide-scrollbars',
        '--virtual-time-budget=30000', '--dump-dom', harness.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    match = re.search(r'<pre id="__probe">(.*?)</pre>', done.stdout, re.S)
    assert match and match.group(1), done.stderr[-2000:]
    return json.loads(html.unescape(match.group(1)))


@pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason='headless Chromium is not installed (apt-get install -y chromium)',
)
def test_pages_fit_a_desktop_and_a_phone_in_chromium(site, tmp_path):
    (site / 'probe-bad.html').write_text(BAD_PAGE.format(line='x' * 400))
    outcome = measure(site, [*PAGES, 'probe-bad'], tmp_path / 'profile')
    seen = {(o['page'], o['width']): o for o in outcome}
    assert len(seen) == len(PAGES) * len(WIDTHS) + len(WIDTHS)
    for (page, width), o in seen.items():
        if page == 'probe-bad':  # the probe sees each fault
            assert o['wide'] and o['broken'] == ['missing.png']
            assert sorted(o['markdown']) == sorted(['```', '```', '](']), o
            continue
        where = f'{page}.html at {width} px'
        assert o['viewport'] == width, where
        assert o['wide'] == [], f'{where}: code wider than its column: {o["wide"]}'
        assert o['scroll'] <= width, f'{where}: the page scrolls sideways'
        assert o['markdown'] == [], f'{where}: Markdown shown as text: {o["markdown"]}'
        assert o['broken'] == [], f'{where}: images not shown: {o["broken"]}'
    # The text column uses a desktop window (furo alone keeps it near 640 px).
    assert seen['getting-started', 1400]['column'] >= 800
    assert seen['getting-started', 390]['column'] >= 340
    assert seen['getting-started', 1400]['blocks'] >= 4
    assert seen['deployment-gate', 390]['images'] == 2
    assert seen['ct-physics', 1400]['images'] == 1
