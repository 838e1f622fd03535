"""Fault injection, in memory: non-finite values, raw HU, empty and odd shapes.

Every public entry (kernel, registry operator, transform, batched corruption)
must refuse a bad image with one message format and never return a result
computed from it; geometry and argument edge cases give clear errors or work.
"""

from __future__ import annotations

import pytest
import torch
import torchio as tio

import torchio_ramp as tr
from torchio_ramp.families import FAMILIES
from torchio_ramp.intensity_ops import INTENSITY_OPERATIONS
from torchio_ramp.kernels import IntensityError

SHAPE = (1, 8, 8, 8)
BAD_VALUES = {
    'nan': float('nan'),
    'inf': float('inf'),
    '-inf': -float('inf'),
    'hu': 400.0,
    'negative': -0.5,
}
NON_FINITE = {'nan', 'inf', '-inf'}
NORMALIZED = {n: f for n, f in FAMILIES.items() if f.domain == 'normalized'}
"""Families on [0, 1] images (those on HU refuse bad input in test_ct_physics)."""
OPERATORS = {**NORMALIZED, **INTENSITY_OPERATIONS}


def _bad(kind: str, shape=SHAPE) -> torch.Tensor:
    data = torch.full(shape, 0.5)
    data[..., 1, 2, 3] = BAD_VALUES[kind]
    return data


def _problem(kind: str, voxels: int = 512) -> str:
    if kind in NON_FINITE:
        return rf'contains NaN or Inf values \(\d of {voxels} voxels\)'
    return r'has values in \[.*\], outside \[0, 1\]'


def _subject(data: torch.Tensor) -> tio.Subject:
    label = torch.zeros(data.shape, dtype=torch.uint8)
    return tio.Subject(ct=tio.ScalarImage(tensor=data), seg=tio.LabelMap(tensor=label))


@pytest.mark.parametrize('kind', BAD_VALUES)
@pytest.mark.parametrize('name', OPERATORS)
def test_every_kernel_refuses_bad_input(name, kind):
    kernel = OPERATORS[name].kernel
    arguments = OPERATORS[name].parameters_at(0.15)
    data = _bad(kind)
    with pytest.raises(IntensityError, match=rf'^{kernel.__name__}: image "x" '):
        kernel(data, **arguments)
    with pytest.raises(IntensityError, match=_problem(kind, 1024)):
        kernel(data[None].repeat(2, 1, 1, 1, 1), **arguments)  # a batch too


@pytest.mark.parametrize('kind', BAD_VALUES)
@pytest.mark.parametrize('name', OPERATORS)
def test_every_registry_operator_refuses_bad_input(name, kind):
    pattern = rf'^Operator "{name}": image "x" {_problem(kind)}\. '
    with pytest.raises(IntensityError, match=pattern):
        OPERATORS[name](_bad(kind), **OPERATORS[name].parameters_at(0.15))


@pytest.mark.parametrize('kind', BAD_VALUES)
@pytest.mark.parametrize('family', NORMALIZED)
def test_corruption_transforms_refuse_bad_input(family, kind):
    subject = _subject(_bad(kind))
    for transform in (
        tr.RandomCorruption(family),
        tr.Corruption(family, level=0.1),
    ):
        with pytest.raises(IntensityError, match=rf'image "ct" {_problem(kind)}'):
            transform(subject)
    assert torch.equal(subject.ct.data.isnan(), _bad(kind).isnan())  # untouched


@pytest.mark.parametrize('kind', BAD_VALUES)
@pytest.mark.parametrize('operation', INTENSITY_OPERATIONS)
def test_intensity_transforms_refuse_bad_input(operation, kind):
    with pytest.raises(IntensityError, match=rf'image "ct" {_problem(kind)}'):
        tr.RandomCTIntensity(operation)(_subject(_bad(kind)))


@pytest.mark.parametrize('kind', BAD_VALUES)
def test_pipelines_and_batch_refuse_bad_input(kind):
    subject = _subject(_bad(kind))
    for transform in (
        tr.RampCorrupt(p=1),
        tr.RampIntensity(probabilities={'gamma': 1.0}),
        tr.Ramp(spatial=False, p_corrupt=1),
    ):
        with pytest.raises(IntensityError, match=_problem(kind)):
            transform(subject)
    batch = torch.stack([torch.full(SHAPE, 0.5), _bad(kind)])
    with pytest.raises(IntensityError, match=r'^BatchRampCorrupt: image "batch"'):
        tr.BatchRampCorrupt(p=1)(batch, seeds=[0, 1])


@pytest.mark.parametrize('kind', sorted(NON_FINITE))
def test_spatial_and_normalisation_refuse_non_finite_input(kind):
    hu = _bad(kind) * 1000  # HU are fine here, non-finite values are not
    for transform in (
        tr.CTNormalize(),
        tr.DenseElastic(alpha=80, sigma=4, seed=0),
        tr.RandomDenseElastic(p=1),
        tr.LateralityFlip(axes=0),
        tr.RandomLateralityFlip(flip_probability=1),
        tr.RandomLateralityFlip(flip_probability=0),  # nothing flipped: checked too
        tr.RampSpatial(flip_probability=0, elastic_probability=1),
    ):
        with pytest.raises(IntensityError, match=r'image "ct" contains NaN or Inf'):
            transform(_subject(hu))


def test_the_hint_says_what_to_do():
    with pytest.raises(IntensityError, match=r'CTNormalize\(hu_range=\.\.\.\) first'):
        tr.kernels.gamma(_bad('hu'), gamma1=1.0, gamma2=1.0)
    with pytest.raises(IntensityError, match='--repair-nonfinite'):
        tr.CTNormalize()(_subject(_bad('nan')))


@pytest.mark.parametrize(
    'window', [(float('nan'), 300), (-float('inf'), 300), (0, float('inf'))]
)
def test_ct_normalize_refuses_a_non_finite_window(window):
    with pytest.raises(ValueError, match='hu_range must be two finite numbers'):
        tr.CTNormalize(hu_range=window)


def test_values_at_the_tolerance_pass_and_just_beyond_fail():
    from torchio_ramp.kernels.base import TOLERANCE

    x = torch.full(SHAPE, 0.5)
    x[0, 0, 0, 0] = 1 + TOLERANCE / 2
    x[0, 0, 0, 1] = -TOLERANCE / 2
    tr.kernels.gaussian_noise(x, std=0.0)
    x[0, 0, 0, 0] = 1 + 10 * TOLERANCE
    with pytest.raises(IntensityError):
        tr.kernels.gaussian_noise(x, std=0.0)


def _exact_verdict(x: torch.Tensor, normalized: bool) -> bool:
    """The definition the check implements, computed in float64."""
    from torchio_ramp.kernels.base import TOLERANCE

    values = x.double()
    if not bool(torch.isfinite(values).all()):
        return False
    if not normalized:
        return True
    low, high = float(values.min()), float(values.max())
    return low >= -TOLERANCE and high <= 1 + TOLERANCE


EDGE_VALUES = [
    0.0,
    -0.0,
    1.0,
    1 + 5e-6,
    1 + 1e-5,
    1 + 2e-5,
    -5e-6,
    -2e-5,
    1e-40,
    3.0e38,
    float('inf'),
    -float('inf'),
    float('nan'),
    -float('nan'),
]


@pytest.mark.parametrize(
    'dtype', [torch.float16, torch.bfloat16, torch.float32, torch.float64]
)
@pytest.mark.parametrize('normalized', [True, False])
def test_the_fast_checks_agree_with_the_exact_definition(dtype, normalized):
    # the bit-pattern and sum shortcuts must never pass what the float64
    # definition refuses, nor refuse what it passes, at any dtype
    from torchio_ramp.kernels.base import check_intensities

    for value in EDGE_VALUES:
        for other in (0.5, 3.0e38, -3.0e38):
            x = torch.tensor([other, value], dtype=torch.float64).to(dtype)
            x = torch.stack([x, x]).T  # a non-contiguous view
            try:
                check_intensities(x, normalized=normalized)
                passed = True
            except IntensityError:
                passed = False
            assert passed == _exact_verdict(x, normalized), (dtype, value, other)


def test_a_lazily_negated_view_is_checked_exactly():
    # a real tensor with the negative bit set has no bit patterns to read
    from torchio_ramp.kernels.base import check_intensities

    values = torch.rand(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    view = torch.complex(values, -values).conj().imag
    assert view.is_neg()
    check_intensities(view)
    assert torch.equal(tr.kernels.gaussian_noise(view, std=0.0), values)
    bad = torch.complex(values, values).conj().imag  # -values: outside [0, 1]
    with pytest.raises(IntensityError, match='outside'):
        check_intensities(bad)


def test_a_sum_that_overflows_does_not_hide_a_finite_image():
    # finite float16 values whose sum overflows: the exact check decides
    from torchio_ramp.kernels.base import check_intensities

    x = torch.full((1, 4, 4, 4), 60000.0, dtype=torch.float16)
    check_intensities(x, normalized=False)
    with pytest.raises(IntensityError, match='outside'):
        check_intensities(x)


# Empty tensors -------------------------------------------------------------


@pytest.mark.parametrize('shape', [(1, 0, 4, 4), (0, 4, 4, 4), (2, 1, 4, 0, 4)])
def test_empty_tensors_are_refused_by_kernels(shape):
    with pytest.raises(ValueError, match=r'empty.*' + str(shape[-1])):
        tr.kernels.gaussian_noise(torch.empty(shape), std=0.1)


@pytest.mark.parametrize(
    'transform',
    [
        tr.RandomGaussianNoise(),
        tr.CTNormalize(),
        tr.DenseElastic(alpha=80, sigma=4),
        tr.LateralityFlip(axes=0),
        tr.Ramp(),
    ],
    ids=lambda t: type(t).__name__,
)
def test_empty_images_are_refused_by_transforms(transform):
    subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.empty(1, 0, 4, 4)))
    with pytest.raises(
        ValueError, match=r'image "ct" is empty \(shape \(1, 0, 4, 4\)\)'
    ):
        transform(subject)


# Geometry -------------------------------------------------------------------


def _two_d(seed: int = 0) -> tio.Subject:
    generator = torch.Generator().manual_seed(seed)
    return tio.Subject(
        ct=tio.ScalarImage(tensor=torch.rand(1, 16, 12, 1, generator=generator)),
        seg=tio.LabelMap(tensor=torch.randint(0, 3, (1, 16, 12, 1))),
    )


@pytest.mark.parametrize('axes', [0, 1, 2, (0, 1, 2)])
def test_2d_images_flip_along_any_axis(axes):
    subject = _two_d()
    out = tr.LateralityFlip(axes=axes)(subject)
    dims = [a + 1 for a in ((axes,) if isinstance(axes, int) else axes)]
    assert torch.equal(out.ct.data, subject.ct.data.flip(dims))
    assert torch.equal(out.seg.data, subject.seg.data.flip(dims))


def test_2d_images_pass_every_spatial_transform_and_ramp():
    for transform in (
        tr.RandomLateralityFlip(flip_probability=1),
        tr.DenseElastic(alpha=80, sigma=4, seed=1),
        tr.RandomDenseElastic(p=1),
        tr.RampSpatial(elastic_probability=1),
    ):
        out = transform(_two_d())
        assert out.ct.shape == (1, 16, 12, 1)
    for seed in range(30):  # every flip combination, with and without elastic
        torch.manual_seed(seed)
        out = tr.Ramp()(_two_d(seed))
        assert out.ct.shape == (1, 16, 12, 1)
        assert set(out.seg.data.unique().tolist()) <= {0, 1, 2}


@pytest.mark.parametrize(
    'transform',
    [
        tr.LateralityFlip(axes=0),
        tr.RandomLateralityFlip(flip_probability=1),
        tr.DenseElastic(alpha=80, sigma=4),
        tr.RampSpatial(),
    ],
    ids=lambda t: type(t).__name__,
)
def test_image_and_label_of_different_shapes_are_refused(transform):
    subject = tio.Subject(
        ct=tio.ScalarImage(tensor=torch.rand(1, 16, 16, 8)),
        seg=tio.LabelMap(tensor=torch.zeros(1, 16, 12, 8, dtype=torch.uint8)),
    )
    pattern = (
        r'different shapes would be misaligned: ct \(16, 16, 8\), seg \(16, 12, 8\)'
    )
    with pytest.raises(ValueError, match=pattern):
        transform(subject)


def test_an_int16_ct_is_interpolated_by_elastic():
    hu = torch.randint(-1000, 1000, (1, 16, 16, 16), dtype=torch.int16)
    subject = tio.Subject(ct=tio.ScalarImage(tensor=hu))
    out = tr.DenseElastic(alpha=400, sigma=4, seed=0)(subject)
    assert out.ct.data.dtype == torch.float32
    assert float(out.ct.data.min()) >= -1000 and float(out.ct.data.max()) <= 999
    assert not torch.equal(out.ct.data, hu.float())  # interpolated, not refused


@pytest.mark.parametrize('sigma', [1e7, 1e12])
def test_huge_elastic_sigma_is_refused_before_allocating(sigma):
    subject = _two_d()
    with pytest.raises(ValueError, match=r'sigma=.* too large for a field of shape'):
        tr.DenseElastic(alpha=80, sigma=sigma)(subject)
    with pytest.raises(ValueError, match='too large'):
        tr.kernels.elastic_deform(torch.rand(1, 8, 8, 8), alpha=80, sigma=sigma)


@pytest.mark.parametrize('value', [float('inf'), float('nan'), -1.0])
def test_elastic_parameters_must_be_finite(value):
    with pytest.raises(ValueError, match='sigma must be a finite non-negative'):
        tr.DenseElastic(alpha=80, sigma=value)
    with pytest.raises(ValueError, match='alpha'):
        tr.RandomDenseElastic(alpha=(0, value) if value > 0 else value)


# Arguments -------------------------------------------------------------------


@pytest.mark.parametrize('seed', [2**63, 2**64 - 1])
def test_seeds_up_to_two_to_the_64_work(seed):
    subject = _subject(torch.full(SHAPE, 0.5))
    first = tr.Corruption('gaussian_noise', {'std': 0.1}, seed=seed)(subject)
    again = tr.Corruption('gaussian_noise', {'std': 0.1}, seed=seed)(subject)
    assert torch.equal(first.ct.data, again.ct.data)
    tr.DenseElastic(alpha=80, sigma=4, seed=seed)(subject)
    tr.BatchRampCorrupt(p=1)(torch.full((1, *SHAPE), 0.5), seeds=[seed])


@pytest.mark.parametrize('seed', [2**64, -1, 1.5, True, '3'])
def test_out_of_range_seeds_are_refused_naming_the_seed(seed):
    with pytest.raises(
        ValueError, match=r'seed must be an integer in \[0, 2\*\*64 - 1\]'
    ):
        tr.Corruption('blur', {'sigma': 1.0}, seed=seed)
    with pytest.raises(ValueError, match='seed must be an integer'):
        tr.DenseElastic(alpha=1, sigma=1, seed=seed)
    if isinstance(seed, int) and not isinstance(seed, bool):
        with pytest.raises(ValueError, match='BatchRampCorrupt: seed'):
            tr.BatchRampCorrupt()(torch.full((1, *SHAPE), 0.5), seeds=[seed])


@pytest.mark.parametrize(
    ('build', 'name'),
    [
        (lambda: tr.RandomGaussianNoise(std=(0, float('inf'))), 'std'),
        (lambda: tr.RandomGaussianNoise(std=(0, float('nan'))), 'std'),
        (lambda: tr.RandomIsotropicBlur(sigma=(0, float('inf'))), 'sigma'),
        (lambda: tr.RandomCTIntensity('gamma', gamma1=(0.5, float('inf'))), 'gamma1'),
        (lambda: tr.RandomCorruption('stripe', strength=float('inf')), 'strength'),
    ],
)
def test_infinite_ranges_are_refused_when_built(build, name):
    with pytest.raises(ValueError, match=rf'"{name}" must be a range of finite'):
        build()


@pytest.mark.parametrize('stage', ['spatial', 'intensity', 'corruption'])
@pytest.mark.parametrize('value', ['no', 0, None, 'False'])
def test_ramp_stage_switches_must_be_booleans(stage, value):
    with pytest.raises(TypeError, match=rf'Ramp: {stage} must be True or False'):
        tr.Ramp(**{stage: value})
