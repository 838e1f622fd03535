"""nnU-Net's CT intensities <-> RAMP's ``[0, 1]`` HU window.

nnU-Net's ``CTNormalization`` clips a CT to the 0.5th-99.5th percentiles of
the training foreground and z-scores it with the foreground mean and standard
deviation (``foreground_intensity_properties_per_channel`` in the plans):
``z = (clip(HU, p0.5, p99.5) - mean) / std``. RAMP's operators are defined on
a HU window mapped to ``[0, 1]`` (:class:`~torchio_ramp.CTNormalize`, default
``(-200, 300)``). :class:`HUWindow` maps a batch from one domain to the other
and back, so a RAMP operator runs in its own domain inside nnU-Net.

Outside the window. The window saturates: a voxel below ``low`` is 0, above
``high`` is 1. :meth:`HUWindow.apply` therefore adds RAMP's *change* in the
window back to the original value, ``z + (f(w) - w) * (high - low) / std``.
Inside the window this is exactly ``from_window(f(w))``; outside it a voxel
keeps its own intensity (air stays air, bone stays bone) plus whatever the
operator did to the saturated value (e.g. noise, or a blurred organ edge
spreading into it). Nothing is clipped that nnU-Net itself would not clip.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_WINDOW = (-200.0, 300.0)
"""The project's CT window in HU (:class:`~torchio_ramp.CTNormalize`)."""


@dataclass(frozen=True)
class HUWindow:
    """Map nnU-Net's z-scored CT intensities to a ``[0, 1]`` HU window and back.

    Args:
        mean: Foreground mean in HU (nnU-Net's plans).
        std: Foreground standard deviation in HU.
        window: ``(low, high)`` HU window mapped to ``[0, 1]``.

    Example:
        >>> import torch
        >>> mapping = HUWindow(mean=50.0, std=100.0)
        >>> z = torch.tensor([-1.0, 0.0, 2.5, 9.0])  # -50, 50, 300, 950 HU
        >>> mapping.to_window(z)
        tensor([0.3000, 0.5000, 1.0000, 1.0000])
        >>> mapping.apply(z, lambda w: w).tolist() == z.tolist()
        True
    """

    mean: float
    std: float
    window: tuple[float, float] = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        low, high = (float(v) for v in self.window)
        if not low < high:
            raise ValueError(f'window must satisfy low < high, not {self.window!r}')
        if not self.std > 0:
            raise ValueError(f'std must be positive, not {self.std!r}')
        object.__setattr__(self, 'window', (low, high))

    @classmethod
    def from_plans(
        cls,
        properties: Mapping[str, Any],
        window: tuple[float, float] = DEFAULT_WINDOW,
    ) -> HUWindow:
        """From one channel of ``foreground_intensity_properties_per_channel``.

        Example:
            >>> HUWindow.from_plans({'mean': 40.0, 'std': 80.0}).window
            (-200.0, 300.0)
        """
        try:
            mean, std = float(properties['mean']), float(properties['std'])
        except (KeyError, TypeError, ValueError) as error:
            message = (
                'the plans lack the foreground intensity mean/std of the CT channel'
                f' (got {dict(properties)!r}); was it planned with CTNormalization?'
            )
            raise ValueError(message) from error
        # nnU-Net divides by max(std, 1e-8)
        return cls(mean, max(std, 1e-8), window)

    @property
    def scale(self) -> float:
        """z-score units per unit of the window: ``(high - low) / std``."""
        low, high = self.window
        return (high - low) / self.std

    def to_window(self, z: torch.Tensor) -> torch.Tensor:
        """``clip((z * std + mean - low) / (high - low), 0, 1)`` (a new tensor)."""
        low, high = self.window
        offset = (self.mean - low) / (high - low)
        return (z / self.scale + offset).clamp_(0, 1)

    def from_window(self, w: torch.Tensor) -> torch.Tensor:
        """``(w * (high - low) + low - mean) / std`` (a new tensor)."""
        low, _ = self.window
        return w * self.scale + (low - self.mean) / self.std

    def apply(
        self, z: torch.Tensor, operation: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Run ``operation`` (``[0, 1]`` -> ``[0, 1]``) on ``z`` in the window.

        Returns ``z + (operation(w) - w) * scale`` with ``w = to_window(z)``:
        inside the window, ``from_window(operation(w))``; outside it, the
        original value plus the operation's change (see the module docstring).
        """
        w = self.to_window(z)
        changed = operation(w)
        return z + (changed - w) * self.scale


def hu_with_window_change(
    hu: torch.Tensor, clean: torch.Tensor, changed: torch.Tensor, window: tuple
) -> torch.Tensor:
    """A CT in HU carrying the change made to its ``[0, 1]`` windowed version.

    ``hu + (changed - clean) * (high - low)``, and exactly ``hu`` where the
    windowed voxel is unchanged. Used to feed a corrupted window to a model
    that normalises full-range HU itself (nnU-Net), without clipping.

    Example:
        >>> import torch
        >>> hu = torch.tensor([-1000.0, 50.0])
        >>> clean = torch.tensor([0.0, 0.5])
        >>> hu_with_window_change(hu, clean, torch.tensor([0.1, 0.5]), (-200, 300))
        tensor([-950.,   50.])
    """
    low, high = (float(v) for v in window)
    delta = (changed - clean) * (high - low)
    return torch.where(changed == clean, hu, hu + delta)
