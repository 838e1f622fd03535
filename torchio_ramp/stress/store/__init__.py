"""The results store: long-format CSV files, their header, resume and merge.

A results folder holds, per run (or per shard of a run):

* ``results.csv`` (shard ``i`` of ``n``: ``results.shard-i-of-n.csv``): one
  row per subject x setting x class with the columns :data:`COLUMNS` (the
  :data:`ROW_KEYS`, then the columns of the per-volume metrics). A
  subject's rows are written together, in one ``write`` followed by
  ``flush`` and ``fsync``, once all its settings are done.
* ``results.json`` (or ``results.shard-i-of-n.json``): the header. Its
  ``arguments`` are everything that changes the numbers (model fingerprint,
  data fingerprint, split, protocol, patch size, overlap, AMP, name); a
  re-run with other arguments refuses to append to the file. ``subjects``
  lists the subjects this file must cover; ``sessions`` records when, where
  (device, batch size) and with which versions each (re)start ran.
* ``summary.json``: :func:`~torchio_ramp.stress.results.summarize` of a
  complete run or of merged shards.

Re-running with the same arguments skips subjects whose rows are complete.
Rows of a subject cut short by a crash can only be at the end of the file
(each subject is one write): they are cut off before resuming, so the final
file equals that of an uninterrupted run byte for byte.

Shard files of one run merge (:func:`merge_shards`) into ``results.csv``
with the subjects in sorted order, exactly as a single process writes them.

One job per module:

* :mod:`.layout`: file names, finding a folder's results, :class:`ResultsError`;
* :mod:`.rows`: the CSV columns, rows as text, checking a file against its
  header;
* :mod:`.header`: the header, its binding fields and their differences;
* :mod:`.writer`: :class:`ResultsWriter` (append, resume, lock);
* :mod:`.reader`: :func:`load_results`;
* :mod:`.shards`: sharding a run's subjects and merging the shard files.

Atomic writes, JSON and SHA-256 come from :mod:`torchio_ramp.files`
(re-exported here as :func:`write_atomic`, :func:`write_json` and
:func:`file_sha256`).
"""

from ...files import file_sha256
from ...files import write_atomic
from ...files import write_json
from .header import FORMAT
from .header import FORMAT_VERSION
from .header import header_differences
from .header import make_header
from .header import read_header
from .layout import RESULTS_STEM
from .layout import SUMMARY_JSON
from .layout import ResultsError
from .layout import find_results
from .layout import header_path
from .layout import results_stem
from .reader import load_results
from .rows import COLUMNS
from .rows import ROW_KEYS
from .rows import ScannedResults
from .rows import format_rows
from .rows import scan_results
from .shards import complete_shards
from .shards import merge_shards
from .shards import parse_shard
from .shards import shard_from_environment
from .shards import shard_subjects
from .writer import ResultsWriter

__all__ = [
    'COLUMNS',
    'FORMAT',
    'FORMAT_VERSION',
    'RESULTS_STEM',
    'ROW_KEYS',
    'SUMMARY_JSON',
    'ResultsError',
    'ResultsWriter',
    'ScannedResults',
    'complete_shards',
    'file_sha256',
    'find_results',
    'format_rows',
    'header_differences',
    'header_path',
    'load_results',
    'make_header',
    'merge_shards',
    'parse_shard',
    'read_header',
    'results_stem',
    'scan_results',
    'shard_from_environment',
    'shard_subjects',
    'write_atomic',
    'write_json',
]
