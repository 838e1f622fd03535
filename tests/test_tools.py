"""The three tools have one shape: same spellings, one size parser, one device rule."""

from __future__ import annotations

import click
import pytest
import torch
from click.testing import CliRunner

from ramp_prep.cli import main as ramp_prep
from torchio_ramp import RandomLocalContrast
from torchio_ramp.arguments import parse_size
from torchio_ramp.arguments import resolve_device
from torchio_ramp.inference import SlidingWindowPredictor
from torchio_ramp.model_files import parse_patch_size
from torchio_ramp.stress.cli import main as ramp_stress
from torchio_ramp.training import DistributedContext
from torchio_ramp.training import TrainingConfig
from torchio_ramp.training import resolve_device as training_device
from torchio_ramp.training.cli import main as ramp_train

TOOLS = {'ramp-train': ramp_train, 'ramp-prep': ramp_prep, 'ramp-stress': ramp_stress}

SAME_THINGS = (
    '--data',
    '--out',
    '--patch-size',
    '--hu-range',
    '--device',
    '--seed',
    '--workers',
    '--batch-size',
    '--amp',
    '--progress',
    '--version',
    '--help',
)
"""Options that mean the same thing wherever they appear."""


def _commands():
    """``(tool, command path, command)`` for every command of every tool."""
    for tool, command in TOOLS.items():
        yield tool, tool, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield tool, f'{tool} {name}', sub


def _help_lines() -> dict[str, dict[str, str]]:
    """Option name -> {command: the option's left column in ``--help``}."""
    found: dict[str, dict[str, str]] = {}
    for _, path, command in _commands():
        context = command.context_class(
            command, info_name=path, **command.context_settings
        )
        for parameter in command.get_params(context):
            record = parameter.get_help_record(context)
            if record is None:
                continue
            for name in (*parameter.opts, *parameter.secondary_opts):
                if name.startswith('--'):
                    found.setdefault(name, {})[path] = record[0]
    return found


HELP_LINES = _help_lines()


@pytest.mark.parametrize('option', SAME_THINGS)
def test_the_same_thing_is_spelled_the_same_in_every_tool(option):
    where = HELP_LINES.get(option, {})
    tools = {path.split()[0] for path in where}
    assert len(tools) >= 2, f'{option} is in {sorted(tools)} only'
    spellings = set(where.values())
    assert len(spellings) == 1, f'{option} is spelled {where}'


@pytest.mark.parametrize(('tool', 'path', 'command'), list(_commands()))
def test_help_shows_the_shared_spellings(tool, path, command):
    arguments = [*path.split()[1:], '--help']
    output = CliRunner().invoke(TOOLS[tool], arguments, prog_name=tool).output
    assert output.startswith(f'Usage: {path} ')
    for option in SAME_THINGS:
        spelling = HELP_LINES.get(option, {}).get(path)
        if spelling is not None:
            assert f'  {spelling}' in output, (path, spelling)
    assert '-h, --help' in output


SIZES = {'64': (64, 64, 64), '64,64,48': (64, 64, 48), '64x64x48': (64, 64, 48)}


@pytest.mark.parametrize(('text', 'expected'), list(SIZES.items()))
def test_every_size_accepts_the_same_spellings(text, expected):
    small = tuple(s // 4 for s in expected)
    # Python API
    assert parse_size(text) == expected
    assert parse_patch_size(text) == expected
    assert TrainingConfig('d', 'o', patch_size=text).patch_size == expected
    assert SlidingWindowPredictor(torch.nn.Identity(), text).patch_size == expected
    grid = text.replace('64', '4').replace('48', '3')
    assert RandomLocalContrast(grid=grid).options['grid'] == tuple(
        4 if s == 64 else 3 for s in expected
    )
    # the three tools
    train = ramp_train.make_context('ramp-train', ['--out', 'o', '--patch-size', text])
    assert train.params['patch_size'] == expected
    stress_run = ramp_stress.commands['run']
    run = stress_run.make_context(
        'run',
        ['--model', 'm.pt', '--data', 'd', '--out', 'o', '--patch-size', text],
    )
    assert run.params['patch_size'] == expected
    shape = text.replace('64', '16').replace('48', '12')
    synth = ramp_prep.commands['synth'].make_context(
        'synth', ['--layout', 'totalseg', '--shape', shape, 'out']
    )
    assert synth.params['shape'] == small


@pytest.mark.parametrize(
    ('tool', 'arguments'),
    [
        (ramp_train, ['--out', 'o', '--patch-size']),
        (
            ramp_stress,
            ['run', '--model', 'm', '--data', 'd', '--out', 'o', '--patch-size'],
        ),
        (ramp_prep, ['synth', 'out', '--layout', 'totalseg', '--shape']),
    ],
)
@pytest.mark.parametrize('bad', ['64,64', '0', '64x-1x2', 'big'])
def test_bad_sizes_are_refused_alike(tool, arguments, bad):
    result = CliRunner().invoke(tool, [*arguments, bad])
    assert result.exit_code == 2, result.output
    assert 'must be N, N,N,N or NxNxN' in result.output
    assert repr(bad) in result.output
    assert 'Traceback' not in result.output


def test_overlaps_may_be_zero_sizes_may_not():
    assert parse_size('0', 'overlap', allow_zero=True) == (0, 0, 0)
    with pytest.raises(ValueError, match=r'patch_size must be .* positive integers'):
        parse_size(0, 'patch_size')
    with pytest.raises(ValueError, match='non-negative'):
        parse_size(-1, 'overlap', allow_zero=True)
    with pytest.raises(ValueError):
        parse_size(True)
    assert parse_size('1.5x1.5x3', kind=float) == (1.5, 1.5, 3.0)
    with pytest.raises(ValueError):
        parse_size('1.5', 'shape')  # voxels are integers


@pytest.mark.parametrize('cuda', [True, False])
def test_one_device_rule(monkeypatch, cuda):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    monkeypatch.setenv('LOCAL_RANK', '1')
    expected = torch.device('cuda', 1) if cuda else torch.device('cpu')
    context = DistributedContext.from_environment()
    assert resolve_device('auto') == resolve_device(None) == expected
    assert training_device('auto', context) == expected
    assert resolve_device('cuda') == training_device('cuda', context)
    assert resolve_device('cuda') == torch.device('cuda', 1)
    assert resolve_device('cuda:0') == torch.device('cuda', 0)
    assert resolve_device('cpu') == torch.device('cpu')


@pytest.mark.parametrize(
    ('tool', 'arguments'),
    [
        (ramp_train, ['--out', 'o', '--device']),
        (ramp_stress, ['run', '--model', 'm', '--data', 'd', '--out', 'o', '--device']),
    ],
)
def test_bad_devices_are_refused_alike(tool, arguments):
    result = CliRunner().invoke(tool, [*arguments, 'gpu0'])
    assert result.exit_code == 2
    assert "Invalid value for '--device'" in result.output
    assert "'gpu0' is not a device name" in result.output
    if not torch.cuda.is_available():  # the machine is checked, alike
        result = CliRunner().invoke(tool, [*arguments, 'cuda'])
        assert result.exit_code == 2
        assert 'cuda: CUDA is not available' in result.output
