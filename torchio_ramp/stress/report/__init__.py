"""The stress-test report: the paper's tables and figures from results files.

:func:`write_report` takes results of one or more models (on one or more
datasets) and writes, per dataset: Table 5 (with 95% bootstrap CIs), Table 6,
per-family Tables 7-8 with the heatmap of Fig. 4, per-level Dice with the
curves of Fig. 5, the clean-vs-corrupted scatter of Fig. 3, Table 9
(high-severity wins), Table 10 per model with volume errors and organ bars,
and, against a baseline, mCE and paired tests.

Rooms: :mod:`~torchio_ramp.stress.report.markdown` (the text),
:mod:`~torchio_ramp.stress.report.figures` (matplotlib on the Agg canvas),
:mod:`~torchio_ramp.stress.report.pictures` (failure pictures),
:mod:`~torchio_ramp.stress.report.html` (the one-page HTML) and
:mod:`~torchio_ramp.stress.report.writer` (the folder).

Example:
    >>> from torchio_ramp.stress.report import write_report
    >>> write_report([load_results('results/ramp')], 'report')  # doctest: +SKIP
    PosixPath('report/report.md')
"""

from .figures import PLOTS
from .writer import REPORT_HTML
from .writer import REPORT_MD
from .writer import write_report

__all__ = ['PLOTS', 'REPORT_HTML', 'REPORT_MD', 'write_report']
