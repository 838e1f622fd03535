"""A corruption family that is not the paper's, registered at run time.

``quantization`` rounds intensities to a grid of ``step`` (bit-depth
reduction); a step of 0 is the identity. It is a complete family: a kernel that
meets the kernel contract and a registry entry, and nothing else (no named
class, no test edits), as a contributor would add one.

Used two ways:

* :func:`registered`, a context manager that registers the family and removes
  it again (the registry is left exactly as it was);
* as a pytest plugin (``pytest -p tests.extra_family ...``), which registers it
  before the test modules are collected, so every test parametrised over the
  registry is also parametrised over ``quantization``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from torchio_ramp.families import register_family
from torchio_ramp.families import unregister_family
from torchio_ramp.kernels.base import batched
from torchio_ramp.operators import Operator
from torchio_ramp.operators import Parameter

NAME = 'quantization'


@batched
def quantize(
    x: torch.Tensor,
    *,
    step: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Round every voxel to the nearest multiple of ``step`` (0: unchanged)."""
    if step <= 0:
        return x.clone()
    return (torch.round(x / step) * step).clamp_(0, 1)


QUANTIZATION = Operator(
    name=NAME,
    title='Quantization',
    kernel=quantize,
    parameters=(Parameter('step', 0.02, 0.10, minimum=0.0, doc='grey-level step'),),
    summary='Rounds intensities to a coarser grey-level grid (bit-depth reduction).',
    reference='not in the paper',
)


@contextlib.contextmanager
def registered() -> Iterator[Operator]:
    """Register :data:`QUANTIZATION` for the duration of the block."""
    register_family(QUANTIZATION)
    try:
        yield QUANTIZATION
    finally:
        unregister_family(NAME)


def pytest_configure(config) -> None:
    """Plugin hook: register the family before the tests are collected."""
    register_family(QUANTIZATION)
