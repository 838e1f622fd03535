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

import logging
import re
from pathlib import Path

import torchio_ramp

DOCS = Path(__file__).resolve().parent

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
# The index's glob toctree names the pages other contributors add
# (``nnunet*``, ``monai*``, ...); a pattern matching nothing yet is expected.
suppress_warnings = ['toc.empty_glob']

myst_enable_extensions = ['colon_fence', 'deflist', 'substitution']
myst_heading_anchors = 3

html_theme = 'alabaster'
html_title = f'torchio-ramp {release}'
html_static_path: list[str] = []

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'members': True, 'show-inheritance': True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Pages other contributors add under docs/ are picked up by the index's glob
# toctree; a link to one of them is only written when the page exists.
myst_substitutions = {
    'installation_link': (
        'Other ways to install (a built wheel, next to nnU-Net or MONAI) are in '
        '[Installation](installation.md).'
        if (DOCS / 'installation.md').exists()
        else ''
    ),
}


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


def _plain_help(app, ctx, lines: list[str]) -> None:
    """Show click's help text literally (it is written for a terminal, not RST)."""
    for index, line in enumerate(lines):
        text = line.lstrip()
        if text.startswith('.. '):
            continue
        prefix = line[: len(line) - len(text)]
        if text.startswith('| '):
            prefix, text = prefix + '| ', text[2:]
        lines[index] = prefix + re.sub(r'([*`|\\])', r'\\\1', text)


class _EmptyGlobType(logging.Filter):
    """Give Sphinx's empty-glob warning the ``toc`` type it documents.

    Sphinx 9 logs "toctree glob pattern ... didn't match any documents" with
    the subtype ``empty_glob`` but no type, so ``suppress_warnings`` cannot name
    it; with the type set, ``toc.empty_glob`` suppresses exactly that warning.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, 'subtype', None) == 'empty_glob':
            record.type = getattr(record, 'type', None) or 'toc'
        return True


logging.getLogger('sphinx.sphinx.directives.other').addFilter(_EmptyGlobType())


def setup(app):
    app.connect('sphinx-click-process-description', _plain_help)
    app.connect('sphinx-click-process-options', _plain_help)
    app.connect('autodoc-skip-member', _skip_duplicates)
