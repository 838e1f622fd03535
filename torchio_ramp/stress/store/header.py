"""The header of a results file (``results*.json``): what binds rows to a run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...files import json_safe
from ..protocol import Setting
from .layout import ResultsError

FORMAT = 'ramp-stress-results'
"""Value of ``format`` in every header written by this module."""

FORMAT_VERSION = 1
"""Version of the results layout."""


def make_header(
    *,
    model: str,
    dataset: str,
    synthetic: bool,
    arguments: Mapping[str, Any],
    settings: Sequence[Setting],
    class_names: Mapping[int, str],
    annotated: Iterable[int],
    subjects: Sequence[str],
    shard: tuple[int, int] | None,
    all_subjects: Sequence[str],
) -> dict[str, Any]:
    """The header of a results file (written as ``results*.json``).

    Args:
        model: Model name (also in every row).
        dataset: Dataset name (also in every row).
        synthetic: Whether the data are phantoms.
        arguments: Everything that changes the numbers; compared on resume
            and merge.
        settings: Protocol settings, clean first.
        class_names: Scored classes and their names.
        annotated: Classes the dataset annotates.
        subjects: Subjects this file must cover.
        shard: ``(index, count)`` or ``None``.
        all_subjects: Subjects of the whole run (all shards).

    Example:
        >>> from torchio_ramp.stress.protocol import StressProtocol
        >>> header = make_header(
        ...     model='ramp', dataset='totalseg', synthetic=False,
        ...     arguments={'seed': 0}, settings=StressProtocol().settings,
        ...     class_names={1: 'liver'}, annotated=[1], subjects=['s2', 's1'],
        ...     shard=None, all_subjects=['s1', 's2'])
        >>> header['settings'][:2], header['subjects']
        ([['clean', 0.0], ['gaussian_noise', 0.05]], ['s1', 's2'])
    """
    return {
        'format': FORMAT,
        'version': FORMAT_VERSION,
        'model': model,
        'dataset': dataset,
        'synthetic': bool(synthetic),
        'arguments': json_safe(dict(arguments)),
        'settings': [[s.family, float(s.level)] for s in settings],
        'classes': [int(c) for c in class_names],
        'class_names': {str(int(c)): name for c, name in class_names.items()},
        'annotated_classes': sorted(int(c) for c in annotated),
        'shard': None if shard is None else {'index': shard[0], 'count': shard[1]},
        'subjects': sorted(subjects),
        'all_subjects': len(all_subjects),
        'all_subjects_sha256': ids_digest(all_subjects),
        'sessions': [],
    }


def ids_digest(ids: Iterable[str]) -> str:
    return hashlib.sha256('\n'.join(sorted(ids)).encode('utf-8')).hexdigest()


_BINDING = (
    'format',
    'version',
    'model',
    'dataset',
    'arguments',
    'settings',
    'classes',
    'annotated_classes',
    'all_subjects_sha256',
)


def header_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two headers' binding fields.

    Example:
        >>> header_differences({'arguments': {'seed': 0}}, {'arguments': {'seed': 1}})
        ['arguments.seed: 0 (file) vs 1 (now)']
    """
    differences = []
    for key in _BINDING:
        a, b = old.get(key), new.get(key)
        if key == 'arguments' and isinstance(a, Mapping) and isinstance(b, Mapping):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    differences.append(
                        f'arguments.{name}: {a.get(name)!r} (file) vs {b.get(name)!r}'
                        ' (now)'
                    )
        elif a != b:
            differences.append(f'{key}: {a!r} (file) vs {b!r} (now)')
    return differences


def read_header(path: Path) -> dict[str, Any]:
    """Read and check a results header (``results*.json``).

    Raises:
        FileNotFoundError: If it is missing.
        ResultsError: If it is not a header written by ``ramp-stress``.

    Example:
        >>> read_header(Path('results/results.json'))['model']  # doctest: +SKIP
        'ramp'
    """
    if not path.is_file():
        raise FileNotFoundError(f'results header {path} not found')
    try:
        header = json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f'{path} is not valid JSON: {error}') from error
    if not isinstance(header, dict) or header.get('format') != FORMAT:
        raise ResultsError(f'{path} is not a ramp-stress results header')
    if header.get('version') != FORMAT_VERSION:
        message = (
            f'{path} has results format version {header.get("version")}; this'
            f' ramp-stress reads version {FORMAT_VERSION}'
        )
        raise ResultsError(message)
    return header
