"""Model files by content: ``torch.export`` archives, ONNX and TorchScript.

:func:`model_format` tells a file's format from its bytes, not its suffix:

* ``'torch.export'``: a ``torch.export.save`` archive (a zip holding
  ``archive_format``), conventionally ``.pt2``; checked member by member
  (:mod:`~torchio_ramp.model_files.safety`), loaded with
  ``torch.export.load`` and run as its graph module;
* ``'onnx'``: an ONNX model (a protobuf ``ModelProto``), its external data
  checked to stay beside it, run with onnxruntime (the optional extra
  ``torchio-ramp[onnx]``);
* ``'torchscript'``: a ``torch.jit.save`` archive (legacy: TorchScript is
  deprecated in PyTorch; prefer ``torch.export``); a program, loaded only
  with ``trust=True``.

:func:`load_model_file` returns an ``nn.Module`` mapping a ``(B, 1, D, H,
W)`` float batch to ``(B, K, D, H, W)`` logits, whichever the format, and the
text of a ``config.json`` embedded in the file, if any
(``torch.export.save(..., extra_files={'config.json': ...})``, TorchScript's
``_extra_files``, or an ONNX metadata property ``config.json``). A model
exported with a fixed batch size is fed batches of that size (the last one
zero-padded), so the sliding window's batch size need not match it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from .safety import check_onnx_model
from .safety import check_torchscript
from .safety import load_export_program

FORMATS = ('torch.export', 'onnx', 'torchscript')
"""Formats of model files, as recorded in results headers."""

EMBEDDED_CONFIG = 'config.json'
"""Name of the training settings stored inside a model file."""

_PICKLE = b'\x80'


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def model_format(path: str | Path) -> str:
    """The format of a model file, from its content.

    Raises:
        ValueError: If it is none of :data:`FORMATS` (for instance a
            ``state_dict`` saved with ``torch.save``), naming the file.

    Example:
        >>> import torch
        >>> torch.jit.save(torch.jit.script(torch.nn.Identity()), 'm.bin')  # doctest: +SKIP
        >>> model_format('m.bin')  # doctest: +SKIP
        'torchscript'
    """  # noqa: E501
    path = Path(path)
    with path.open('rb') as file:
        head = file.read(4)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if any(n.endswith('/archive_format') or n == 'archive_format' for n in names):
            return 'torch.export'
        if any('/code/' in n or n.endswith('/constants.pkl') for n in names):
            return 'torchscript'
        if any(n.endswith('data.pkl') for n in names):
            message = (
                f'{path} was written by torch.save (a state_dict or a pickled'
                ' model), not an exported model: pass --model'
                f' package.module:factory --weights {path}, or export the network'
                ' with torch.export.save'
            )
            raise ValueError(message)
    elif head[:1] == b'\x08':
        # An ONNX ModelProto starts with field 1 (ir_version, a varint): 0x08.
        return 'onnx'
    elif head[:1] == _PICKLE:
        message = (
            f'{path} is a pickle (torch.save), not an exported model: pass --model'
            f' package.module:factory --weights {path}'
        )
        raise ValueError(message)
    message = (
        f'{path} is not a model file this tool reads: expected a torch.export'
        ' archive (.pt2), an ONNX model or a TorchScript file'
    )
    raise ValueError(message)


def _in_batches(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    batch: int | None,
) -> torch.Tensor:
    """``forward`` on ``x`` in batches of exactly ``batch`` (``None``: any)."""
    if batch is None or len(x) == batch:
        return forward(x)
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        size = len(chunk)
        if size < batch:
            padding = chunk.new_zeros((batch - size, *chunk.shape[1:]))
            chunk = torch.cat([chunk, padding])
        outputs.append(forward(chunk)[:size])
    return torch.cat(outputs)


class ExportedModule(torch.nn.Module):
    """A ``torch.export`` program as a module (inference only).

    The program's graph module is not registered as a child: it rejects
    ``train()`` / ``eval()``, and an exported program is already traced in
    the mode it was exported in.

    Args:
        program: From ``torch.export.load``.
        device: Where its weights go.
    """

    def __init__(self, program: torch.export.ExportedProgram, device: torch.device):
        super().__init__()
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
        self._graph = [program.module()]
        self.batch = _static_batch(program)
        self.format = 'torch.export'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _in_batches(self._graph[0], x, self.batch)


def _static_batch(program: torch.export.ExportedProgram) -> int | None:
    inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == 'placeholder' and node.name in inputs:
            value = node.meta.get('val')
            if value is not None and value.ndim > 0:
                size = value.shape[0]
                return size if isinstance(size, int) else None
    return None


class OnnxModule(torch.nn.Module):
    """An ONNX model run by onnxruntime, as a module (inference only).

    Inputs are sent to onnxruntime as float32 arrays and the logits come back
    as a tensor on the input's device. On a CUDA device onnxruntime's CUDA
    provider is used when installed, its CPU provider otherwise.

    Args:
        path: The ``.onnx`` file.
        device: Device of the forward pass.
    """

    def __init__(self, path: Path, device: torch.device):
        super().__init__()
        try:
            import onnxruntime
        except ImportError as error:
            message = (
                f'{path} is an ONNX model: install onnxruntime with pip install'
                ' "torchio-ramp[onnx]"'
            )
            raise ImportError(message) from error
        available = onnxruntime.get_available_providers()
        providers = ['CPUExecutionProvider']
        if device.type == 'cuda' and 'CUDAExecutionProvider' in available:
            options = {'device_id': device.index or 0}
            providers = [('CUDAExecutionProvider', options), *providers]
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types
            message = f'{path} is not a valid ONNX model: {_first_line(error)}'
            raise ValueError(message) from error
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = [i.name for i in inputs]
            message = f'{path} must take one input (the image batch), not {names}'
            raise ValueError(message)
        self.input_name = inputs[0].name
        first = inputs[0].shape[0] if inputs[0].shape else None
        self.batch = first if isinstance(first, int) and first > 0 else None
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.embedded = metadata.get(EMBEDDED_CONFIG)
        self.format = 'onnx'

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().float().cpu().contiguous().numpy()
        output = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(output).to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _in_batches(self._run, x, self.batch)


def load_model_file(
    path: str | Path,
    device: str | torch.device = 'cpu',
    *,
    trust: bool = False,
) -> tuple[torch.nn.Module, str | None, str]:
    """Load a model file of any of :data:`FORMATS`.

    Args:
        path: The file.
        device: Where to run it.
        trust: Load without the checks of :mod:`torchio_ramp.model_files.safety`
            (TorchScript is loaded only then).

    Returns:
        ``(module, embedded config.json text or None, format)``.

    Raises:
        ValueError: If the file is not a model or cannot be loaded, naming
            it and its format.
        ~torchio_ramp.model_files.safety.UnsafeModelError: If loading it could run
            code from it or read files outside its folder (unless ``trust``).
        ImportError: For an ONNX file without onnxruntime installed.

    Example:
        >>> module, config, kind = load_model_file('model.pt2')  # doctest: +SKIP
        >>> kind  # doctest: +SKIP
        'torch.export'
    """
    path = Path(path)
    device = torch.device(device)
    kind = model_format(path)
    try:
        if kind == 'onnx':
            if not trust:
                check_onnx_model(path)
            module = OnnxModule(path, device)
            return module, module.embedded, kind
        extra = {EMBEDDED_CONFIG: ''}
        if kind == 'torch.export':
            program = load_export_program(path, trust=trust, extra_files=extra)
            return ExportedModule(program, device), extra[EMBEDDED_CONFIG], kind
        check_torchscript(path, trust=trust)
        network = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as error:
        if isinstance(error, ValueError) and str(error).startswith(str(path)):
            raise
        message = f'cannot load {path} as a {kind} model: {_first_line(error)}'
        raise ValueError(message) from error
    return network, extra[EMBEDDED_CONFIG], kind
