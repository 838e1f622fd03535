"""CT intensity normalisation: clip a Hounsfield-unit window and map it to [0, 1]."""

from __future__ import annotations

from typing import Any

import torchio as tio

DEFAULT_HU_RANGE = (-200.0, 300.0)
"""Default window: air and fat go dark, liver/spleen/kidney/heart/colon wall keep
contrast, bone saturates. Choose the window that suits your task."""


class CTNormalize(tio.Compose):
    """Clip intensities to ``hu_range`` and rescale that window to ``[0, 1]``.

    The paper applies RAMP after this normalisation (section 2.3), so every RAMP
    operator expects ``[0, 1]`` images and raises a clear error otherwise. This
    is TorchIO's :class:`~torchio.Clamp` followed by
    :class:`~torchio.RescaleIntensity` with ``in_min_max=hu_range``; both are
    recorded in the subject's history. Label maps are untouched.

    Args:
        hu_range: ``(low, high)`` window in Hounsfield units.
        **kwargs: ``include`` / ``exclude`` and the other arguments of
            :class:`torchio.transforms.Transform`, passed to both steps.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import CTNormalize
        >>> hu = torch.tensor([-1000.0, 50.0, 2000.0]).reshape(1, 3, 1, 1)
        >>> ct = tio.ScalarImage(tensor=hu)
        >>> CTNormalize(hu_range=(-200, 300))(ct).data.flatten().tolist()
        [0.0, 0.5, 1.0]
    """

    def __init__(self, hu_range: tuple[float, float] = DEFAULT_HU_RANGE, **kwargs: Any):
        low, high = tio.Transform._parse_range(hu_range, 'hu_range')
        if low >= high:
            raise ValueError(f'hu_range must satisfy low < high, not {hu_range!r}')
        self.hu_range = (float(low), float(high))
        steps = [
            tio.Clamp(out_min=self.hu_range[0], out_max=self.hu_range[1], **kwargs),
            tio.RescaleIntensity(
                out_min_max=(0, 1), in_min_max=self.hu_range, **kwargs
            ),
        ]
        super().__init__(steps)
