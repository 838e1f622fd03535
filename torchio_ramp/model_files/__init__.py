"""Model files: loading any model format safely, and the model sidecar.

Shared by the stress test and by anything else that runs a trained model:

* :mod:`~torchio_ramp.model_files.formats`: a model file's format from its
  content (``torch.export``, ONNX, TorchScript) and :func:`load_model_file`;
* :mod:`~torchio_ramp.model_files.safety`: the checks that let a model file be
  loaded without running code from it (:class:`UnsafeModelError` when one
  fails), with :mod:`~torchio_ramp.model_files.program_text`, the grammar of
  a ``torch.export`` program's text;
* :mod:`~torchio_ramp.model_files.sidecar`: :class:`ModelSidecar`, the one
  type of the training settings a model needs at inference (HU window, patch
  size, classes, strategy), written by ``ramp-train`` and read by
  ``ramp-stress run``;
* :mod:`~torchio_ramp.model_files.loading`: :func:`load_model` (a model file,
  or ``module:factory`` with ``state_dict`` weights) with its sidecar and
  identity.

Example:
    >>> from torchio_ramp.model_files import read_model_config
    >>> read_model_config('absent.pt', embedded='{"hu_range": [-200, 300]}').hu_range
    (-200.0, 300.0)
"""

from .formats import EMBEDDED_CONFIG
from .formats import FORMATS
from .formats import load_model_file
from .formats import model_format
from .loading import LoadedModel
from .loading import default_name
from .loading import load_model
from .safety import UnsafeModelError
from .sidecar import ModelSidecar
from .sidecar import find_sidecar
from .sidecar import parse_hu_range
from .sidecar import parse_patch_size
from .sidecar import read_model_config

__all__ = [
    'EMBEDDED_CONFIG',
    'FORMATS',
    'LoadedModel',
    'ModelSidecar',
    'UnsafeModelError',
    'default_name',
    'find_sidecar',
    'load_model',
    'load_model_file',
    'model_format',
    'parse_hu_range',
    'parse_patch_size',
    'read_model_config',
]
