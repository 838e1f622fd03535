"""``report.html``: the Markdown report as one self-contained page.

The page is the same text as ``report.md`` (rendered by :func:`to_html`, which
reads the subset of Markdown the report writes: headings, paragraphs, lists,
block quotes, pipe tables, images on their own line, inline code, bold and
italics), with an inline style sheet. Images are the PNG files beside it; it
loads nothing from the network and needs no JavaScript.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif;
  color: #1d232a; max-width: 1180px; margin: 2em auto; padding: 0 1.2em; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 2px solid #d0d7de;
  padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; text-align: left; }
th { background: #f3f5f7; } tr:nth-child(even) td { background: #fafbfc; }
code { background: #f3f5f7; padding: .05em .3em; border-radius: 3px;
  font-size: 90%; }
blockquote { margin: 1em 0; padding: .6em 1em; background: #fff4e5;
  border-left: 4px solid #f0a020; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0; }
td.pass, span.pass { color: #0b6b2b; font-weight: 600; }
td.fail, span.fail { color: #b3001b; font-weight: 600; }
"""

_IMAGE = re.compile(r'^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)$')
_CODE = re.compile(r'`([^`]+)`')
_BOLD = re.compile(r'\*\*(.+?)\*\*')
_ITALIC = re.compile(r'(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])')
_VERDICT = re.compile(r'\b(PASS|FAIL)\b')


def inline(text: str) -> str:
    """Escape ``text`` and render inline code, bold and italics.

    Example:
        >>> inline('**a** `<b>` PASS')
        '<strong>a</strong> <code>&lt;b&gt;</code> <span class="pass">PASS</span>'
    """
    parts = _CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        escaped = html.escape(part, quote=False)
        if i % 2:
            out.append(f'<code>{escaped}</code>')
            continue
        escaped = _BOLD.sub(r'<strong>\1</strong>', escaped)
        escaped = _ITALIC.sub(r'<em>\1</em>', escaped)
        escaped = _VERDICT.sub(
            lambda m: f'<span class="{m.group(1).lower()}">{m.group(1)}</span>',
            escaped,
        )
        out.append(escaped)
    return ''.join(out)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip('|').split('|')]


def _table(lines: Sequence[str]) -> str:
    header = _cells(lines[0])
    rows = [_cells(line) for line in lines[2:]]
    head = ''.join(f'<th>{inline(cell)}</th>' for cell in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            verdict = cell.strip('*')
            kind = f' class="{verdict.lower()}"' if verdict in ('PASS', 'FAIL') else ''
            cells.append(f'<td{kind}>{inline(cell)}</td>')
        body.append(f'<tr>{"".join(cells)}</tr>')
    return (
        f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _anchor(text: str, used: set[str]) -> str:
    """A unique ``id`` for a heading: lower-case words joined by hyphens."""
    base = '-'.join(re.findall(r'[a-z0-9]+', text.lower())) or 'section'
    anchor, number = base, 1
    while anchor in used:
        number += 1
        anchor = f'{base}-{number}'
    used.add(anchor)
    return anchor


def to_html(markdown: str) -> str:
    """HTML body of the report's Markdown.

    Example:
        >>> print(to_html('# Title\\n\\n| a | b |\\n|---|---|\\n| 1 | PASS |'))
        <h1 id="title">Title</h1>
        <table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td class="pass"><span class="pass">PASS</span></td></tr></tbody></table>
    """  # noqa: E501
    lines = markdown.splitlines()
    out: list[str] = []
    used: set[str] = set()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line.strip():
            i += 1
            continue
        heading = re.match(r'^(#{1,6})\s+(.*)$', line)
        image = _IMAGE.match(line.strip())
        if heading:
            level = len(heading.group(1))
            anchor = _anchor(heading.group(2), used)
            body = inline(heading.group(2))
            out.append(f'<h{level} id="{anchor}">{body}</h{level}>')
            i += 1
        elif image:
            alt = html.escape(image.group('alt'))
            src = html.escape(image.group('src'))
            out.append(f'<img src="{src}" alt="{alt}">')
            i += 1
        elif line.startswith('|'):
            block = []
            while i < len(lines) and lines[i].startswith('|'):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
        elif line.startswith('>'):
            block = []
            while i < len(lines) and lines[i].startswith('>'):
                block.append(lines[i][1:].strip())
                i += 1
            out.append(f'<blockquote>{inline(" ".join(block))}</blockquote>')
        elif line.startswith('- '):
            items = []
            while i < len(lines) and lines[i].startswith('- '):
                items.append(f'<li>{inline(lines[i][2:])}</li>')
                i += 1
            out.append(f'<ul>{"".join(items)}</ul>')
        else:
            block = []
            while (
                i < len(lines)
                and lines[i].strip()
                and not re.match(r'^(#|\||>|- |!\[)', lines[i])
            ):
                block.append(lines[i].strip())
                i += 1
            out.append(f'<p>{inline(" ".join(block))}</p>')
    return '\n'.join(out)


def page(markdown: str, title: str) -> str:
    """A complete, self-contained HTML page of the report.

    Example:
        >>> '<style>' in page('# Report', 'Report')
        True
    """
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n'
        f'</head>\n<body>\n{to_html(markdown)}\n</body>\n</html>\n'
    )
