"""Sphinx configuration of the torchio-ramp documentation site.

Sphinx rather than MkDocs: the API reference is generated from the Google-style
docstrings by autodoc + napoleon (as TorchIO, whose conventions this project
follows, does), the command-line reference from the click commands themselves
by sphinx-click, and MyST lets every page stay plain Markdown that GitHub shows
as well. MkDocs would need mkdocstrings and a separate click plugin for the
same result, with no shared cross-referencing to TorchIO's Sphinx inventory.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import re

import torchio_ramp

project = 'torchio-ramp'
author = 'torchio-ramp contributors'
copyright = 'torchio-ramp contributors'
release = torchio_ramp.__version__
version = release

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'sphinx_click',
]

source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
root_doc = 'index'
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']
# Options are typed as written: no curly quotes, and ``--fractions`` keeps its
# two hyphens instead of becoming an en dash.
smartquotes = False

myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3

# Furo: a responsive theme (phone to wide screen); ramp.css widens its text
# column on wide screens and wraps long code lines inside it.
html_theme = 'furo'
html_title = f'torchio-ramp {release}'
html_static_path = ['_static']
html_css_files = ['ramp.css']

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'members': True, 'show-inheritance': True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

_documented: set[int] = set()


def _skip_duplicates(app, what, name, obj, skip, options):
    """Document each module-level object once, under its first (public) home.

    The API page lists the package's exports first; a submodule that defines or
    re-exports the same class or function does not describe it a second time
    (which Sphinx would report as a duplicate object description).
    """
    if what != 'module' or skip:
        return skip
    if not callable(obj) and not isinstance(obj, type):
        return None
    if id(obj) in _documented:
        return True
    _documented.add(id(obj))
    return None


REQUIRED = '**Required**'
"""How sphinx-click starts the help of a required option (RST bold)."""

DEFAULT = re.compile(r'^(?P<indent>\s*):default: ``(?P<value>.*)``$')
"""sphinx-click's default line: the ``repr`` of the default as inline code."""


def _plain_default(value: str) -> str:
    """A default as typed on the command line: ``'ramp'`` -> ``ramp``.

    A two-value option's ``'-200', '300'`` becomes ``-200 300``.
    """
    parts = re.findall(r"'([^']*)'|([^,\s]+)", value)
    return ' '.join(quoted or bare for quoted, bare in parts) or value


def _plain_help(app, ctx, lines: list[str]) -> None:
    """Show click's help text literally (it is written for a terminal, not RST).

    Defaults stay inline code, without Python's quotes; "Required" stays bold.
    """
    for index, line in enumerate(lines):
        default = DEFAULT.match(line)
        if default:
            value = _plain_default(default['value'])
            lines[index] = f'{default["indent"]}:default: ``{value}``'
            continue
        text = line.lstrip()
        if text.startswith('.. '):
            continue
        prefix = line[: len(line) - len(text)]
        if text.startswith('| '):
            prefix, text = prefix + '| ', text[2:]
        if text.startswith(REQUIRED):  # sphinx-click's own bold marker
            prefix, text = prefix + REQUIRED, text[len(REQUIRED) :]
        lines[index] = prefix + re.sub(r'([*`|\\])', r'\\\1', text)


TOCTREE = re.compile(r'^```\{toctree\}\n(?P<body>.*?)^```$', re.MULTILINE | re.DOTALL)


def _unlisted_pages_last(app, docname: str, source: list[str]) -> None:
    """Give the index a last contents section for the pages it does not list.

    The index lists the pages in reading order, under captions; a page added
    to ``docs/`` without a place there still appears (under "More") instead
    of being left out of the navigation.
    """
    if docname != root_doc:
        return
    listed = {
        line.strip()
        for match in TOCTREE.finditer(source[0])
        for line in match['body'].splitlines()
        if line.strip() and not line.lstrip().startswith(':')
    }
    unlisted = sorted(app.env.found_docs - listed - {root_doc})
    if unlisted:
        entries = '\n'.join(unlisted)
        source[0] += f'\n```{{toctree}}\n:caption: More\n\n{entries}\n```\n'


def _reread_index(app, env, added, changed, removed) -> list[str]:
    """Read the index again when pages come or go (its "More" section)."""
    return [root_doc] if added or removed else []


def setup(app):
    app.connect('env-get-outdated', _reread_index)
    app.connect('source-read', _unlisted_pages_last)
    app.connect('sphinx-click-process-description', _plain_help)
    app.connect('sphinx-click-process-options', _plain_help)
    app.connect('autodoc-skip-member', _skip_duplicates)
