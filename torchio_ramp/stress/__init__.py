"""Pre-deployment robustness stress test (paper sections 2.5 and 3.5).

The stress wing, by job: :mod:`~torchio_ramp.stress.protocol` (the settings
and how each corrupted volume is made), :mod:`~torchio_ramp.stress.spec` (the
run specification: every option of a run, declared once),
:mod:`~torchio_ramp.stress.runner` (every subject under every setting),
:mod:`~torchio_ramp.stress.api` (a model file or an nnU-Net folder, as
``ramp-stress run``), :mod:`~torchio_ramp.stress.store` (results files,
resume, shards), :mod:`~torchio_ramp.stress.worst` (failure pictures kept
during a run), :mod:`~torchio_ramp.stress.results` and
:mod:`~torchio_ramp.stress.statistics` (the numbers over a test set),
:mod:`~torchio_ramp.stress.compare` (several models),
:mod:`~torchio_ramp.stress.gate` (pass/fail requirements),
:mod:`~torchio_ramp.stress.units` (severities in HU and mm),
:mod:`~torchio_ramp.stress.report` (Markdown, figures, pictures, HTML) and
:mod:`~torchio_ramp.stress.cli` (``ramp-stress``). The per-volume metrics,
sliding-window inference and model files it uses are shared with training, one
floor down: :mod:`torchio_ramp.metrics`, :mod:`torchio_ramp.inference`,
:mod:`torchio_ramp.model_files`.

Example:
    >>> import torch
    >>> from torchio_ramp.phantoms import phantom_subject
    >>> from torchio_ramp.stress import StressProtocol, evaluate_subject
    >>> subject = phantom_subject((16, 16, 16), seed=0)
    >>> protocol = StressProtocol(families=['gaussian_noise'], levels=[0.1, 0.2])
    >>> oracle = lambda image: subject.label.data[0]
    >>> rows = evaluate_subject(oracle, subject, protocol)
    >>> len(rows), {row['dice'] for row in rows}
    (15, {1.0})
"""

from ..inference import make_predictor
from ..metrics import dice_per_class
from ..metrics import overlap_counts
from ..metrics import subject_dice
from ..model_files import load_model
from ..model_files import read_model_config
from .api import stress_test_model
from .api import stress_test_nnunet
from .compare import compare
from .protocol import Setting
from .protocol import StressProtocol
from .protocol import setting_seed
from .report import write_report
from .results import StressResults
from .results import summarize
from .runner import evaluate_subject
from .runner import results_from_rows
from .runner import run_stress_test
from .spec import RunSpec
from .statistics import paired_test
from .statistics import robustness
from .store import load_results
from .store import merge_shards

__all__ = [
    'RunSpec',
    'Setting',
    'StressProtocol',
    'StressResults',
    'compare',
    'dice_per_class',
    'evaluate_subject',
    'load_model',
    'load_results',
    'make_predictor',
    'merge_shards',
    'overlap_counts',
    'paired_test',
    'read_model_config',
    'results_from_rows',
    'robustness',
    'run_stress_test',
    'setting_seed',
    'stress_test_model',
    'stress_test_nnunet',
    'subject_dice',
    'summarize',
    'write_report',
]
