"""The text of a serialized ``torch.export`` program, and the grammar of each piece.

A ``.pt2`` archive stores its program as JSON (``models/model.json``, written
by ``torch._export.serde.serialize``). Loading it turns several of its strings
into Python code or calls (torch 2.13: ``torch/_export/serde/serialize.py``,
``torch/export/_unlift.py``, ``torch/fx/graph.py``):

* node, argument and input names, ``forward_arg_names`` and the keys of the
  input tree are pasted into the source of the generated ``forward`` (FX code
  generation), which is then compiled and run;
* ``guards_code`` is pasted into a function that is ``exec``-ed when
  ``ExportedProgram.module()`` builds the module, and run on every call;
  the value of a text input and the range bounds are pasted into the same
  function;
* ``expr_str`` (a symbolic size) is parsed by ``sympy.sympify``, which calls
  ``eval``;
* a node's ``target`` is looked up as an attribute of ``torch``,
  ``operator`` or ``math``, and called when the graph runs.

:func:`check_program` accepts a program only when every string has the
grammar its field needs: identifiers, dotted module paths, operators of the
``aten`` and ``prims`` libraries (none that opens a file), a small set of
higher-order and scalar operators, sympy expressions without attributes,
subscripts or free text, guards that only compare input sizes, and free text
(metadata, string arguments; never evaluated) without control characters. A
string in any other field is refused: a field this module does not know is
not trusted. :func:`check_payload_config` does the same for the weights and
constants tables of the archive.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
from collections.abc import Callable
from typing import Any
from typing import NoReturn

import torch


class ProgramTextError(ValueError):
    """A string of a serialized program outside its field's grammar.

    Attributes:
        where: JSON path of the string, e.g. ``graph_module.graph.nodes[3].target``.
        reason: What is wrong with it.
    """

    def __init__(self, where: str, reason: str):
        self.where = where
        self.reason = reason
        super().__init__(f'{where}: {reason}')


_PART = r'(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+)'
_DOTTED = re.compile(rf'{_PART}(?:\.{_PART})*')
_MODULE_PATH = re.compile(rf'(?:{_DOTTED.pattern}(?:@[0-9]+)?)?')
_DEVICE = re.compile(r'[a-z][a-z0-9_]*')
_SYMBOL = re.compile(r'[a-z]+[0-9]+')
_ASCII_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_NUMBER = re.compile(r'[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?')
# Control characters other than tab and newline; \r and the rest end a line
# of Python source or of a comment in generated code.
_CONTROL = re.compile('[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]')
_MAX_TEXT = 100_000

_SCALAR_TARGETS = frozenset(
    [f'_operator.{name}' for name in ('getitem', 'eq', 'ne', 'le', 'ge', 'lt', 'gt')]
    + [f'_operator.{name}' for name in ('neg', 'pos', 'mul', 'add', 'sub', 'floordiv')]
    + [f'_operator.{name}' for name in ('mod', 'pow', 'truediv', 'and_', 'or_')]
    + ['_operator.lshift', '_operator.rshift', 'math.trunc', 'math.ceil', 'math.floor']
    + [f'torch.sym_{name}' for name in ('not', 'int', 'float', 'ite', 'max', 'min')]
    + ['torch.sym_sqrt', 'torch._sym_sqrt']
)
"""Scalar (``SymInt``) operators, as ``torch.export`` writes them."""

OPERATOR_LIBRARIES = ('aten', 'prims')
"""Operator libraries a program may call (``torch.ops.aten.add.Tensor``)."""

HIGHER_ORDER_OPERATORS = frozenset(
    [
        'cond',
        'while_loop',
        'map_impl',
        'scan',
        'associative_scan',
        'invoke_subgraph',
        'wrap_with_set_grad_enabled',
        'wrap_with_autocast',
    ]
)
"""Higher-order operators a program may call: control flow over its own graphs.

Left out: those that call Python functions, compiled or native code, custom
objects or effects (``flat_apply``, ``inline_asm_elementwise``,
``aoti_call_delegate``, ``call_torchbind``, ``with_effects``, ``print``...).
"""

_SYMPY_FUNCTIONS = frozenset(
    [
        'Symbol',
        'Integer',
        'Rational',
        'Float',
        'Add',
        'Mul',
        'Pow',
        'Mod',
        'Max',
        'Min',
        'Abs',
        'floor',
        'ceiling',
        'sqrt',
        'Eq',
        'Ne',
        'Lt',
        'Le',
        'Gt',
        'Ge',
        'Equality',
        'Unequality',
        'StrictLessThan',
        'StrictGreaterThan',
        'LessThan',
        'GreaterThan',
        'And',
        'Or',
        'Not',
        'BooleanTrue',
        'BooleanFalse',
        'Infinity',
        'NegativeInfinity',
        'IntInfinity',
        'NegativeIntInfinity',
        # torch.utils._sympy.functions, as named in torch's deserializer
        'FloorDiv',
        'ModularIndexing',
        'Where',
        'PythonMod',
        'CleanDiv',
        'CeilToInt',
        'FloorToInt',
        'CeilDiv',
        'LShift',
        'RShift',
        'PowByNatural',
        'FloatPow',
        'FloatTrueDiv',
        'IntTrueDiv',
        'IsNonOverlappingAndDenseIndicator',
        'TruncToFloat',
        'TruncToInt',
        'RoundToInt',
        'RoundDecimal',
        'ToFloat',
        'Identity',
    ]
)
_SYMPY_NAMES = frozenset(['oo', 'zoo', 'nan', 'true', 'false', 'int_oo'])
_GUARD_FUNCTIONS = frozenset(
    [
        'min',
        'max',
        'abs',
        'int',
        'float',
        'round',
        'Eq',
        'Ne',
        'Lt',
        'Le',
        'Gt',
        'Ge',
        'Max',
        'Min',
        'Mod',
        'Abs',
        'FloorDiv',
        'PythonMod',
        'CleanDiv',
        'CeilDiv',
        'IntTrueDiv',
        'FloatTrueDiv',
        'ToFloat',
        'TruncToInt',
        'TruncToFloat',
        'RoundToInt',
        'FloorToInt',
        'CeilToInt',
    ]
)
_GUARD_METHODS = frozenset(['size', 'stride', 'storage_offset', 'dim', 'numel'])
_MATH_FUNCTIONS = frozenset(['isnan', 'isinf', 'isfinite', 'floor', 'ceil', 'trunc'])
_ARITHMETIC = (
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.BitAnd,
    ast.BitOr,
    ast.BitXor,
)
_COMPARISONS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_UNARY = (ast.USub, ast.UAdd, ast.Not, ast.Invert)


def _fail(reason: str) -> NoReturn:
    raise ValueError(reason)


def _identifier(text: str) -> None:
    if not (text.isascii() and text.isidentifier() and not keyword.iskeyword(text)):
        _fail(f'{text!r} is not a Python identifier')


def _name(text: str) -> None:
    """An identifier, or nothing (the name of a positional argument)."""
    if text:
        _identifier(text)


def _dotted(text: str) -> None:
    if not _DOTTED.fullmatch(text):
        _fail(f'{text!r} is not a dotted name')


def _module_path(text: str) -> None:
    if not _MODULE_PATH.fullmatch(text):
        _fail(f'{text!r} is not a module path')


def _device(text: str) -> None:
    if not _DEVICE.fullmatch(text):
        _fail(f'{text!r} is not a device type')


def _text(text: str) -> None:
    if _CONTROL.search(text):
        _fail(f'text {text[:40]!r}... holds a control character')


def operator_problem(target: str) -> str | None:
    """Why a node may not call ``target`` (``None``: it may).

    Example:
        >>> operator_problem('torch.ops.aten.add.Tensor') is None
        True
        >>> operator_problem('torch.os.system')
        "'torch.os.system' is not an operator a model may call"
    """
    refused = f'{target!r} is not an operator a model may call'
    if target in _SCALAR_TARGETS:
        return None
    parts = target.split('.')
    if (
        not _DOTTED.fullmatch(target)
        or parts[:2] != ['torch', 'ops']
        or any(part.startswith('__') for part in parts)
    ):
        return refused
    library = parts[2] if len(parts) > 2 else ''
    if library == 'higher_order':
        if len(parts) != 4 or parts[3] not in HIGHER_ORDER_OPERATORS:
            return refused
        found = getattr(torch.ops.higher_order, parts[3], None)
        return None if isinstance(found, torch._ops.HigherOrderOperator) else refused
    if library not in OPERATOR_LIBRARIES or len(parts) != 5:
        return refused
    packet = getattr(getattr(torch.ops, library), parts[3], None)
    found = getattr(packet, parts[4], None) if packet is not None else None
    if not isinstance(found, torch._ops.OpOverload):
        return f'{target!r} is not an operator of this PyTorch'
    if any(argument.name == 'filename' for argument in found._schema.arguments):
        return f'{target!r} opens a file'
    return None


def _operator(text: str) -> None:
    problem = operator_problem(text)
    if problem is not None:
        _fail(problem)


def _parse(text: str) -> ast.Expression:
    if len(text) > _MAX_TEXT:
        _fail(f'expression of {len(text)} characters')
    try:
        return ast.parse(text, mode='eval')
    except (SyntaxError, ValueError):
        _fail(f'{text[:60]!r} is not an expression')


def _constant(node: ast.Constant) -> None:
    value = node.value
    if value is not None and type(value) not in (bool, int, float):
        _fail(f'constant {value!r} is not a number')


def _check_expression(
    node: ast.AST,
    call: Callable[[ast.Call], None],
    name: Callable[[ast.Name], None],
    extra: Callable[[ast.AST], bool] = lambda node: False,
    text_arguments: bool = False,
) -> None:
    """Walk an expression allowing arithmetic, comparisons and numbers only,
    plus what ``call``, ``name`` and ``extra`` accept (and text arguments of
    calls, checked by ``call``, if ``text_arguments``)."""

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            _constant(node)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
            walk(node.left)
            walk(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            walk(node.operand)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                walk(value)
        elif isinstance(node, ast.Compare) and all(
            isinstance(op, _COMPARISONS) for op in node.ops
        ):
            walk(node.left)
            for comparator in node.comparators:
                walk(comparator)
        elif isinstance(node, ast.Call):
            call(node)
            for argument in node.args:
                text = isinstance(argument, ast.Constant) and isinstance(
                    argument.value, str
                )
                if not (text and text_arguments):
                    walk(argument)
            for keyword_ in node.keywords:
                walk(keyword_.value)
        elif isinstance(node, ast.Name):
            name(node)
        elif not extra(node):
            _fail(f'{ast.unparse(node)[:60]!r} is not allowed here')

    walk(node)


def _sympy_call(node: ast.Call) -> None:
    function = node.func.id if isinstance(node.func, ast.Name) else None
    if function not in _SYMPY_FUNCTIONS:
        _fail(f'{ast.unparse(node.func)[:40]!r} is not a sympy function allowed here')
    for index, argument in enumerate(node.args):
        if isinstance(argument, ast.Starred):
            _fail('starred arguments are not allowed')
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            if index == 0 and function == 'Symbol':
                if not _SYMBOL.fullmatch(argument.value):
                    _fail(f'symbol name {argument.value!r} is not allowed')
            elif index == 0 and function in ('Float', 'Integer', 'Rational'):
                if not _NUMBER.fullmatch(argument.value):
                    _fail(f'{argument.value!r} is not a number')
            else:
                _fail(f'text argument {argument.value[:40]!r} is not allowed')
    for keyword_ in node.keywords:
        if keyword_.arg is None or not re.fullmatch(r'[a-z]+', keyword_.arg):
            _fail('keyword arguments other than sympy assumptions are not allowed')
        if not isinstance(keyword_.value, ast.Constant):
            _fail(f'assumption {keyword_.arg} must be a constant')


def _sympy_name(node: ast.Name) -> None:
    if node.id not in _SYMPY_NAMES and not _SYMBOL.fullmatch(node.id):
        _fail(f'name {node.id!r} is not a size symbol')


def _sympy_expression(text: str) -> None:
    body = _parse(text).body
    _check_expression(body, _sympy_call, _sympy_name, text_arguments=True)


def _input_reference(node: ast.AST) -> bool:
    """``L['x']``, ``L['x'][0]``, ``L['x'].shape``: an input of the program."""
    if isinstance(node, ast.Subscript):
        key = node.slice
        if not isinstance(key, ast.Constant):
            return False
        if isinstance(node.value, ast.Name) and node.value.id == 'L':
            text = key.value
            return isinstance(text, str) and _ASCII_NAME.fullmatch(text) is not None
        return type(key.value) is int and _guard_value(node.value)
    if isinstance(node, ast.Attribute) and node.attr == 'shape':
        return _input_reference(node.value)
    return False


def _guard_value(node: ast.AST) -> bool:
    if _input_reference(node):
        return True
    if isinstance(node, ast.Call):
        try:
            _guard_call(node)
        except ValueError:
            return False
        return all(
            isinstance(a, ast.Constant) and type(a.value) is int for a in node.args
        )
    return False


def _guard_call(node: ast.Call) -> None:
    function = node.func
    if isinstance(function, ast.Name) and function.id in _GUARD_FUNCTIONS:
        return
    if isinstance(function, ast.Attribute):
        if (
            isinstance(function.value, ast.Name)
            and function.value.id == 'math'
            and function.attr in _MATH_FUNCTIONS
        ):
            return
        if function.attr in _GUARD_METHODS and _input_reference(function.value):
            if node.keywords or not all(
                isinstance(a, ast.Constant) and type(a.value) is int for a in node.args
            ):
                _fail('size methods take integer constants only')
            return
    _fail(f'{ast.unparse(function)[:40]!r} may not be called in a guard')


def _guard_name(node: ast.Name) -> None:
    _fail(f'name {node.id!r} is not allowed in a guard')


def _guard(text: str) -> None:
    body = _parse(text).body
    _check_expression(body, _guard_call, _guard_name, _guard_value)


def _treespec_context(value: Any) -> None:
    if isinstance(value, str):
        _dotted(value)
    elif isinstance(value, list):
        for item in value:
            _treespec_context(item)
    elif value is not None and type(value) not in (bool, int, float):
        _fail('a tree context holds only names and numbers')


def _treespec_node(node: Any) -> None:
    if not isinstance(node, dict) or set(node) != {'type', 'context', 'children_spec'}:
        _fail('not a tree specification')
    if node['type'] is not None:
        _dotted(node['type'])
    if node['context'] is not None:
        if not isinstance(node['context'], str):
            _fail('a tree context must be JSON text')
        try:
            context = json.loads(node['context'])
        except json.JSONDecodeError:
            _fail('a tree context is not JSON')
        _treespec_context(context)
    if not isinstance(node['children_spec'], list):
        _fail('not a tree specification')
    for child in node['children_spec']:
        _treespec_node(child)


def _treespec(text: str) -> None:
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        _fail('a tree specification is not JSON')
    if not (isinstance(spec, list) and len(spec) == 2 and type(spec[0]) is int):
        _fail('not a tree specification')
    _treespec_node(spec[1])


_TEXT_RULES: dict[str, Callable[[str], None]] = {
    'name': _name,
    'as_name': _identifier,
    'forward_arg_names': _identifier,
    'field_names': _identifier,
    'verifiers': _identifier,
    'target': _operator,
    'as_operator': _operator,
    'expr_str': _sympy_expression,
    'guards_code': _guard,
    'parameter_name': _dotted,
    'buffer_name': _dotted,
    'tensor_constant_name': _dotted,
    'user_input_name': _dotted,
    'fqn': _module_path,
    'in_spec': _treespec,
    'out_spec': _treespec,
    'type': _device,
    'as_string': _text,
    'as_strings': _text,
    'torch_version': _text,
    'metadata[]': _text,
}
"""Fields that may hold text, and the grammar of each."""

_METADATA_VALUE = 'metadata[]'
"""Key of a metadata value (not a field name, so no field can claim its rule)."""

_MAPS: dict[str, Callable[[str], None]] = {
    'tensor_values': _identifier,
    'sym_int_values': _identifier,
    'sym_bool_values': _identifier,
    'sym_float_values': _identifier,
    'metadata': _identifier,
    'range_constraints': _sympy_expression,
    'opset_version': _dotted,
    'treespec_namedtuple_fields': _dotted,
    'config': _dotted,
    'as_string_to_argument': _text,
}
"""Fields that map names to values, and the grammar of the names."""

_CUSTOM_OBJECTS = frozenset(
    ['custom_obj_values', 'as_custom_obj', 'custom_obj', 'class_fqn', 'custom_obj_name']
)
_TEXT_INPUT_PARENTS = frozenset(['inputs', 'value'])
_FIELD = re.compile(r'[a-z_][a-z0-9_]*')


def _where(path: tuple[str | int, ...]) -> str:
    text = ''
    for part in path:
        text += f'[{part}]' if isinstance(part, int) else f'.{part}' if text else part
    return text or '(top)'


def _walk(
    value: Any,
    key: str | None,
    path: tuple[str | int, ...],
    rules: dict[str, Callable[[str], None]],
) -> None:
    try:
        if key in _CUSTOM_OBJECTS and value:
            _fail('custom (TorchBind) objects are not loaded')
        if isinstance(value, dict):
            if key in _TEXT_INPUT_PARENTS and (
                {'as_string', 'as_strings'} & set(value)
            ):
                _fail(
                    'a text input of the program (torch pastes its value into'
                    ' generated code)'
                )
            name_rule = _MAPS.get(key) if key is not None else None
            for name, item in value.items():
                if name_rule is not None:
                    name_rule(name)
                    child = _METADATA_VALUE if key == 'metadata' else None
                elif _FIELD.fullmatch(name):
                    child = name
                else:
                    _fail(f'unknown field {name!r}')
                _walk(item, child, (*path, name), rules)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                _walk(item, key, (*path, index), rules)
        elif isinstance(value, str):
            rule = rules.get(key) if key is not None else None
            if rule is None:
                _fail('text where the schema has none')
            if len(value) > _MAX_TEXT:
                _fail(f'text of {len(value)} characters')
            try:
                rule(value)
            except RecursionError:
                _fail('an expression nested too deeply')
    except ProgramTextError:
        raise
    except ValueError as error:
        raise ProgramTextError(_where(path), str(error)) from None


def _check_document(document: dict, rules: dict[str, Callable[[str], None]]) -> None:
    try:
        _walk(document, None, (), rules)
    except RecursionError:
        raise ProgramTextError('(top)', 'nested too deeply') from None


def check_program(document: Any) -> None:
    """Refuse a serialized program whose text could run code when loaded.

    Args:
        document: The parsed JSON of an archive's ``models/<name>.json``.

    Raises:
        ProgramTextError: Naming the first string outside its field's
            grammar (its JSON path) and why.

    Example:
        >>> node = {'target': 'torch.os.system', 'inputs': [], 'outputs': []}
        >>> program = {'graph_module': {'graph': {'nodes': [node]}}}
        >>> check_program(program)
        Traceback (most recent call last):
        ...
        torchio_ramp.model_files.program_text.ProgramTextError: graph_module.graph.nodes[0].target: 'torch.os.system' is not an operator a model may call
    """  # noqa: E501
    if not isinstance(document, dict):
        raise ProgramTextError('(top)', 'not a JSON object')
    _check_document(document, _TEXT_RULES)


def check_payload_config(document: Any, prefix: str) -> None:
    """Refuse a weights or constants table other than ``torch.export.save``'s.

    Args:
        document: The parsed ``<name>_weights_config.json`` or
            ``<name>_constants_config.json``.
        prefix: The member names it may point to: ``'weight_'`` or
            ``'tensor_'`` followed by a number.

    Raises:
        ProgramTextError: Naming the entry.

    Example:
        >>> entry = {'path_name': '../sample_inputs/model.pt', 'use_pickle': True}
        >>> check_payload_config({'config': {'w': entry}}, 'weight_')
        Traceback (most recent call last):
        ...
        torchio_ramp.model_files.program_text.ProgramTextError: config.w.path_name: '../sample_inputs/model.pt' is not a member weight_N
    """  # noqa: E501
    pattern = re.compile(re.escape(prefix) + '[0-9]+')

    def path_name(text: str) -> None:
        if not pattern.fullmatch(text):
            _fail(f'{text!r} is not a member {prefix}N')

    if not isinstance(document, dict) or not isinstance(document.get('config'), dict):
        raise ProgramTextError('(top)', 'not a table of tensors')
    _check_document(document, {**_TEXT_RULES, 'path_name': path_name})


__all__ = [
    'HIGHER_ORDER_OPERATORS',
    'OPERATOR_LIBRARIES',
    'ProgramTextError',
    'check_payload_config',
    'check_program',
    'operator_problem',
]
