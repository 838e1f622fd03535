"""Loading a model file without running code from it.

A model file is data from somewhere else: a colleague, a model zoo, a
download. What each loader of PyTorch and onnxruntime would let such a file
do, and what this module lets it do (torch 2.13, onnxruntime 1.32):

* **torch.export** (``.pt2``). ``torch.export.load`` unpickles members of the
  archive: the sample inputs always, weights and constants marked
  ``use_pickle``, legacy ``data/weights/<name>.pt`` and
  ``data/constants/<name>.pt`` members (each with ``weights_only=False``
  after a ``weights_only=True`` attempt fails), opaque constants with a plain
  ``pickle.loads``, and the members of the older archive layout it falls back
  to when the current one does not load; it loads the AOTInductor shared
  libraries an archive carries (machine code); and it turns strings of the
  program into Python code (see :mod:`torchio_ramp.model_files.program_text`).
  :func:`load_export_program` reads the file once and checks the bytes
  member by member before torch sees them: only the members
  ``torch.export.save`` writes for a plain model, no two members of one
  name (Python's zip reader and PyTorch's would read different ones), every
  pickle readable by PyTorch's restricted unpickler (``weights_only=True``:
  tensors and plain containers, no code) and holding what its member should
  hold, the weights and constants tables pointing at their own members, and
  the program text within :func:`~torchio_ramp.model_files.program_text.check_program`'s
  grammar. Anything else is refused with :class:`UnsafeModelError`, naming
  the file and the member.
* **ONNX** is data: onnxruntime builds the graph from operators compiled into
  it and never loads a library named by the model (custom operator libraries
  are registered by the caller only). Besides the file it reads the files of
  *external data* named in the model; :func:`check_onnx_model` refuses a
  location that is absolute, contains ``..`` or resolves (through links)
  outside the model's folder, and execution-provider context nodes
  (``EPContext``, which name a compiled binary some providers load).
* **TorchScript** is a program: ``torch.jit.load`` compiles the TorchScript
  source held in the archive's ``code/`` folder and runs its ``__setstate__``
  methods while loading; TorchScript cannot import Python modules and its
  unpickler only builds tensors and TorchScript classes, but the program can
  call every operator registered in the process, among them
  ``aten::from_file`` (reads any file) and ``aten::save`` (writes one).
  :func:`check_torchscript` refuses it unless the caller trusts the file.

Every check is skipped with ``trust=True``: for a file the user made or
trusts, loaded exactly as PyTorch or onnxruntime would load it.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from pathlib import PurePosixPath
from pathlib import PureWindowsPath
from typing import Any

import torch

from .program_text import ProgramTextError
from .program_text import check_payload_config
from .program_text import check_program

TRUST_HINT = 'Load it only if you trust its source (trust=True).'
"""What the message of :class:`UnsafeModelError` ends with."""

PROGRAM = 'models/model.json'
SAMPLE_INPUTS = 'data/sample_inputs/model.pt'
WEIGHTS_CONFIG = 'data/weights/model_weights_config.json'
CONSTANTS_CONFIG = 'data/constants/model_constants_config.json'
_REQUIRED = (PROGRAM, SAMPLE_INPUTS, WEIGHTS_CONFIG, CONSTANTS_CONFIG)
_FIXED = frozenset(
    [
        'archive_format',
        'archive_version',
        'byteorder',
        '.data/version',
        '.data/serialization_id',
        *_REQUIRED,
    ]
)
_WEIGHT = re.compile(r'data/weights/weight_[0-9]+')
_CONSTANT = re.compile(r'data/constants/tensor_[0-9]+')
_REFUSED = (
    (
        'data/aotinductor/',
        'compiled code (AOTInductor), which would run as machine code',
    ),
    (
        'data/constants/opaque_obj_',
        'a pickled Python object, which torch unpickles without restriction',
    ),
    (
        'data/constants/custom_obj_',
        'a TorchBind custom object, whose methods are code',
    ),
    (
        'data/executorch/',
        'an ExecuTorch program, which this tool does not load',
    ),
    ('data/mtia', 'an MTIA program, which this tool does not load'),
    ('xl_model_weights/', 'weights of another layout, which this tool does not read'),
)
_MAX_DEPTH = 16


class UnsafeModelError(ValueError):
    """A model file whose loading could run code or read files outside it.

    Attributes:
        path: The file.
        member: The part refused (an archive member, an ONNX tensor), or
            ``None`` for the whole file.
        reason: Why.
    """

    def __init__(self, path: str | Path, member: str | None, reason: str):
        self.path = Path(path)
        self.member = member
        self.reason = reason
        where = f'{path}' if member is None else f'{path} ({member})'
        super().__init__(f'{where}: refused: {reason.rstrip(".")}. {TRUST_HINT}')


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _unpickler_reason(error: BaseException) -> str:
    """The line of a weights-only failure that says what was refused."""
    for line in str(error).splitlines():
        if 'GLOBAL' in line or line.startswith(('Unsupported', 'Trying to load')):
            return line.strip()
    return _first_line(error)


def _member_problem(name: str) -> str | None:
    """Why an archive member is refused (``None``: it is one ``torch.export.save`` writes)."""  # noqa: E501
    if name in _FIXED or _WEIGHT.fullmatch(name) or _CONSTANT.fullmatch(name):
        return None
    if name.startswith('extra/') and len(name) > len('extra/'):
        return None  # read as text
    for prefix, reason in _REFUSED:
        if name.startswith(prefix):
            return reason
    if name in ('data/weights/model.pt', 'data/constants/model.pt'):
        return 'pickled tensors of the legacy layout, unpickled without restriction'
    if name.startswith('models/'):
        return 'a second program; torch.export.save writes one'
    return 'a member torch.export.save does not write'


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is tensors, numbers and text in tuples, lists and dicts."""
    if depth > _MAX_DEPTH:
        return False
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return True
    if type(value) in (tuple, list):
        return all(_plain(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(
            type(key) in (str, int) and _plain(item, depth + 1)
            for key, item in value.items()
        )
    return False


def _check_pickle(data: bytes, path: Path, member: str, tensor: bool) -> None:
    """Unpickle ``data`` with PyTorch's restricted unpickler and check the result."""
    try:
        with warnings.catch_warnings():  # e.g. on pickle protocols other than 2
            warnings.simplefilter('ignore')
            value = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except Exception as error:  # the restricted unpickler's errors vary by cause
        reason = (
            'a pickle the restricted (weights-only) unpickler refuses, which torch'
            f' would unpickle without restriction: {_unpickler_reason(error)}'
        )
        raise UnsafeModelError(path, member, reason) from None
    if tensor:
        fits = type(value) in (torch.Tensor, torch.nn.Parameter)
    else:
        fits = type(value) is tuple and _plain(value)
    if not fits:
        kind = 'a tensor' if tensor else 'a tuple of tensors'
        reason = f'a pickle of {type(value).__name__} where torch expects {kind}'
        raise UnsafeModelError(path, member, reason)


def _json(reader: Any, name: str, path: Path) -> Any:
    try:
        return json.loads(reader.get_record(name).decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        message = f'{path} is not a valid torch.export archive: {name} is not JSON'
        raise ValueError(f'{message} ({_first_line(error)})') from None


def _records(data: bytes, path: Path) -> tuple[Any, list[str]]:
    """PyTorch's reader of the archive and its member names, checked against zipfile's."""  # noqa: E501
    invalid = f'{path} is not a valid torch.export archive'
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [info.filename for info in archive.infolist()]
    except (zipfile.BadZipFile, ValueError, EOFError) as error:
        raise ValueError(f'{invalid}: {_first_line(error)}') from None
    root = names[0].split('/')[0] if names else ''
    if not root or any(not name.startswith(f'{root}/') for name in names):
        raise ValueError(f'{invalid}: its members are not in one folder')
    seen: set[str] = set()
    for name in names:
        member = name[len(root) + 1 :]
        if member in seen:
            reason = (
                'two members of this name (readers of the zip format disagree on'
                ' which one they read)'
            )
            raise UnsafeModelError(path, member, reason)
        seen.add(member)
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        records = list(reader.get_all_records())
    except RuntimeError as error:
        raise ValueError(f'{invalid}: {_first_line(error)}') from None
    if sorted(records) != sorted(seen):
        reason = 'the zip directory and PyTorch disagree on what the archive holds'
        raise UnsafeModelError(path, None, reason)
    return reader, records


def check_export_archive(data: bytes, path: str | Path) -> None:
    """Refuse a ``torch.export`` archive that could run code when loaded.

    Args:
        data: The file's bytes (check the bytes you then load, not the path).
        path: The file, for messages.

    Raises:
        UnsafeModelError: Naming the member refused and why.
        ValueError: If it is not a complete ``torch.export`` archive.

    Example:
        >>> data = Path('model.pt2').read_bytes()  # doctest: +SKIP
        >>> check_export_archive(data, 'model.pt2')  # doctest: +SKIP
    """
    path = Path(path)
    reader, records = _records(data, path)
    for name in records:
        problem = _member_problem(name)
        if problem is not None:
            raise UnsafeModelError(path, name, problem)
    for name in _REQUIRED:
        if name not in records:
            message = (
                f'{path} is not a complete torch.export archive: {name} is missing'
            )
            raise ValueError(message)
    try:
        check_program(_json(reader, PROGRAM, path))
    except ProgramTextError as error:
        raise UnsafeModelError(path, PROGRAM, str(error)) from None
    _check_pickle(reader.get_record(SAMPLE_INPUTS), path, SAMPLE_INPUTS, tensor=False)
    for config, prefix in ((WEIGHTS_CONFIG, 'weight_'), (CONSTANTS_CONFIG, 'tensor_')):
        table = _json(reader, config, path)
        try:
            check_payload_config(table, prefix)
        except ProgramTextError as error:
            raise UnsafeModelError(path, config, str(error)) from None
        folder = config.rsplit('/', 1)[0]
        for entry in table['config'].values():
            if isinstance(entry, dict) and entry.get('use_pickle'):
                member = f'{folder}/{entry.get("path_name")}'
                if member not in records:
                    message = f'{path}: {config} names {member}, which is missing'
                    raise ValueError(message)
                _check_pickle(reader.get_record(member), path, member, tensor=True)


def load_export_program(
    path: str | Path,
    *,
    trust: bool = False,
    extra_files: dict[str, Any] | None = None,
) -> torch.export.ExportedProgram:
    """``torch.export.load`` of a file checked by :func:`check_export_archive`.

    The file is read once; the bytes checked are the bytes loaded.

    Args:
        path: The ``.pt2`` file.
        trust: Load without the checks (a file you made or trust).
        extra_files: As in ``torch.export.load``: names to read from the
            archive's ``extra/`` folder; filled in place.

    Raises:
        UnsafeModelError: See :func:`check_export_archive`.
        ValueError: If the file is not a ``torch.export`` archive or torch
            cannot load its program (naming the file).

    Example:
        >>> extra = {'config.json': ''}
        >>> program = load_export_program('model.pt2', extra_files=extra)  # doctest: +SKIP
    """  # noqa: E501
    path = Path(path)
    data = path.read_bytes()
    if not trust:
        check_export_archive(data, path)
    try:
        return torch.export.load(io.BytesIO(data), extra_files=extra_files)
    except Exception as error:  # torch raises many types for a damaged program
        message = f'{path}: cannot load this torch.export model: {_first_line(error)}'
        raise ValueError(message) from error


def _onnx_graph_tensors(graph: Any, where: str) -> Iterator[tuple[str, Any]]:
    for tensor in graph.initializer:
        yield f'{where}initializer {tensor.name!r}', tensor
    for sparse in graph.sparse_initializer:
        yield f'{where}sparse initializer {sparse.values.name!r}', sparse.values
        yield f'{where}sparse initializer {sparse.values.name!r}', sparse.indices
    for node in graph.node:
        yield from _onnx_node_tensors(node, where)


def _onnx_node_tensors(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    for attribute in node.attribute:
        label = f'{where}attribute {attribute.name!r} of node {node.name!r}'
        tensors = [attribute.t, *attribute.tensors]
        for sparse in [attribute.sparse_tensor, *attribute.sparse_tensors]:
            tensors += [sparse.values, sparse.indices]
        for tensor in tensors:
            yield label, tensor
        for graph in [attribute.g, *attribute.graphs]:
            yield from _onnx_graph_tensors(graph, f'{label}: ')


def _onnx_nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for inner in [attribute.g, *attribute.graphs]:
                yield from _onnx_nodes(inner)


def _location_problem(location: str | None, folder: Path) -> str | None:
    """Why an external-data location is refused (``None``: beside the model)."""
    if not location:
        return 'external data without a location'
    parts = PureWindowsPath(location).parts
    if (
        PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).anchor
        or '..' in parts
    ):
        return f"external data at {location!r}, outside the model's folder"
    target = (folder / location).resolve()
    if not target.is_relative_to(folder):
        return f"external data at {location!r} leads outside the model's folder"
    return None


def check_onnx_model(path: str | Path) -> None:
    """Refuse an ONNX model that would read files outside its folder.

    Args:
        path: The ``.onnx`` file.

    Raises:
        UnsafeModelError: For external data outside the model's folder or an
            ``EPContext`` node, naming the tensor or node.
        ValueError: If the file is not an ONNX model.
        ImportError: Without the ``onnx`` package (``torchio-ramp[onnx]``).

    Example:
        >>> check_onnx_model('model.onnx')  # doctest: +SKIP
    """
    path = Path(path)
    try:
        import onnx
    except ImportError as error:
        message = (
            f'{path} is an ONNX model: install onnx and onnxruntime with pip install'
            ' "torchio-ramp[onnx]"'
        )
        raise ImportError(message) from error
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf and onnx raise their own types
        message = f'{path} is not a valid ONNX model: {_first_line(error)}'
        raise ValueError(message) from error
    folder = path.resolve().parent
    tensors = list(_onnx_graph_tensors(model.graph, ''))
    for function in model.functions:
        for node in function.node:
            tensors += _onnx_node_tensors(node, f'function {function.name!r}: ')
    for where, tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            problem = _location_problem(entries.get('location'), folder)
            if problem is not None:
                raise UnsafeModelError(path, where, problem)
    nodes = [*_onnx_nodes(model.graph)]
    nodes += [node for function in model.functions for node in function.node]
    for node in nodes:
        if node.op_type == 'EPContext':
            reason = 'an EPContext node, which names a compiled binary to load'
            raise UnsafeModelError(path, f'node {node.name!r}', reason)


def check_torchscript(path: str | Path, *, trust: bool) -> None:
    """Refuse a TorchScript file unless the caller trusts it.

    Raises:
        UnsafeModelError: If ``trust`` is false.

    Example:
        >>> check_torchscript('best.pt', trust=True)
    """
    if not trust:
        reason = (
            'a TorchScript file is a program: loading it runs the code it holds,'
            ' which can call any operator (aten::save writes files); export the'
            ' model with torch.export (.pt2) instead'
        )
        raise UnsafeModelError(path, None, reason)


__all__ = [
    'TRUST_HINT',
    'UnsafeModelError',
    'check_export_archive',
    'check_onnx_model',
    'check_torchscript',
    'load_export_program',
]
