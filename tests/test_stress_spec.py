"""One run specification: the command, the API and the header derive from it."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from click.testing import CliRunner

from torchio_ramp.stress import RunSpec
from torchio_ramp.stress import run_stress_test
from torchio_ramp.stress import stress_test_model
from torchio_ramp.stress import stress_test_nnunet
from torchio_ramp.stress.cli import main
from torchio_ramp.stress.cli import run
from torchio_ramp.stress.spec import from_cli
from torchio_ramp.stress.spec import misplaced_options
from torchio_ramp.stress.spec import options

API = {
    'model': (stress_test_model, ['model', 'data', 'out']),
    'nnunet': (stress_test_nnunet, ['model_folder', 'data', 'out']),
    'predictor': (run_stress_test, ['predictor', 'data', 'out']),
}
OWN = {
    'model': ['announce'],
    'nnunet': ['announce'],
    'predictor': ['protocol', 'model_arguments', 'session'],
}


def test_every_command_option_is_a_field_of_the_spec():
    fields = {field.name for field in dataclasses.fields(RunSpec)}
    names = [param.name for param in run.params if param.name != 'help']
    assert set(names) == fields
    # in the order of the fields, so --help lists them as they are declared
    assert names == [name for name, _ in options()]


def test_the_help_of_each_option_is_its_declaration():
    helps = {param.name: getattr(param, 'help', None) for param in run.params}
    for name, declared in options():
        assert helps[name] == declared.help, name
    output = CliRunner().invoke(main, ['run', '--help'], terminal_width=200).output
    assert ' '.join(options()[0][1].help.split()) in ' '.join(output.split())


def test_the_command_defaults_are_the_fields_defaults():
    fields = {field.name: field.default for field in dataclasses.fields(RunSpec)}
    # The command shows progress bars and resolves 'auto'; Python is quiet by
    # default and takes None for 'auto'.
    differ = {'progress': True, 'device': 'auto', 'data': Path('d'), 'out': Path('o')}
    given = run.make_context('run', ['--data', 'd', '--out', 'o']).params
    assert set(given) == set(fields)
    for name, value in given.items():
        assert value == differ.get(name, fields[name]), name


@pytest.mark.parametrize('kind', sorted(API))
def test_the_api_signatures_are_the_options_of_their_kind(kind):
    function, positional = API[kind]
    parameters = inspect.signature(function).parameters
    expected = [name for name, _ in options(kind) if name not in ('model', 'nnunet')]
    expected = [name for name in expected if name not in ('data', 'out')]
    assert list(parameters) == positional + expected + OWN[kind]
    fields = {field.name: field for field in dataclasses.fields(RunSpec)}
    for name in expected:
        assert parameters[name].default == fields[name].default, name
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert f'{name}: ' in function.__doc__, name


def test_an_option_of_another_kind_of_run_is_refused_by_name():
    with pytest.raises(TypeError, match="unexpected keyword argument 'patch_size'"):
        stress_test_nnunet('folder', 'data', 'out', patch_size=16)
    with pytest.raises(TypeError, match="unexpected keyword argument 'batch_sise'"):
        stress_test_model('m.pt2', 'data', 'out', batch_sise=4)
    assert misplaced_options('model', ['fold', 'seed']) == ['fold']


def test_the_header_parts_come_from_the_declarations():
    spec = RunSpec(model='m.pt2', data='d', out='o', name='m', patch_size=(8, 8, 8))
    spec = spec.replace(overlap=(4, 4, 4), device='cpu')
    assert spec.header_values('arguments') == {
        'split': 'test',
        'seed': 0,
        'protocol': 'paired',
        'name': 'm',
        'patch_size': (8, 8, 8),
        'overlap': (4, 4, 4),
        'amp': False,
    }
    assert spec.header_values('session') == {
        'batch_size': 2,
        'device': 'cpu',
        'aggregation_device': 'cpu',
    }
    nnunet = RunSpec(nnunet='folder', data='d', out='o', device='cpu')
    assert nnunet.header_values('session') == {'device': 'cpu'}
    assert 'fold' not in nnunet.header_values('arguments')  # in the fingerprint


def test_command_values_become_the_spec():
    values = {
        'model': 'm.pt2',
        'data': 'd',
        'out': 'o',
        'shard': '1/3',
        'device': 'cpu',
    }
    spec = from_cli(values)
    assert spec.shard == (1, 3) and spec.device == 'cpu' and spec.kind == 'model'
    assert spec.stress_protocol.hu_range == (-200.0, 300.0)


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['--nnunet', 'folder', '--batch-size', '4'], '--batch-size cannot be used'),
        (['--model', 'm.pt2', '--fold', '1'], '--fold cannot be used with --model'),
        (['--model', 'm.pt2', '--mirroring'], '--mirroring cannot be used with'),
    ],
)
def test_the_command_refuses_options_of_the_other_kind(tmp_path, arguments, message):
    arguments += ['--data', str(tmp_path), '--out', str(tmp_path / 'out')]
    result = CliRunner().invoke(main, ['run', *arguments])
    assert result.exit_code == 2 and message in result.output, result.output


def test_nnunet_runs_mirror_only_when_asked():
    assert RunSpec.of('nnunet', 'f', nnunet='folder').mirroring is False
    assert RunSpec.of('nnunet', 'f', nnunet='folder', mirroring=True).mirroring


def test_levels_reads_a_spacing_as_every_tool_does():
    runner = CliRunner()
    comma = runner.invoke(main, ['levels', '--spacing', '1.5,1.5,3'])
    times = runner.invoke(main, ['levels', '--spacing', '1.5x1.5x3'])
    assert comma.exit_code == 0 and times.exit_code == 0, times.output
    assert times.output == comma.output
    assert 'spacing 1.5 x 1.5 x 3 mm' in times.output
    bad = runner.invoke(main, ['levels', '--spacing', '1.5x0x3'])
    assert bad.exit_code == 2 and '--spacing must be' in bad.output
