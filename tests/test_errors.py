"""Bad input gets a clear error that names the argument, never a silent result."""

from __future__ import annotations

import pytest
import torch
import torchio as tio

import torchio_ramp as tr


def _subject(values: torch.Tensor) -> tio.Subject:
    return tio.Subject(ct=tio.ScalarImage(tensor=values))


@pytest.mark.parametrize(
    ('build', 'pattern'),
    [
        (lambda: tr.RandomGaussianNoise(std=(0.3, 0.1)), 'std'),
        (lambda: tr.RandomGaussianNoise(std=(-0.1, 0.1)), 'std'),
        (lambda: tr.RandomSaltPepper(prob=(0.1, 1.5)), 'prob'),
        (lambda: tr.RandomResolutionDegradation(factor=(0.5, 2)), 'factor'),
        (lambda: tr.RandomStripes(fraction=0), 'fraction'),
        (lambda: tr.RandomGhostCopies(num_ghosts=(4, 2)), 'num_ghosts'),
        (lambda: tr.RandomLocalContrast(grid=(4, 4)), 'grid'),
        (lambda: tr.RandomDenseElastic(alpha=-1), 'alpha'),
        (lambda: tr.Corruption('blur', {'sigma': -1.0}), 'sigma'),
        (lambda: tr.Corruption('blur', {'sigma': 1.0}, seed=-3), 'seed'),
        (lambda: tr.Corruption('blur'), 'missing parameter "sigma"'),
        (lambda: tr.Corruption('blur', {'sigma': 1, 'std': 1}), "'std'"),
        (lambda: tr.Corruption('blur', {'sigma': 1}, level=0.1), 'either'),
        (lambda: tr.Corruption('blur', level=-0.1), 'level'),
        (lambda: tr.CTNormalize(hu_range=(300, -200)), 'hu_range'),
        (lambda: tr.LateralityFlip(axes=0, label_pairs={2: 2}), 'label_pairs'),
        (lambda: tr.RampSpatial(elastic_probability=1.5), 'Probability'),
    ],
)
def test_invalid_parameters_raise_value_error_naming_them(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


@pytest.mark.parametrize(
    'build',
    [
        lambda: tr.RandomCorruption('jpeg'),
        lambda: tr.Corruption('jpeg', level=0.1),
        lambda: tr.RampCorrupt(families=['blur', 'jpeg']),
        lambda: tr.RampCorrupt(exclude_families=['jpeg']),
        lambda: tr.RampCorrupt(ranges={'jpeg': {}}),
    ],
)
def test_unknown_family_lists_the_valid_ones(build):
    with pytest.raises(ValueError, match=r"'jpeg'.*gaussian_noise, blur"):
        build()


def test_unknown_intensity_operation():
    with pytest.raises(ValueError, match=r"unknown operation 'clahe'.*gamma"):
        tr.RandomCTIntensity('clahe')
    with pytest.raises(ValueError, match="'clahe'"):
        tr.RampIntensity(probabilities={'clahe': 0.5})


def test_unexpected_keyword_names_the_valid_parameters():
    with pytest.raises(TypeError, match=r"'sigma'.*\['std'\]"):
        tr.RandomGaussianNoise(sigma=0.1)


@pytest.mark.parametrize('p', [-0.1, 1.5, 'high'])
def test_probability_outside_unit_interval(p):
    with pytest.raises(ValueError, match='Probability must be a number in'):
        tr.RampCorrupt(p=p)


@pytest.mark.parametrize('k', [0, 14, (3, 2), (0, 2), (2, 14), 2.5, (1, 2, 3), True])
def test_number_of_corruptions_outside_one_to_thirteen(k):
    with pytest.raises(ValueError, match='num_corruptions'):
        tr.RampCorrupt(num_corruptions=k)


def test_k_larger_than_the_pool():
    with pytest.raises(ValueError, match=r'num_corruptions.*<= 2'):
        tr.RampCorrupt(families=['blur', 'stripe'], num_corruptions=(2, 3))


def test_excluding_every_family():
    with pytest.raises(ValueError, match='no corruption family'):
        tr.RampCorrupt(exclude_families=tr.FAMILY_NAMES)


def test_family_names_in_torchio_exclude_are_caught():
    with pytest.raises(ValueError, match=r"exclude_families=\['blur'\]"):
        tr.RampCorrupt(exclude=['blur'])


def test_unknown_strategy():
    with pytest.raises(ValueError, match="Unknown strategy 'nnunet'; valid names"):
        tr.strategy('nnunet')
    with pytest.raises(TypeError, match='baseline'):
        tr.strategy('baseline', p_corrupt=0.5)


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_images_are_refused(value):
    data = torch.full((1, 4, 4, 4), 0.5)
    data[0, 1, 2, 3] = value
    with pytest.raises(
        ValueError, match=r'image "ct" contains NaN or Inf.*CTNormalize'
    ):
        tr.RandomGaussianNoise()(_subject(data))


def test_hounsfield_units_are_refused_with_a_hint():
    data = torch.full((1, 4, 4, 4), -1000.0)
    data[0, 0] = 400
    pattern = r'RampCorrupt|Corruption.*\[-1000, 400\].*CTNormalize\(hu_range'
    with pytest.raises(ValueError, match=pattern):
        tr.RampCorrupt(p=1)(_subject(data))
    with pytest.raises(ValueError, match=r'CTIntensity: image "ct" has values'):
        tr.RandomSharpen()(_subject(data))


def test_kernel_shape_errors():
    with pytest.raises(ValueError, match=r'\(C, D, H, W\).*\(4, 4\)'):
        tr.kernels.gaussian_noise(torch.rand(4, 4), std=0.1)
    with pytest.raises(ValueError, match='floating'):
        tr.kernels.gaussian_noise(torch.ones(1, 2, 2, 2, dtype=torch.int64), std=0.1)
    with pytest.raises(ValueError, match='per-sample parameter "std" has 3 values'):
        tr.kernels.gaussian_noise(torch.rand(2, 1, 2, 2, 2), std=[0.1, 0.2, 0.3])
