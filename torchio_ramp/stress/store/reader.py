"""Reading a results file into arrays."""

from __future__ import annotations

from pathlib import Path

from ..protocol import Setting
from ..results import StressResults
from .header import read_header
from .layout import find_results
from .layout import header_path
from .rows import scan_results


def load_results(path: Path) -> StressResults:
    """Read a results CSV (or folder) and its header into arrays.

    A subject cut short by a crash at the end of the file is ignored, and
    subjects not yet evaluated are reported by
    :attr:`StressResults.complete`.

    Raises:
        FileNotFoundError: If the CSV or its header is missing.
        ResultsError: If they are damaged or do not match.

    Example:
        >>> results = load_results(Path('results'))  # doctest: +SKIP
        >>> results.model, len(results.subjects)  # doctest: +SKIP
        ('ramp', 185)
    """
    csv_path = find_results(Path(path))
    header = read_header(header_path(csv_path))
    scanned = scan_results(csv_path, header)
    settings = [Setting(f, float(level)) for f, level in header['settings']]
    rows = [
        {
            'subject_id': row['subject_id'],
            'family': row['family'],
            'level': float(row['level']),
            'class_id': int(row['class_id']),
            'dice': float(row['dice']),
            'gt_ml': float(row['gt_ml']),
            'pred_ml': float(row['pred_ml']),
        }
        for row in scanned.rows
    ]
    return StressResults.from_rows(
        rows,
        settings,
        header['classes'],
        header['annotated_classes'],
        model=header['model'],
        dataset=header['dataset'],
        synthetic=bool(header['synthetic']),
        class_names={int(k): v for k, v in header['class_names'].items()},
        expected_subjects=tuple(header['subjects']),
        header=header,
    )
