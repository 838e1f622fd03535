"""The paper's three-way compound corruption."""

from __future__ import annotations

import torch

from .base import batched
from .blur import gaussian_blur
from .fields import bias_field
from .noise import gaussian_noise


@batched
def compound(
    x: torch.Tensor,
    *,
    level: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian noise (std = level), then blur (sigma = 5 level), then bias field
    (strength = 3 level), applied in that order (paper, Table 2).

    Example:
        >>> x = torch.full((1, 8, 8, 8), 0.5)
        >>> y = compound(x, level=0.1, generator=torch.Generator().manual_seed(0))
        >>> y.shape
        torch.Size([1, 8, 8, 8])
    """
    out = gaussian_noise(x, std=level, generator=generator)
    out = gaussian_blur(out, sigma=5 * level)
    return bias_field(out, strength=3 * level, generator=generator)
