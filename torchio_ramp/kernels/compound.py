"""The paper's three-way compound corruption."""

from __future__ import annotations

import torch

from .base import batched
from .fields import _multiply_by_bias
from .filters import gaussian_filter
from .noise import gaussian_noise


@batched
def compound(
    x: torch.Tensor,
    *,
    level: float,
    generator: torch.Generator | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gaussian noise (std = level), then blur (sigma = 5 level), then bias field
    (strength = 3 level), applied in that order (paper, Table 2).

    Example:
        >>> x = torch.full((1, 8, 8, 8), 0.5)
        >>> y = compound(x, level=0.1, generator=torch.Generator().manual_seed(0))
        >>> y.shape
        torch.Size([1, 8, 8, 8])
    """
    # Each step owns the previous step's output, so it may reuse its memory.
    # ``x`` was checked on entry: call the unchecked single-image kernel.
    noisy = gaussian_noise.__wrapped__(x, std=level, generator=generator, out=out)
    blurred = gaussian_filter(noisy, 5 * level, overwrite_input=True).clamp_(0, 1)
    del noisy  # with out given, the bias step writes the result there
    return _multiply_by_bias(blurred, 3 * level, generator, out=out)
