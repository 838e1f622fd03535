"""The registries against the paper: Table 2 (corruption pool), Table 1 (CT
intensity stage), the severity map of the design and the argument checks."""

from __future__ import annotations

import pytest
import torch

from tests.test_kernels_contract import one_thread  # noqa: F401
from torchio_ramp import kernels
from torchio_ramp.ct_physics import CT_PHYSICS_FAMILIES
from torchio_ramp.families import FAMILIES
from torchio_ramp.families import FAMILY_NAMES
from torchio_ramp.families import PAPER_FAMILIES
from torchio_ramp.families import check_families
from torchio_ramp.families import severity_grid
from torchio_ramp.families import severity_table
from torchio_ramp.intensity_ops import INTENSITY_OPERATIONS
from torchio_ramp.operators import SEVERITY_LEVELS

TABLE_2 = {
    'gaussian_noise': {'std': (0.02, 0.20)},
    'blur': {'sigma': (0.5, 2.5)},
    'rician_noise': {'std': (0.02, 0.20)},
    'motion_blur': {'sigma': (0.5, 3.0)},
    'salt_pepper': {'prob': (0.02, 0.20)},
    'speckle_noise': {'std': (0.02, 0.20)},
    'bias_field': {'strength': (0.10, 0.60)},
    'ghosting': {'intensity': (0.10, 0.40)},
    'intensity_shift': {'shift': (0.05, 0.40)},
    'contrast_reduction': {'blend': (0.10, 0.60)},
    'downsample': {'factor': (1.5, 3.0)},
    'stripe': {'strength': (0.10, 0.60)},
    'compound': {'level': (0.03, 0.15)},
}
"""Paper Table 2, in its order: the training range of each family's parameter."""

TABLE_2_OPTIONS = {
    'ghosting': {'num_ghosts': (2, 4)},
    'stripe': {'fraction': 0.15},
}

TABLE_2_KERNELS = {
    'gaussian_noise': kernels.gaussian_noise,
    'blur': kernels.gaussian_blur,
    'rician_noise': kernels.rician_noise,
    'motion_blur': kernels.motion_blur,
    'salt_pepper': kernels.salt_pepper,
    'speckle_noise': kernels.speckle_noise,
    'bias_field': kernels.bias_field,
    'ghosting': kernels.ghosting,
    'intensity_shift': kernels.intensity_shift,
    'contrast_reduction': kernels.contrast_reduction,
    'downsample': kernels.downsample,
    'stripe': kernels.stripes,
    'compound': kernels.compound,
}

TABLE_1 = {
    'gamma': (0.45, {'gamma1': (0.60, 1.60), 'gamma2': (0.70, 1.30)}, {}),
    'window_level': (
        0.45,
        {'center_shift': (-0.15, 0.15), 'width_scale': (0.70, 1.30)},
        {},
    ),
    'histogram_warp': (0.40, {}, {'degree': 3, 'coefficient_std': 0.20}),
    'local_contrast': (0.35, {'blend': (0.0, 0.35)}, {'grid': (4, 4, 4)}),
    'sharpen': (0.30, {'sigma': (0.5, 2.5), 'amount': (0.2, 1.5)}, {}),
}
"""Paper Table 1 (intensity stage): probability, parameter ranges, options."""


# Table 2 ------------------------------------------------------------------------------


def test_the_papers_pool_is_table_2_in_its_order():
    assert tuple(TABLE_2) == PAPER_FAMILIES
    assert len(PAPER_FAMILIES) == 13
    assert FAMILY_NAMES is PAPER_FAMILIES  # the default pool, not the registry
    assert set(PAPER_FAMILIES) <= set(FAMILIES)  # the registry may hold more


@pytest.mark.parametrize('name', list(TABLE_2))
def test_family_ranges_options_and_kernel_are_table_2(name):
    family = FAMILIES[name]
    assert family.name == name
    ranges = {p.name: (p.low, p.high) for p in family.parameters}
    assert ranges == TABLE_2[name]
    assert family.default_options() == TABLE_2_OPTIONS.get(name, {})
    assert family.kernel is TABLE_2_KERNELS[name]
    assert family.reference == 'Table 2'
    assert family.probability is None
    assert family.title and family.summary


@pytest.mark.parametrize('name', list(TABLE_2))
def test_training_range_is_inside_the_valid_domain(name):
    for p in FAMILIES[name].parameters:
        assert p.clamp(p.low) == p.low and p.clamp(p.high) == p.high
        assert p.low <= p.high


# Table 1 ------------------------------------------------------------------------------


def test_five_intensity_operations_in_the_papers_order():
    assert list(INTENSITY_OPERATIONS) == list(TABLE_1)


@pytest.mark.parametrize('name', list(TABLE_1))
def test_intensity_operation_matches_table_1(name):
    probability, ranges, options = TABLE_1[name]
    operation = INTENSITY_OPERATIONS[name]
    assert operation.probability == probability
    assert {p.name: (p.low, p.high) for p in operation.parameters} == ranges
    assert operation.default_options() == options
    assert operation.kernel is getattr(kernels, name)
    assert operation.reference == 'Table 1'


# Severity map -------------------------------------------------------------------------


def test_severity_levels_are_the_papers_five():
    assert SEVERITY_LEVELS == (0.05, 0.10, 0.15, 0.20, 0.25)


@pytest.mark.parametrize('name', [n for n in TABLE_2 if n != 'compound'])
def test_severity_maps_levels_linearly_onto_the_training_range(name):
    family = FAMILIES[name]
    ((parameter, (low, high)),) = TABLE_2[name].items()
    options = TABLE_2_OPTIONS.get(name, {})
    for index, level in enumerate(SEVERITY_LEVELS):
        expected = low + index / 4 * (high - low)
        got = family.parameters_at(level)
        assert got[parameter] == pytest.approx(expected, abs=1e-12)
        assert got == {parameter: got[parameter], **options}
    assert family.parameters_at(0.05)[parameter] == pytest.approx(low, abs=1e-15)
    assert family.parameters_at(0.25)[parameter] == pytest.approx(high, abs=1e-15)


def test_compound_severity_is_the_level_itself():
    for level in (*SEVERITY_LEVELS, 0.0, 0.5):
        assert FAMILIES['compound'].parameters_at(level) == {'level': level}


EXTRAPOLATED = {
    # level 0 and 0.5: 0.05 - 0.25 and 0.25 + 1.25 of the range, then clamped
    'gaussian_noise': (0.0, 0.425),
    'blur': (0.0, 5.0),
    'motion_blur': (0.0, 6.125),
    'salt_pepper': (0.0, 0.425),
    'bias_field': (0.0, 1.225),
    'ghosting': (0.025, 0.775),
    'intensity_shift': (0.0, 0.8375),
    'contrast_reduction': (0.0, 1.0),  # 1.225 clamped to the maximum blend
    'downsample': (1.125, 4.875),
    'stripe': (0.0, 1.225),
}


@pytest.mark.parametrize('name', list(EXTRAPOLATED))
def test_severity_extrapolates_and_clamps_to_the_domain(name):
    family = FAMILIES[name]
    (parameter,) = family.parameter_names
    at_zero, at_half = EXTRAPOLATED[name]
    assert family.parameters_at(0.0)[parameter] == pytest.approx(at_zero, abs=1e-12)
    assert family.parameters_at(0.5)[parameter] == pytest.approx(at_half, abs=1e-12)
    # far beyond the grid, the domain still holds
    for level in (0.0, 0.01, 1.0, 10.0):
        value = family.parameters_at(level)[parameter]
        assert FAMILIES[name].parameters[0].clamp(value) == value


def test_salt_pepper_probability_never_exceeds_one():
    assert FAMILIES['salt_pepper'].parameters_at(2.0) == {'prob': 1.0}


@pytest.mark.parametrize('level', [-0.01, True, '0.1', None])
def test_parameters_at_rejects_bad_levels(level):
    with pytest.raises(ValueError, match='level must be'):
        FAMILIES['blur'].parameters_at(level)


@pytest.mark.parametrize('level', [float('nan'), float('inf')])
def test_parameters_at_rejects_non_finite_levels(level):
    with pytest.raises(ValueError, match='level must be a finite number'):
        FAMILIES['gaussian_noise'].parameters_at(level)


def test_check_arguments_rejects_infinite_values():
    with pytest.raises(ValueError, match='"sigma" must be a finite number'):
        FAMILIES['blur'].check_arguments({'sigma': float('inf')})


def test_severity_table_rows():
    rows = severity_table()
    assert [row['family'] for row in rows] == list(TABLE_2)
    physics = severity_table(families='ct_physics')
    assert [row['family'] for row in physics] == list(CT_PHYSICS_FAMILIES)
    for row in rows:
        (low, high) = TABLE_2[row['family']][row['parameter']]
        if row['family'] == 'compound':
            assert [row[level] for level in SEVERITY_LEVELS] == list(SEVERITY_LEVELS)
        else:
            assert (row[0.05], row[0.25]) == (low, high)


# Grid and family names ----------------------------------------------------------------


def test_severity_grid_is_the_papers_65_family_major_settings():
    grid = severity_grid()
    assert len(grid) == 65
    assert len(set(grid)) == 65
    assert grid[:5] == [('gaussian_noise', level) for level in SEVERITY_LEVELS]
    assert [family for family, _ in grid[::5]] == list(TABLE_2)
    assert all(isinstance(level, float) for _, level in grid)


def test_severity_grid_of_chosen_families_and_levels():
    assert severity_grid(['stripe', 'blur'], levels=[0.3, 1]) == [
        ('stripe', 0.3),
        ('stripe', 1.0),
        ('blur', 0.3),
        ('blur', 1.0),
    ]


def test_check_families():
    assert check_families(None) == FAMILY_NAMES
    assert check_families('blur') == ('blur',)
    assert check_families(iter(['compound', 'blur'])) == ('compound', 'blur')
    assert check_families([]) == ()


@pytest.mark.parametrize('argument', ['families', 'exclude'])
def test_check_families_names_argument_and_valid_names(argument):
    with pytest.raises(ValueError) as error:
        check_families(['blur', 'gaussian-noise'], argument=argument)
    message = str(error.value)
    assert message.startswith(f'{argument}: unknown corruption family')
    assert "'gaussian-noise'" in message
    assert all(name in message for name in TABLE_2)


def test_check_families_rejects_repeats():
    with pytest.raises(ValueError, match='exclude: repeated family names'):
        check_families(['blur', 'blur'], argument='exclude')


def test_severity_grid_rejects_unknown_family():
    with pytest.raises(ValueError, match="families: unknown corruption family 'fog'"):
        severity_grid(['fog'])


# Operator.check_arguments -------------------------------------------------------------


def test_check_arguments_fills_options_and_normalises():
    ghosting = FAMILIES['ghosting']
    assert ghosting.check_arguments({'intensity': 0.2}) == {
        'intensity': 0.2,
        'num_ghosts': (2, 4),
    }
    assert ghosting.check_arguments({'intensity': 1, 'num_ghosts': [3, 3]}) == {
        'intensity': 1.0,
        'num_ghosts': (3, 3),
    }
    local = INTENSITY_OPERATIONS['local_contrast']
    assert local.check_arguments({'blend': 0.2, 'grid': 2})['grid'] == (2, 2, 2)


@pytest.mark.parametrize(
    ('name', 'arguments', 'message'),
    [
        ('blur', {'sigma': 1.0, 'sigmas': 2}, "no parameter 'sigmas'; valid names"),
        ('blur', {}, 'missing parameter "sigma"'),
        ('blur', {'sigma': -0.5}, r'"sigma" must be in \[0.0, None\], not -0.5'),
        ('blur', {'sigma': '1'}, '"sigma" must be a finite number'),
        ('blur', {'sigma': True}, '"sigma" must be a finite number'),
        ('blur', {'sigma': float('nan')}, '"sigma" must be a finite number'),
        ('salt_pepper', {'prob': 1.5}, r'"prob" must be in \[0.0, 1.0\], not 1.5'),
        ('downsample', {'factor': 0.5}, '"factor" must be in'),
        ('ghosting', {'intensity': 0.2, 'num_ghosts': (4, 2)}, 'low <= high'),
        ('ghosting', {'intensity': 0.2, 'num_ghosts': 0}, 'positive integer'),
        ('ghosting', {'intensity': 0.2, 'num_ghosts': 'two'}, 'pair'),
        ('stripe', {'strength': 0.2, 'fraction': 0.0}, r'"fraction" must be in \(0'),
        ('stripe', {'strength': 0.2, 'fraction': 1.5}, r'"fraction" must be in \(0'),
        (
            'local_contrast',
            {'blend': 0.2, 'grid': (4, 4)},
            '"grid" must be N, N,N,N or NxNxN',
        ),
        ('histogram_warp', {'degree': 0}, '"degree" must be a positive integer'),
        ('histogram_warp', {'coefficient_std': -1}, '"coefficient_std" must be a'),
        ('window_level', {'center_shift': 0, 'width_scale': 0}, '"width_scale"'),
    ],
)
def test_check_arguments_errors_name_operator_and_keyword(name, arguments, message):
    operator = {**FAMILIES, **INTENSITY_OPERATIONS}[name]
    with pytest.raises(ValueError, match=message) as error:
        operator.check_arguments(arguments)
    assert str(error.value).startswith(f'Operator "{name}"')


def test_check_arguments_lists_valid_names():
    with pytest.raises(ValueError) as error:
        FAMILIES['ghosting'].check_arguments({'intensity': 0.1, 'ghosts': 2})
    assert "valid names: ['intensity', 'num_ghosts']" in str(error.value)


@pytest.mark.parametrize('name', list(TABLE_2))
def test_parameters_at_pass_check_arguments_and_run(name):
    family = FAMILIES[name]
    x = torch.full((1, 6, 6, 6), 0.5)
    for level in (*SEVERITY_LEVELS, 0.0, 0.5):
        arguments = family.parameters_at(level)
        assert family.check_arguments(arguments) == arguments
        family(x, generator=torch.Generator().manual_seed(0), **arguments)
