"""The paired severity protocol: common random numbers across the levels of a family."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
import torchio as tio
from click.testing import CliRunner

from tests.prep_fixtures import prepare_phantoms
from torchio_ramp.families import FAMILIES
from torchio_ramp.families import FAMILY_NAMES
from torchio_ramp.phantoms import phantom_subject
from torchio_ramp.stress.cli import main
from torchio_ramp.stress.compare import compare
from torchio_ramp.stress.protocol import Setting
from torchio_ramp.stress.protocol import StressProtocol
from torchio_ramp.stress.protocol import setting_seed
from torchio_ramp.stress.runner import run_stress_test
from torchio_ramp.stress.store import ResultsError
from torchio_ramp.stress.store import load_results
from torchio_ramp.stress.store import merge_shards

SUBJECTS = ('s1', 's2', 's3')


@pytest.fixture(scope='module')
def image() -> torch.Tensor:
    subject = phantom_subject((24, 24, 16), seed=3)
    return StressProtocol().normalize(subject)


def volumes(protocol, image, subject_id, family):
    return [
        protocol.corrupt(image, subject_id, Setting(family, level))
        for level in protocol.levels
    ]


def test_paired_is_the_default_and_recorded():
    protocol = StressProtocol()
    assert protocol.protocol == 'paired'
    assert protocol.to_dict()['protocol'] == 'paired'
    assert protocol.to_dict()['protocol_version'] == 2
    legacy = StressProtocol(protocol='independent').to_dict()
    assert (legacy['protocol'], legacy['protocol_version']) == ('independent', 1)
    with pytest.raises(ValueError, match="unknown severity protocol 'pairs'"):
        StressProtocol(protocol='pairs')


@pytest.mark.parametrize('family', FAMILY_NAMES)
def test_parameter_and_damage_grow_with_the_level(image, family):
    """Per subject, the severity parameter and the distance to the clean volume
    are non-decreasing in the level, for every family."""
    protocol = StressProtocol()
    operator = FAMILIES[family]
    for name in operator.parameter_names:
        values = [operator.parameters_at(level)[name] for level in protocol.levels]
        assert values == sorted(values) and values[0] < values[-1], (name, values)
    seeds = {protocol.seed_of('s1', Setting(family, lv)) for lv in protocol.levels}
    assert len(seeds) == 1  # every level starts from the same random state
    for subject_id in SUBJECTS:
        distances = [
            float((volume - image).abs().mean())
            for volume in volumes(protocol, image, subject_id, family)
        ]
        assert all(a <= b for a, b in itertools.pairwise(distances)), distances
        assert distances[0] < distances[-1]


def test_independent_protocol_is_not_monotone(image):
    """The reason for the paired protocol: independent draws make the damage of
    some family go down between levels for some subject (here, as measured on
    this phantom, ghosting or intensity shift or bias field)."""
    protocol = StressProtocol(protocol='independent')
    assert protocol.seed_of('s1', Setting('blur', 0.05)) == setting_seed(
        0, 's1', 'blur', 0.05
    )
    decreases = 0
    for family in ('ghosting', 'intensity_shift', 'bias_field', 'motion_blur'):
        for subject_id in SUBJECTS:
            distances = [
                float((volume - image).abs().mean())
                for volume in volumes(protocol, image, subject_id, family)
            ]
            decreases += any(a > b for a, b in itertools.pairwise(distances))
    assert decreases > 0


def _unclamped(outputs):
    inside = torch.ones_like(outputs[0], dtype=torch.bool)
    for output in outputs:
        inside &= (output > 0) & (output < 1)
    return inside


def _parameter(family, level):
    return next(iter(FAMILIES[family].parameters_at(level).values()))


@pytest.mark.parametrize(
    'family', ['gaussian_noise', 'ghosting', 'stripe', 'intensity_shift']
)
def test_additive_draws_are_identical_across_levels(image, family):
    """(y - x) / parameter is the same random field at every level: same noise,
    same ghost axis and shifts, same stripe slices and signs, same sign."""
    protocol = StressProtocol()
    outputs = volumes(protocol, image, 's1', family)
    inside = _unclamped(outputs)
    assert inside.float().mean() > 0.1  # the body (air clamps at 0)
    fields = [
        (output - image) / _parameter(family, level)
        for output, level in zip(outputs, protocol.levels, strict=True)
    ]
    for field in fields[1:]:
        torch.testing.assert_close(field[inside], fields[0][inside], atol=1e-4, rtol=0)


def test_multiplicative_draws_are_identical_across_levels(image):
    protocol = StressProtocol()
    for family in ('speckle_noise', 'bias_field'):
        outputs = volumes(protocol, image, 's2', family)
        inside = _unclamped(outputs) & (image > 0.05)
        if family == 'speckle_noise':  # x (1 + std n)
            fields = [(y / image - 1) / _parameter(family, lv) for y, lv in
                      zip(outputs, protocol.levels, strict=True)]  # fmt: skip
        else:  # x exp(strength b)
            fields = [torch.log(y / image) / _parameter(family, lv) for y, lv in
                      zip(outputs, protocol.levels, strict=True)]  # fmt: skip
        for field in fields[1:]:
            torch.testing.assert_close(
                field[inside], fields[0][inside], atol=1e-3, rtol=0
            )


def test_salt_and_pepper_hits_are_nested(image):
    protocol = StressProtocol()
    outputs = volumes(protocol, image, 's3', 'salt_pepper')
    hits = [(output != image) for output in outputs]
    for (lower, low_out), (higher, high_out) in itertools.pairwise(
        zip(hits, outputs, strict=True)
    ):
        assert bool((lower & ~higher).sum() == 0)  # a hit stays hit
        assert torch.equal(low_out[lower], high_out[lower])  # with the same value
        assert higher.sum() > lower.sum()


def test_motion_blur_keeps_its_axis(image):
    protocol = StressProtocol()
    from torchio_ramp import kernels

    outputs = volumes(protocol, image, 's1', 'motion_blur')
    axes = []
    for output, level in zip(outputs, protocol.levels, strict=True):
        sigma = _parameter('motion_blur', level)
        errors = [
            float(
                (kernels.motion_blur(image, sigma=sigma, axis=a) - output).abs().max()
            )
            for a in range(3)
        ]
        axes.append(errors.index(min(errors)))
        assert min(errors) < 1e-6
    assert len(set(axes)) == 1


def _pred(image: torch.Tensor) -> torch.Tensor:
    centres = torch.tensor([0.2, 0.52, 0.5, 0.7, 0.48, 0.46]) + 0.0007
    return (image[0, ..., None] - centres).abs().argmin(-1)


@pytest.fixture(scope='module')
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('paired-data')
    return prepare_phantoms(root, 2, '16,16,16')


def test_protocols_are_recorded_and_never_mixed(prepared, tmp_path):
    grid = {'families': ['ghosting'], 'levels': [0.1, 0.2]}
    runs = {}
    for name in ('paired', 'independent'):
        out = tmp_path / name
        protocol = StressProtocol(**grid, protocol=name)
        run_stress_test(_pred, prepared, out, protocol=protocol, name=name)
        header = json.loads((out / 'results.json').read_text())
        assert header['arguments']['protocol'] == name
        summary = json.loads((out / 'summary.json').read_text())
        assert summary['protocol'] == name
        assert summary['protocol_version'] == {'paired': 2, 'independent': 1}[name]
        runs[name] = out
    # Resuming a folder with the other protocol is refused.
    with pytest.raises(ResultsError, match=r"arguments\.protocol: 'paired'"):
        other = StressProtocol(**grid, protocol='independent')
        run_stress_test(_pred, prepared, runs['paired'], name='paired', protocol=other)
    # So is comparing them, in Python and in ramp-stress report.
    loaded = [load_results(runs[name]) for name in runs]
    with pytest.raises(ValueError, match='different severity protocols: paired'):
        compare(loaded)
    arguments = ['report', runs['paired'], runs['independent'], '--out',
                 tmp_path / 'report', '--no-figures']  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in arguments])
    assert result.exit_code == 1
    assert 'paired (paired v2), independent (independent v1)' in result.output
    # And merging shards of different protocols.
    shards = tmp_path / 'shards'
    for index, name in enumerate(('paired', 'independent')):
        run_stress_test(_pred, prepared, shards, name='m', shard=(index, 2),
                        protocol=StressProtocol(**grid, protocol=name))  # fmt: skip
    with pytest.raises(ResultsError, match=r'arguments\.protocol'):
        merge_shards([shards], tmp_path / 'merged')


def test_cli_protocol_option(prepared, tmp_path):
    model = tmp_path / 'm.pt2'
    conv = torch.nn.Conv3d(1, 6, 1)
    program = torch.export.export(conv, (torch.rand(2, 1, 8, 8, 8),))
    torch.export.save(program, model)
    model.with_suffix('.json').write_text(
        json.dumps({'hu_range': [-200, 300], 'patch_size': 8})
    )
    arguments = ['run', '--model', model, '--data', prepared, '--families',
                 'stripe', '--levels', '0.1', '--batch-size', 2,
                 '--no-progress']  # fmt: skip
    for protocol in ('paired', 'independent', None):
        out = tmp_path / str(protocol)
        extra = [] if protocol is None else ['--protocol', protocol]
        result = CliRunner().invoke(
            main, [str(a) for a in [*arguments, '--out', out, *extra]]
        )
        assert result.exit_code == 0, result.output
        summary = json.loads((out / 'summary.json').read_text())
        assert summary['protocol'] == (protocol or 'paired')
    result = CliRunner().invoke(main, [str(a) for a in arguments] + ['--out',
                                str(tmp_path / 'x'), '--protocol', 'both'])  # fmt: skip
    assert result.exit_code == 2 and "'both' is not one of" in result.output


def test_tio_corruption_of_the_same_seed_equals_the_protocol(image):
    """The paired volume is Corruption(family, level, seed=family seed)."""
    from torchio_ramp import Corruption

    protocol = StressProtocol()
    subject = tio.Subject(ct=tio.ScalarImage(tensor=image))
    for level in protocol.levels:
        setting = Setting('ghosting', level)
        seed = protocol.seed_of('s1', setting)
        expected = Corruption('ghosting', level=level, seed=seed)(subject).ct.data
        assert torch.equal(protocol.corrupt(image, 's1', setting), expected)
