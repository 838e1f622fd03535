"""The kernel contract (``kernels/base.py``), checked for every registered operator.

Every corruption family (Table 2), every CT intensity operation (Table 1) and
the elastic deformation runs at the ends of its training range and at
extrapolated severities (levels 0 and 0.5), on 3-D, 2-D (D = 1), multichannel
and float64 images: the output is a new finite tensor in [0, 1] of the same
shape, dtype and device, the input is untouched, a seed fixes the result, and
the batched path equals the single-image path sample by sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from torchio_ramp import kernels
from torchio_ramp.families import FAMILIES
from torchio_ramp.intensity_ops import INTENSITY_OPERATIONS
from torchio_ramp.operators import Operator

NORMALIZED_FAMILIES = {n: f for n, f in FAMILIES.items() if f.domain == 'normalized'}
"""Families on [0, 1] images (those on HU: ``tests/test_ct_physics.py``)."""

REGISTRY: dict[str, Operator] = {**NORMALIZED_FAMILIES, **INTENSITY_OPERATIONS}


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Run the kernel tests on one intra-op thread, then restore the setting.

    The test volumes are tiny, so threads buy nothing, while on a loaded machine
    every parallel region waits for a busy core: on the shared 2-core box the
    kernel suite took 22 s with one thread and 63 s with two (load average 7).
    Results do not depend on the thread count beyond float rounding.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def parameter_sets(operator: Operator) -> dict[str, dict[str, Any]]:
    """Kernel keywords at both ends of the training range and extrapolated."""
    options = operator.default_options()
    return {
        'low': {**{p.name: p.low for p in operator.parameters}, **options},
        'high': {**{p.name: p.high for p in operator.parameters}, **options},
        'level0': operator.parameters_at(0.0),
        'level0.5': operator.parameters_at(0.5),
    }


CASES: dict[str, tuple[Any, dict[str, dict[str, Any]]]] = {
    name: (operator.kernel, parameter_sets(operator))
    for name, operator in REGISTRY.items()
}
CASES['elastic_deform'] = (
    kernels.elastic_deform,
    {
        'table1': {'alpha': 80.0, 'sigma': 10.0},
        'strong': {'alpha': 300.0, 'sigma': 3.0},
        'nearest': {'alpha': 300.0, 'sigma': 3.0, 'mode': 'nearest'},
    },
)

RANDOM = {
    'gaussian_noise',
    'rician_noise',
    'motion_blur',
    'salt_pepper',
    'speckle_noise',
    'bias_field',
    'ghosting',
    'intensity_shift',
    'stripe',
    'compound',
    'histogram_warp',
    'elastic_deform',
}
"""Operators that draw from the generator (the paper samples axis, sign, ...)."""

DETERMINISTIC = set(CASES) - RANDOM

CASE_IDS = [(name, case) for name, (_, sets) in CASES.items() for case in sets]

SHAPES = {
    '3d': ((1, 12, 10, 8), torch.float32),
    '2d-multichannel': ((3, 1, 12, 10), torch.float32),
    'float64': ((2, 6, 7, 5), torch.float64),
}


def image(shape=(1, 12, 10, 8), dtype=torch.float32, seed=0) -> torch.Tensor:
    """A random image in [0, 1] with some exact 0 and 1 voxels."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    flat = x.view(-1)
    flat[::7] = 0.0
    flat[3::11] = 1.0
    return x


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def apply(name: str, x: torch.Tensor, case: str, seed: int | None = 0, **overrides):
    kernel, sets = CASES[name]
    generator = None if seed is None else seeded(seed)
    return kernel(x, generator=generator, **{**sets[case], **overrides})


def assert_valid_output(y: torch.Tensor, x: torch.Tensor):
    assert y.shape == x.shape
    assert y.dtype == x.dtype
    assert y.device == x.device
    assert y.data_ptr() != x.data_ptr()
    assert torch.isfinite(y).all()
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_every_registry_entry_is_classified():
    assert set(REGISTRY) <= set(CASES)
    assert set(CASES) >= RANDOM
    assert set(CASES) == set(REGISTRY) | {'elastic_deform'}


@pytest.mark.parametrize('shape_id', list(SHAPES))
@pytest.mark.parametrize(('name', 'case'), CASE_IDS)
def test_output_contract(name, case, shape_id):
    shape, dtype = SHAPES[shape_id]
    x = image(shape, dtype)
    original = x.clone()
    y = apply(name, x, case, seed=1)
    assert torch.equal(x, original), 'input modified'
    assert_valid_output(y, x)
    assert torch.equal(apply(name, x, case, seed=1), y), 'same seed, other result'


LAYOUTS = {
    'expanded': lambda: image((1, 1, 10, 8)).expand(2, 12, 10, 8),
    'permuted': lambda: image((8, 10, 12, 2)).permute(3, 2, 1, 0),
    'strided': lambda: image((2, 24, 10, 8))[:, ::2],
}
"""Non-contiguous inputs, including stride-0 (broadcast) views."""


@pytest.mark.parametrize('layout', list(LAYOUTS))
@pytest.mark.parametrize('name', sorted(CASES))
def test_non_contiguous_input_gives_the_contiguous_result(name, layout):
    x = LAYOUTS[layout]()
    case = OTHER_CASE[name]
    expected = apply(name, x.contiguous(), case, seed=2)
    torch.testing.assert_close(
        apply(name, x, case, seed=2), expected, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize('name', sorted(NORMALIZED_FAMILIES))
def test_level_zero_is_identity_when_every_parameter_clamps_to_zero(name):
    parameters = FAMILIES[name].parameters_at(0.0)
    numeric = [parameters[p] for p in FAMILIES[name].parameter_names]
    x = image((2, 6, 7, 5))
    y = apply(name, x, 'level0')
    if all(value == 0 for value in numeric):
        assert torch.equal(y, x)
    else:  # ghosting (intensity 0.025) and downsample (factor 1.125)
        assert name in {'ghosting', 'downsample'}
        assert not torch.equal(y, x)


@pytest.mark.parametrize('name', sorted(RANDOM))
def test_random_operators_depend_on_the_seed(name):
    x = image()
    outputs = [
        apply(name, x, 'high' if name != 'elastic_deform' else 'strong', s)
        for s in range(8)
    ]
    distinct = {tuple(y.flatten().tolist()) for y in outputs}
    assert len(distinct) >= 2


@pytest.mark.parametrize('name', sorted(DETERMINISTIC))
def test_deterministic_operators_ignore_the_generator(name):
    x = image()
    reference = apply(name, x, 'high', seed=None)
    for seed in range(3):
        assert torch.equal(apply(name, x, 'high', seed), reference)


# Batched path --------------------------------------------------------------------

BATCH_CASES = {name: next(iter(sets)) for name, (_, sets) in CASES.items()}
"""One parameter set per operator ('low', or 'table1' for elastic)."""

OTHER_CASE = {name: list(sets)[1] for name, (_, sets) in CASES.items()}


@pytest.mark.parametrize('name', sorted(CASES))
def test_batch_of_one_equals_single_image(name):
    x = image((2, 6, 7, 5))
    case = BATCH_CASES[name]
    single = apply(name, x, case, seed=3)
    batch = apply(name, x[None], case, seed=3)
    assert batch.shape == (1, *x.shape)
    assert torch.equal(batch[0], single)


@pytest.mark.parametrize('name', sorted(CASES))
def test_batch_with_one_generator_draws_samples_in_order(name):
    x = torch.stack([image((1, 6, 7, 5), seed=s) for s in range(3)])
    kernel, sets = CASES[name]
    parameters = sets[OTHER_CASE[name]]
    batch = kernel(x, generator=seeded(4), **parameters)
    generator = seeded(4)
    for i in range(3):
        assert torch.equal(batch[i], kernel(x[i], generator=generator, **parameters))


def per_sample(name: str) -> tuple[list[dict[str, Any]], dict[str, list]]:
    """Two parameter sets and their per-sample lists (same keys)."""
    _, sets = CASES[name]
    first, second = sets[BATCH_CASES[name]], sets[OTHER_CASE[name]]
    keys = sorted(set(first) | set(second))
    samples = [
        {key: first.get(key, second.get(key)) for key in keys},
        {key: second.get(key, first.get(key)) for key in keys},
    ]
    return samples, {key: [s[key] for s in samples] for key in keys}


@pytest.mark.parametrize('name', sorted(CASES))
def test_batch_with_per_sample_parameters_and_generators(name):
    kernel, _ = CASES[name]
    x = torch.stack([image((2, 6, 7, 5), seed=s) for s in range(2)])
    original = x.clone()
    samples, lists = per_sample(name)
    batch = kernel(x, generator=[seeded(5), seeded(6)], **lists)
    assert torch.equal(x, original)
    assert_valid_output(batch, x)
    for i, (parameters, seed) in enumerate(zip(samples, (5, 6), strict=True)):
        expected = kernel(x[i], generator=seeded(seed), **parameters)
        assert torch.equal(batch[i], expected)


@pytest.mark.parametrize('name', sorted(REGISTRY))
def test_batch_accepts_parameter_tensors(name):
    kernel, _ = CASES[name]
    _, lists = per_sample(name)
    floats = {k: v for k, v in lists.items() if all(isinstance(e, float) for e in v)}
    if not floats:
        pytest.skip(f'{name} has no float parameters')
    x = torch.stack([image((1, 6, 7, 5), seed=s) for s in range(2)])
    as_lists = kernel(x, generator=seeded(1), **lists)
    as_tensors = kernel(
        x,
        generator=seeded(1),
        **{
            **lists,
            **{k: torch.tensor(v, dtype=torch.float64) for k, v in floats.items()},
        },
    )
    assert torch.equal(as_tensors, as_lists)


@pytest.mark.parametrize('name', sorted(CASES))
def test_batch_rejects_wrong_number_of_parameters(name):
    kernel, _ = CASES[name]
    _, lists = per_sample(name)
    key = sorted(lists)[0]
    x = torch.stack([image((1, 6, 7, 5), seed=s) for s in range(2)])
    arguments = {**lists, key: [*lists[key], lists[key][0]]}
    message = (
        f'{kernel.__name__}: per-sample parameter "{key}" has 3 values for a batch of 2'
    )
    with pytest.raises(ValueError, match=message):
        kernel(x, generator=seeded(0), **arguments)


@pytest.mark.parametrize('name', sorted(CASES))
def test_batch_rejects_wrong_number_of_generators(name):
    kernel, sets = CASES[name]
    x = torch.stack([image((1, 6, 7, 5), seed=s) for s in range(2)])
    generators = [seeded(0), seeded(1), seeded(2)]
    message = f'{kernel.__name__}: got 3 generators for a batch of 2'
    with pytest.raises(ValueError, match=message):
        kernel(x, generator=generators, **sets[BATCH_CASES[name]])


@pytest.mark.parametrize('name', sorted(CASES))
@pytest.mark.parametrize(
    ('bad', 'error', 'message'),
    [
        (torch.zeros(4, 4, 4), ValueError, r'x must have shape \(C, D, H, W\) or'),
        (torch.zeros(1, 1, 1, 4, 4, 4), ValueError, r'but it has shape \(1, 1, 1, 4'),
        (torch.zeros(1, 4, 4, 4, dtype=torch.uint8), ValueError, 'floating tensor'),
        (torch.zeros(1, 4, 4, 4).numpy(), TypeError, 'must be a torch.Tensor'),
    ],
)
def test_bad_input_is_rejected(name, bad, error, message):
    kernel, sets = CASES[name]
    with pytest.raises(error, match=message):
        kernel(bad, generator=seeded(0), **sets[BATCH_CASES[name]])


@pytest.mark.parametrize(
    'arguments',
    [{'std': [0.1]}, {'std': 0.1, 'generator': [torch.Generator()]}],
    ids=['parameter-list', 'generator-list'],
)
def test_per_sample_lists_on_a_single_image_raise_a_clear_error(arguments):
    key = 'std' if isinstance(arguments['std'], list) else 'generator'
    with pytest.raises(ValueError, match=f'"{key}" is a per-sample list'):
        kernels.gaussian_noise(image(), **arguments)


SCALAR_TYPES = {
    'numpy-float32': lambda v: np.float32(v),
    'numpy-float64': lambda v: np.float64(v),
    'tensor-0d': lambda v: torch.tensor(v, dtype=torch.float64),
}
"""Scalar types users pass for a single parameter value (e.g. sampled with NumPy)."""


def scalar_cases():
    for name in sorted(CASES):
        for kind in SCALAR_TYPES:
            yield pytest.param(name, kind, id=f'{name}-{kind}')


@pytest.mark.parametrize(('name', 'kind'), list(scalar_cases()))
def test_numpy_and_0d_tensor_scalars_act_like_floats(name, kind):
    kernel, sets = CASES[name]
    parameters = sets[OTHER_CASE[name]]
    convert = SCALAR_TYPES[kind]
    exact = {  # the float each converted value stands for
        k: float(convert(v)) if isinstance(v, float) else v
        for k, v in parameters.items()
    }
    converted = {
        k: convert(v) if isinstance(v, float) else v for k, v in parameters.items()
    }
    x = image()
    expected = kernel(x, generator=seeded(0), **exact)
    got = kernel(x, generator=seeded(0), **converted)
    # float32 scalars round intermediate products differently (elastic: 1e-6)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


# CPU and CUDA agree --------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize(('name', 'case'), CASE_IDS)
def test_cuda_matches_cpu_with_a_cpu_generator(name, case):
    x = image((2, 12, 10, 8))
    cpu = apply(name, x, case, seed=7)
    cuda = apply(name, x.cuda(), case, seed=7)
    assert cuda.device.type == 'cuda'
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-5)
    batch = apply(name, torch.stack([x, x]).cuda(), case, seed=7)
    assert batch.device.type == 'cuda'
    torch.testing.assert_close(batch[0].cpu(), cpu, rtol=0, atol=1e-5)
