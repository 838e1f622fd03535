"""Crafted model files: loading one never runs code from it.

Each crafted ``.pt2`` starts as a real ``torch.export.save`` archive whose
members are then edited with :mod:`zipfile`. Every payload would create a
sentinel file when it runs (a pickle whose ``__reduce__`` calls ``open``, or
Python source calling ``open``); each case asserts the refusal names the file
and the member and that the sentinel does not exist. The ``live`` cases also
load the same file with plain PyTorch and assert that the sentinel *is*
created: the payloads are real attacks on this PyTorch, not strawmen.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from torchio_ramp.model_files import load_model
from torchio_ramp.model_files import load_model_file
from torchio_ramp.model_files.program_text import ProgramTextError
from torchio_ramp.model_files.program_text import check_program
from torchio_ramp.model_files.program_text import operator_problem
from torchio_ramp.model_files.safety import UnsafeModelError
from torchio_ramp.model_files.safety import check_export_archive
from torchio_ramp.model_files.safety import load_export_program

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning')

Members = dict[str, bytes]


class Opens:
    """Unpickling this creates the file ``path`` (``open(path, 'w')``)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, 'w')


class Segmenter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 3, 1)
        self.register_buffer('scale', torch.tensor(2.0))

    def forward(self, x):
        return self.conv(x) * self.scale


@pytest.fixture(scope='module')
def archive(tmp_path_factory) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """A real archive (dynamic batch), an input and the model's output on it."""
    torch.manual_seed(0)
    model = Segmenter().eval()
    x = torch.rand(2, 1, 4, 4, 4)
    batch = torch.export.Dim('batch', min=1, max=64)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    path = tmp_path_factory.mktemp('archive') / 'model.pt2'
    torch.export.save(program, path, extra_files={'config.json': '{"patch_size": 4}'})
    with torch.no_grad():
        return path, x, model(x)


@pytest.fixture
def sentinel(tmp_path) -> Path:
    path = tmp_path / 'SENTINEL'
    yield path
    path.unlink(missing_ok=True)


def craft(base: Path, out: Path, edit: Callable[[str, Members], None]) -> Path:
    """Copy ``base`` to ``out`` after ``edit(root, members)``."""
    with zipfile.ZipFile(base) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    root = next(iter(members)).split('/')[0]
    edit(root, members)
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as target:
        for name, data in members.items():
            target.writestr(name, data)
    return out


def program(root: str, members: Members) -> dict:
    return json.loads(members[f'{root}/models/model.json'])


def set_program(root: str, members: Members, document: dict) -> None:
    members[f'{root}/models/model.json'] = json.dumps(document).encode()


def payload(sentinel: Path) -> bytes:
    return pickle.dumps(Opens(sentinel), protocol=2)


def table(root: str, members: Members, kind: str) -> dict:
    name = f'{root}/data/{kind}/model_{kind}_config.json'
    return json.loads(members[name])


def set_table(root: str, members: Members, kind: str, document: dict) -> None:
    name = f'{root}/data/{kind}/model_{kind}_config.json'
    members[name] = json.dumps(document).encode()


# Each attack: edit(root, members, sentinel), the member the refusal names,
# and whether plain torch.export.load (plus .module() and a call) runs it.


def pickled_sample_inputs(root, members, sentinel):
    members[f'{root}/data/sample_inputs/model.pt'] = payload(sentinel)


def pickled_weight(root, members, sentinel):
    weights = table(root, members, 'weights')
    entry = weights['config']['conv.weight']
    entry['use_pickle'] = True
    set_table(root, members, 'weights', weights)
    members[f'{root}/data/weights/{entry["path_name"]}'] = payload(sentinel)


def constant_entry(path_name: str, use_pickle: bool = True) -> dict:
    entry = {'path_name': path_name, 'is_param': False, 'use_pickle': use_pickle}
    return {'config': {'lut': {**entry, 'tensor_meta': None}}}


def pickled_constant(root, members, sentinel):
    set_table(root, members, 'constants', constant_entry('tensor_0'))
    members[f'{root}/data/constants/tensor_0'] = payload(sentinel)


def opaque_constant(root, members, sentinel):
    set_table(root, members, 'constants', constant_entry('opaque_obj_0'))
    members[f'{root}/data/constants/opaque_obj_0'] = payload(sentinel)


def custom_object_constant(root, members, sentinel):
    set_table(root, members, 'constants', constant_entry('custom_obj_0'))
    members[f'{root}/data/constants/custom_obj_0'] = payload(sentinel)


def legacy_weights(root, members, sentinel):
    del members[f'{root}/data/weights/model_weights_config.json']
    members[f'{root}/data/weights/model.pt'] = payload(sentinel)


def legacy_constants(root, members, sentinel):
    del members[f'{root}/data/constants/model_constants_config.json']
    members[f'{root}/data/constants/model.pt'] = payload(sentinel)


def legacy_layout(root, members, sentinel):
    """The layout of torch 2.7 (members at the top), which torch falls back to."""
    program_json = members[f'{root}/models/model.json']
    members.clear()
    members['archive_format'] = b'pt2'
    members['version'] = b'8.20'
    members['serialized_exported_program.json'] = program_json
    for part in ('state_dict', 'constants', 'example_inputs'):
        members[f'serialized_{part}.pt'] = payload(sentinel)


def native_code(root, members, sentinel):
    members[f'{root}/data/aotinductor/model/model.so'] = b'\x7fELF' + payload(sentinel)


def duplicate_member(root, members, sentinel):
    # zipfile ends a name at NUL: a second member data/sample_inputs/model.pt
    members[f'{root}/data/sample_inputs/model.pt\0'] = payload(sentinel)


def table_points_elsewhere(root, members, sentinel):
    weights = table(root, members, 'weights')
    entry = weights['config']['conv.weight']
    entry['use_pickle'] = True
    entry['path_name'] = '../../extra/payload.pt'
    set_table(root, members, 'weights', weights)
    members[f'{root}/extra/payload.pt'] = payload(sentinel)


def node_calls_a_function(root, members, sentinel):
    document = program(root, members)
    node = document['graph_module']['graph']['nodes'][0]
    node['target'] = 'torch.os.system'
    command = {'as_string': f'touch {sentinel}'}
    node['inputs'] = [{'name': 'command', 'arg': command, 'kind': 1}]
    set_program(root, members, document)


def node_loads_a_library(root, members, sentinel):
    document = program(root, members)
    node = document['graph_module']['graph']['nodes'][0]
    node['target'] = 'torch.ops.load_library'
    node['inputs'] = [{'name': 'path', 'arg': {'as_string': str(sentinel)}, 'kind': 1}]
    set_program(root, members, document)


def node_reads_a_file(root, members, sentinel):
    document = program(root, members)
    node = document['graph_module']['graph']['nodes'][0]
    node['target'] = 'torch.ops.aten.from_file.default'
    node['inputs'] = [
        {'name': 'filename', 'arg': {'as_string': '/etc/passwd'}, 'kind': 1}
    ]
    set_program(root, members, document)


CODE = "open({!r}, 'w')"


def code_in_a_node_name(root, members, sentinel):
    text = members[f'{root}/models/model.json'].decode()
    name = json.dumps(f'conv3d = {CODE.format(str(sentinel))}; conv3d')
    members[f'{root}/models/model.json'] = text.replace('"conv3d"', name).encode()


def code_in_argument_names(root, members, sentinel):
    document = program(root, members)
    signature = document['graph_module']['module_call_graph'][0]['signature']
    signature['forward_arg_names'] = [f'x={CODE.format(str(sentinel))}']
    set_program(root, members, document)


def code_in_guards(root, members, sentinel):
    document = program(root, members)
    document['guards_code'] = [f'{CODE.format(str(sentinel))} is not None']
    set_program(root, members, document)


def code_in_a_size(root, members, sentinel):
    text = members[f'{root}/models/model.json'].decode()
    code = json.dumps(f"Symbol({CODE.format(str(sentinel))} and 's")[1:-1]
    text = text.replace("Symbol('s", code, 1)
    members[f'{root}/models/model.json'] = text.encode()


def code_in_a_range(root, members, sentinel):
    document = program(root, members)
    (bounds,) = document['range_constraints'].values()
    bounds['max_val'] = f'{CODE.format(str(sentinel))} and 64'
    set_program(root, members, document)


def code_in_a_parameter_name(root, members, sentinel):
    document = program(root, members)
    spec = document['graph_module']['signature']['input_specs'][0]['parameter']
    spec['parameter_name'] = f'conv.x") or {CODE.format(str(sentinel))} or ("'
    set_program(root, members, document)


def line_break_in_metadata(root, members, sentinel):
    document = program(root, members)
    node = document['graph_module']['graph']['nodes'][0]
    trace = f'File "a.py", line 1, in f\n    x\r{CODE.format(str(sentinel))}'
    node['metadata']['stack_trace'] = trace
    set_program(root, members, document)


def text_input(root, members, sentinel):
    document = program(root, members)
    graph = document['graph_module']['graph']
    graph['inputs'].append({'as_string': f"x' or {CODE.format(str(sentinel))} or '"})
    set_program(root, members, document)


def custom_object_argument(root, members, sentinel):
    document = program(root, members)
    graph = document['graph_module']['graph']
    graph['custom_obj_values'] = {'obj': {'name': 'obj', 'class_fqn': 'os.system'}}
    set_program(root, members, document)


SAMPLE = 'data/sample_inputs/model.pt'
PROGRAM = 'models/model.json'
ATTACKS = {
    'pickled sample inputs': (pickled_sample_inputs, SAMPLE, True),
    'weight marked use_pickle': (pickled_weight, 'data/weights/weight_0', True),
    'constant marked use_pickle': (pickled_constant, 'data/constants/tensor_0', True),
    'opaque constant': (opaque_constant, 'data/constants/opaque_obj_0', True),
    'custom object': (custom_object_constant, 'data/constants/custom_obj_0', False),
    'legacy weights': (legacy_weights, 'data/weights/model.pt', True),
    'legacy constants': (legacy_constants, 'data/constants/model.pt', True),
    'legacy layout': (legacy_layout, None, True),
    'AOTInductor library': (native_code, 'data/aotinductor/model/model.so', False),
    'duplicate member': (duplicate_member, SAMPLE, False),
    'table points elsewhere': (
        table_points_elsewhere,
        'data/weights/model_weights_config.json',
        False,
    ),
    'node calls a function': (node_calls_a_function, PROGRAM, False),
    'node loads a library': (node_loads_a_library, PROGRAM, False),
    'node reads a file': (node_reads_a_file, PROGRAM, False),
    'code in a node name': (code_in_a_node_name, PROGRAM, False),
    'code in argument names': (code_in_argument_names, PROGRAM, False),
    'code in guards': (code_in_guards, PROGRAM, True),
    'code in a symbolic size': (code_in_a_size, PROGRAM, True),
    'code in a range bound': (code_in_a_range, PROGRAM, False),
    'code in a parameter name': (code_in_a_parameter_name, PROGRAM, False),
    'line break in metadata': (line_break_in_metadata, PROGRAM, False),
    'text input': (text_input, PROGRAM, False),
    'custom object argument': (custom_object_argument, PROGRAM, False),
}


def crafted(archive, tmp_path, sentinel, attack: str) -> Path:
    edit, _, _ = ATTACKS[attack]
    out = tmp_path / 'crafted.pt2'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # zipfile warns of the duplicate name
        return craft(
            archive[0], out, lambda root, members: edit(root, members, sentinel)
        )


@pytest.mark.parametrize('attack', list(ATTACKS))
def test_crafted_archive_is_refused_and_runs_nothing(
    archive, tmp_path, sentinel, attack
):
    path = crafted(archive, tmp_path, sentinel, attack)
    _, member, _ = ATTACKS[attack]
    with pytest.raises(ValueError) as caught:
        load_model_file(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    if member is None:  # not loaded at all
        assert 'is not a valid torch.export archive' in message
    else:
        assert isinstance(caught.value, UnsafeModelError)
        assert caught.value.member == member
        assert message.startswith(f'{path} ({member}): refused: ')
        assert message.endswith('Load it only if you trust its source (trust=True).')
    assert not sentinel.exists()


def plain_torch_load(path: Path) -> None:
    """What ``torch.export.load`` does with the file, unchecked."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with path.open('rb') as file:
            module = torch.export.load(file).module()
        module(torch.rand(2, 1, 4, 4, 4))


@pytest.mark.parametrize('attack', [name for name, a in ATTACKS.items() if a[2]])
def test_the_live_payloads_run_under_plain_torch(archive, tmp_path, sentinel, attack):
    path = crafted(archive, tmp_path, sentinel, attack)
    with contextlib.suppress(Exception):  # most payloads break loading after running
        plain_torch_load(path)
    assert sentinel.exists()


def test_crafted_duplicate_really_holds_two_members(archive, tmp_path, sentinel):
    path = crafted(archive, tmp_path, sentinel, 'duplicate member')
    names = zipfile.ZipFile(path).namelist()
    assert sum(name.endswith(SAMPLE) for name in names) == 2


def test_a_real_archive_loads_and_computes_the_same(archive):
    path, x, expected = archive
    module, config, kind = load_model_file(path)
    assert kind == 'torch.export'
    assert json.loads(config) == {'patch_size': 4}
    with torch.no_grad():
        torch.testing.assert_close(module(x), expected)
        assert module(x[:1]).shape == (1, 3, 4, 4, 4)


def test_dynamic_spatial_sizes_with_guards_are_loaded(tmp_path):
    from torchio_ramp.models import UNet3d

    model = UNet3d(channels=(4, 8)).eval()
    x = torch.rand(2, 1, 16, 16, 16)
    dims = {0: torch.export.Dim('b', max=8), 2: 8 * torch.export.Dim('d', max=16)}
    exported = torch.export.export(model, (x,), dynamic_shapes=({**dims},))
    assert exported._guards_code  # min(...) guards: the grammar must accept them
    torch.export.save(exported, tmp_path / 'unet.pt2')
    module, _, _ = load_model_file(tmp_path / 'unet.pt2')
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x))


class Branches(torch.nn.Module):
    """Control flow, a lifted tensor constant, batch norm and a dict output."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 1)
        self.norm = torch.nn.BatchNorm3d(2)
        self.weights = torch.tensor([1.0, 2.0])  # not a buffer: a constant

    def forward(self, x):
        y = self.norm(self.conv(x)) * self.weights.view(1, 2, 1, 1, 1)
        y = torch.cond(x.sum() > 0, lambda t: t + 1, lambda t: t - 1, (y,))
        return {'logits': y, 'mean': y.mean()}


def test_control_flow_and_constants_are_loaded(tmp_path):
    model = Branches().eval()
    x = torch.rand(2, 1, 4, 4, 4)
    torch.export.save(torch.export.export(model, (x,)), tmp_path / 'branches.pt2')
    program = load_export_program(tmp_path / 'branches.pt2')
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x))


def test_trust_loads_what_the_checks_refuse(archive, tmp_path):
    def add_notes(root, members):
        members[f'{root}/notes.txt'] = b'exported by hand'

    path = craft(archive[0], tmp_path / 'notes.pt2', add_notes)
    with pytest.raises(UnsafeModelError, match=r'notes\.txt.*does not write'):
        load_model_file(path)
    module, _, _ = load_model_file(path, trust=True)
    with torch.no_grad():
        torch.testing.assert_close(module(archive[1]), archive[2])


def test_a_pickled_weight_must_be_a_tensor(archive, tmp_path):
    def pickled_dict(root, members):
        weights = table(root, members, 'weights')
        entry = weights['config']['conv.weight']
        entry['use_pickle'] = True
        set_table(root, members, 'weights', weights)
        buffer = io.BytesIO()
        torch.save({'weight': torch.zeros(1)}, buffer)
        members[f'{root}/data/weights/{entry["path_name"]}'] = buffer.getvalue()

    path = craft(archive[0], tmp_path / 'dict.pt2', pickled_dict)
    with pytest.raises(UnsafeModelError, match='a pickle of dict where torch expects'):
        load_export_program(path)


def test_check_reads_the_bytes_it_is_given(archive, sentinel):
    data = archive[0].read_bytes()
    check_export_archive(data, archive[0])  # the real archive passes
    with pytest.raises(ValueError, match=r'not a valid torch\.export archive'):
        check_export_archive(data[: len(data) // 2], archive[0])


def test_load_model_refuses_a_crafted_archive(archive, tmp_path, sentinel):
    path = crafted(archive, tmp_path, sentinel, 'pickled sample inputs')
    with pytest.raises(UnsafeModelError, match='restricted'):
        load_model(path)
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ('target', 'allowed'),
    [
        ('torch.ops.aten.convolution.default', True),
        ('torch.ops.aten._native_batch_norm_legit_no_training.default', True),
        ('torch.ops.higher_order.cond', True),
        ('_operator.getitem', True),
        ('torch.sym_max', True),
        ('torch.ops.aten.from_file.default', False),
        ('torch.ops.aten.add.__call__', False),
        ('torch.ops.higher_order.flat_apply', False),
        ('torch.ops.higher_order.inline_asm_elementwise', False),
        ('torch.ops.import_module', False),
        ('torch.ops.mylib.op.default', False),
        ('builtins.exec', False),
        ('math.nonexistent', False),
    ],
)
def test_operators_a_model_may_call(target, allowed):
    assert (operator_problem(target) is None) is allowed


@pytest.mark.parametrize(
    'expression',
    [
        "Symbol('s0', positive=True, integer=True)",
        "Mul(Integer(8), Symbol('s40', integer=True, positive=True))",
        "FloorDiv(Symbol('s0'), Integer(2)) + 1",
        "Eq(Mod(Symbol('s1'), Integer(4)), Integer(0))",
        "Float('1.5', precision=53)",
    ],
)
def test_sizes_torch_writes_are_accepted(expression):
    check_program(sizes(expression))


def sizes(expression: str) -> dict:
    size = {'as_expr': {'expr_str': expression, 'hint': {'as_int': 2}}}
    meta = {'dtype': 7, 'sizes': [size], 'requires_grad': False}
    return {'graph_module': {'graph': {'tensor_values': {'x': meta}}}}


@pytest.mark.parametrize(
    'expression',
    [
        "Symbol('s0').__class__",
        "Symbol('x; import os')",
        "sympify('s0')",
        'Integer(\'__import__("os")\')',
        "Max(s0, 'text')",
        'Symbol(*args)',
        '[s0 for s0 in s1]',
        "Symbol('s0', positive='yes')",
    ],
)
def test_sizes_outside_the_grammar_are_refused(expression):
    with pytest.raises(ProgramTextError, match='expr_str'):
        check_program(sizes(expression))


@pytest.mark.parametrize(
    ('guard', 'allowed'),
    [
        ("L['x'].size()[0] <= 64", True),
        ("min(8 + 8*(L['x'].size()[2] // 2), 64) == 8", True),
        ("math.isnan(L['x'])", True),
        ("L['x'].size()[0] == L['y'].stride()[1]", True),
        ("L['x'].__class__ is None", False),
        ("L['x'].size()[0] == 'a\"b'", False),
        ("getattr(L['x'], 'size')()[0] == 2", False),
        ("torch.ops.load_library('x')", False),
        ("L['x'].size(*L)[0] == 2", False),
    ],
)
def test_guards(guard, allowed):
    document = {'guards_code': [guard]}
    if allowed:
        check_program(document)
    else:
        with pytest.raises(ProgramTextError, match=r'guards_code\[0\]'):
            check_program(document)


def test_deep_nesting_is_refused_not_a_crash():
    deep: dict = {'guards_code': []}
    for _ in range(5000):
        deep = {'graph_module': deep}
    with pytest.raises(ProgramTextError, match='nested too deeply'):
        check_program(deep)
    long_sum = '+'.join(['1'] * 40_000)
    with pytest.raises(ProgramTextError, match=r'expr_str: .*nested too deeply'):
        check_program(sizes(long_sum))


# ONNX: external data must stay beside the model; EPContext nodes are refused.


def onnx_model(folder: Path, location: str | None, node: str = 'Add') -> Path:
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    from onnx import TensorProto
    from onnx import helper

    weights = TensorProto(name='w', data_type=TensorProto.FLOAT, dims=[2])
    if location is None:
        weights.float_data.extend([1.0, 2.0])
    else:
        weights.data_location = TensorProto.EXTERNAL
        for key, value in (('location', location), ('offset', '0'), ('length', '8')):
            weights.external_data.add(key=key, value=value)
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, [2])
    nodes = [helper.make_node('Add', ['x', 'w'], ['y'], name='add')]
    if node == 'EPContext':
        nodes = [
            helper.make_node(
                'EPContext',
                ['x'],
                ['y'],
                name='context',
                domain='com.microsoft',
                ep_cache_context=str(folder.parent / 'engine.bin'),
                embed_mode=0,
            )
        ]
    graph = helper.make_graph(nodes, 'g', [x], [y], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / 'model.onnx'
    onnx.save(model, str(path))
    return path


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside the model's folder (two floats) that must not be read."""
    path = tmp_path / 'outside.bin'
    path.write_bytes(torch.tensor([7.0, 8.0]).numpy().tobytes())
    return path


@pytest.mark.parametrize('where', ['parent', 'absolute', 'link', 'nested parent'])
def test_onnx_external_data_outside_the_folder_is_refused(tmp_path, outside, where):
    folder = tmp_path / 'model'
    folder.mkdir()
    location = {
        'parent': '../outside.bin',
        'absolute': str(outside),
        'link': 'weights.bin',
        'nested parent': 'sub/../../outside.bin',
    }[where]
    if where == 'link':
        os.symlink(outside, folder / 'weights.bin')
    path = onnx_model(folder, location)
    with pytest.raises(UnsafeModelError) as caught:
        load_model_file(path)
    assert caught.value.member == "initializer 'w'"
    assert str(caught.value).startswith(f"{path} (initializer 'w'): refused")
    assert 'outside the model' in str(caught.value)


def test_onnx_external_data_beside_the_model_is_read(tmp_path):
    folder = tmp_path / 'model'
    path = onnx_model(folder, 'weights.bin')
    (folder / 'weights.bin').write_bytes(torch.tensor([1.0, 2.0]).numpy().tobytes())
    module, _, kind = load_model_file(path)
    assert kind == 'onnx'
    torch.testing.assert_close(module(torch.zeros(2)), torch.tensor([1.0, 2.0]))


def test_onnx_context_node_is_refused(tmp_path):
    path = onnx_model(tmp_path / 'model', None, node='EPContext')
    with pytest.raises(UnsafeModelError, match=r"node 'context'.*EPContext"):
        load_model_file(path)


# TorchScript runs code while loading: refused unless trusted.


class WritesWhenLoaded(torch.nn.Module):
    """TorchScript whose ``__setstate__`` writes a file with ``aten::save``."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.weight = torch.ones(1)

    def forward(self, x):
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.path, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.path = state[0]
        self.weight = state[1]
        self.training = state[2]
        torch.save(self.weight, self.path)


@pytest.fixture
def writes_when_loaded(tmp_path, sentinel) -> Path:
    path = tmp_path / 'best.pt'
    torch.jit.save(torch.jit.script(WritesWhenLoaded(str(sentinel))), str(path))
    sentinel.unlink(missing_ok=True)
    return path


def test_torchscript_is_refused_without_trust(writes_when_loaded, sentinel):
    with pytest.raises(UnsafeModelError, match=r'TorchScript file is a program'):
        load_model_file(writes_when_loaded)
    assert not sentinel.exists()


def test_torchscript_runs_code_while_loading(writes_when_loaded, sentinel):
    load_model_file(writes_when_loaded, trust=True)
    assert sentinel.exists()


# module:factory --weights: torch.load(weights_only=True).


@pytest.mark.parametrize('kind', ['pickle', 'torchscript'])
def test_crafted_weights_run_nothing(tmp_path, sentinel, writes_when_loaded, kind):
    weights = tmp_path / 'weights.pt'
    if kind == 'pickle':
        weights.write_bytes(payload(sentinel))
    else:
        weights.write_bytes(writes_when_loaded.read_bytes())
    with pytest.raises(ValueError, match=rf'cannot read the weights {weights}'):
        load_model('torchio_ramp.models:unet3d_tiny', weights)
    assert not sentinel.exists()
