"""Property-based tests (Hypothesis) of every operator over random inputs.

Shapes include one-voxel axes, channels go from 1 to 3, parameters are drawn
inside their training ranges (ends included) or as extrapolated severity
levels in [0, 0.5], seeds are arbitrary. For every draw the output is a new
finite tensor in [0, 1] of the input's shape and dtype, the input is untouched,
the same seed gives the same output, and a batch of one equals the image.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests.test_kernels_contract import REGISTRY
from tests.test_kernels_contract import one_thread  # noqa: F401
from torchio_ramp import kernels
from torchio_ramp.kernels.intensity import warp_coefficients

PROPERTY = settings(max_examples=30, deadline=None)

shapes = st.tuples(
    st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)
)
seeds = st.integers(0, 2**31 - 1)


@st.composite
def operator_arguments(draw, name: str) -> dict[str, Any]:
    """Kernel keywords of ``name``: within the training range or at a level."""
    if name == 'elastic_deform':
        return {
            'alpha': draw(st.floats(0.0, 500.0)),
            'sigma': draw(st.floats(0.0, 12.0)),
            'mode': draw(st.sampled_from(['bilinear', 'nearest'])),
        }
    operator = REGISTRY[name]
    if draw(st.booleans()):
        return operator.parameters_at(draw(st.floats(0.0, 0.5)))
    arguments = operator.default_options()
    for p in operator.parameters:
        ends = st.sampled_from([p.low, p.high])
        arguments[p.name] = draw(st.one_of(ends, st.floats(p.low, p.high)))
    return arguments


@st.composite
def cases(draw) -> tuple[str, dict[str, Any], torch.Tensor, int]:
    name = draw(st.sampled_from(sorted([*REGISTRY, 'elastic_deform'])))
    arguments = draw(operator_arguments(name))
    shape = draw(shapes)
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    generator = torch.Generator().manual_seed(draw(seeds))
    x = torch.rand(shape, generator=generator, dtype=dtype)
    # exact 0 and 1 voxels, where clipping and multiplicative ops are edgy
    x.view(-1)[:: draw(st.integers(2, 9))] = draw(st.sampled_from([0.0, 1.0]))
    return name, arguments, x, draw(seeds)


def run(name: str, x: torch.Tensor, arguments: dict[str, Any], seed: int):
    kernel = kernels.elastic_deform if name == 'elastic_deform' else REGISTRY[name]
    return kernel(x, generator=torch.Generator().manual_seed(seed), **arguments)


@PROPERTY
@given(cases())
def test_any_operator_keeps_range_shape_and_is_deterministic(case):
    name, arguments, x, seed = case
    original = x.clone()
    y = run(name, x, arguments, seed)
    assert torch.equal(x, original)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.data_ptr() != x.data_ptr()
    assert torch.isfinite(y).all()
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.equal(run(name, x, arguments, seed), y)


@PROPERTY
@given(cases())
def test_any_operator_batch_of_one_equals_the_image(case):
    name, arguments, x, seed = case
    assert torch.equal(
        run(name, x[None], arguments, seed)[0], run(name, x, arguments, seed)
    )


@PROPERTY
@given(
    degree=st.integers(1, 8),
    coefficient_std=st.one_of(st.just(0.0), st.floats(0.0, 5.0)),
    seed=seeds,
)
def test_histogram_warp_is_monotonic_with_fixed_ends(degree, coefficient_std, seed):
    coefficients = warp_coefficients(
        degree, coefficient_std, torch.Generator().manual_seed(seed)
    )
    assert all(c >= 0 for c in coefficients)
    assert math.isclose(sum(coefficients), 1.0, abs_tol=1e-6)
    x = torch.linspace(0, 1, 257).reshape(1, 1, 1, -1)
    y = kernels.histogram_warp(
        x,
        degree=degree,
        coefficient_std=coefficient_std,
        generator=torch.Generator().manual_seed(seed),
    )
    assert (y.diff() >= 0).all()
    assert float(y[..., 0]) == 0.0 and abs(float(y[..., -1]) - 1) <= 1e-6


@PROPERTY
@given(
    shape=shapes,
    axis=st.integers(0, 2),
    shifts=st.lists(st.integers(-20, 20), max_size=4),
    intensity=st.floats(0.0, 1.0),
)
def test_add_ghosts_is_a_clipped_sum_of_circular_shifts(shape, axis, shifts, intensity):
    x = torch.rand(
        shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    expected = x.clone()
    for shift in shifts:
        expected += intensity * torch.roll(x, shift, dims=1 + axis)
    got = kernels.add_ghosts(x, intensity=intensity, axis=axis, shifts=shifts)
    torch.testing.assert_close(got, expected.clamp(0, 1), rtol=0, atol=1e-12)


@PROPERTY
@given(shape=shapes, fraction=st.floats(0.01, 1.0), seed=seeds)
def test_stripes_change_round_fraction_of_the_slices_of_one_axis(shape, fraction, seed):
    x = torch.full(shape, 0.5, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    y = kernels.stripes(x, strength=0.5, fraction=fraction, generator=generator)
    varying = [
        a for a in range(3) if not (y == y.narrow(1 + a, 0, 1).expand_as(y)).all()
    ]
    changed = y != x
    magnitudes = (y - x).abs()[changed]
    assert ((magnitudes >= 0.25 - 1e-12) & (magnitudes <= 0.5 + 1e-12)).all()
    expected = [max(1, math.floor(fraction * n + 0.5)) for n in shape[1:]]
    if varying:
        (axis,) = varying
        count = int(changed.movedim(1 + axis, 0).flatten(1).any(1).sum())
        assert count == expected[axis]
    else:  # a single-voxel image: its one slice is striped
        assert shape[1:] == (1, 1, 1) and changed.all()


@pytest.mark.parametrize('name', sorted(REGISTRY))
def test_registry_call_equals_kernel_call(name):
    operator = REGISTRY[name]
    x = torch.rand(2, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    arguments = operator.parameters_at(0.15)
    via_operator = operator(x, generator=torch.Generator().manual_seed(1), **arguments)
    via_kernel = operator.kernel(
        x, generator=torch.Generator().manual_seed(1), **arguments
    )
    assert torch.equal(via_operator, via_kernel)
