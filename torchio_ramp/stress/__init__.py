"""Pre-deployment robustness stress test (paper sections 2.5 and 3.5).

Every metric is defined once, in :mod:`torchio_ramp.stress.metrics`.

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

from .api import stress_test_model
from .api import stress_test_nnunet
from .compare import compare
from .metrics import dice_per_class
from .metrics import overlap_counts
from .metrics import paired_test
from .metrics import robustness
from .metrics import subject_dice
from .predictors import load_model
from .predictors import make_predictor
from .predictors import read_model_config
from .protocol import Setting
from .protocol import StressProtocol
from .protocol import setting_seed
from .report import write_report
from .results import StressResults
from .results import summarize
from .runner import evaluate_subject
from .runner import results_from_rows
from .runner import run_stress_test
from .store import load_results
from .store import merge_shards

__all__ = [
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
