"""CT intensity normalisation: clip a Hounsfield-unit window and map it to [0, 1]."""

from __future__ import annotations

import math
from typing import Any

import torch
import torchio as tio

from ..kernels.base import check_intensities
from .shell import LightCopy

DEFAULT_HU_RANGE = (-200.0, 300.0)
"""Default window: air and fat go dark, liver/spleen/kidney/heart/colon wall keep
contrast, bone saturates. Choose the window that suits your task."""


class CTNormalize(LightCopy, tio.IntensityTransform):
    """Clip intensities to ``hu_range`` and rescale that window to ``[0, 1]``.

    The paper applies RAMP after this normalisation (section 2.3), so every RAMP
    operator expects ``[0, 1]`` images and raises a clear error otherwise. The
    result equals TorchIO's ``Clamp(low, high)`` followed by
    ``RescaleIntensity(out_min_max=(0, 1), in_min_max=hu_range)``, computed in
    one fused pass as float32: it runs on every whole volume a data loader
    reads, and is about 7 times faster than the two TorchIO transforms (3.4 ms
    against 25 ms per 128^3 int16 subject at one thread, both including
    TorchIO's deep copy of the subject).
    Label maps are untouched. Floating images holding NaN or Inf are refused
    (one extra reduction; integer images cannot hold them).

    Args:
        hu_range: ``(low, high)`` window in Hounsfield units.
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import CTNormalize
        >>> hu = torch.tensor([-1000.0, 50.0, 2000.0]).reshape(1, 3, 1, 1)
        >>> ct = tio.ScalarImage(tensor=hu)
        >>> CTNormalize(hu_range=(-200, 300))(ct).data.flatten().tolist()
        [0.0, 0.5, 1.0]
    """

    def __init__(
        self,
        hu_range: tuple[float, float] = DEFAULT_HU_RANGE,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        low, high = self._parse_range(hu_range, 'hu_range')
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            message = (
                f'hu_range must be two finite numbers with low < high, not {hu_range!r}'
            )
            raise ValueError(message)
        self.hu_range = (float(low), float(high))
        self.args_names = ['hu_range']

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        low, high = self.hu_range
        for name, image in self.get_images_dict(subject).items():
            if image.data.is_floating_point():  # integer HU are always finite
                check_intensities(image.data, name, self.name, normalized=False)
            image.set_data(normalize_window(image.data, low, high))
        return subject


def normalize_window(data: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Map ``[low, high]`` linearly onto ``[0, 1]`` and clip, as float32.

    Example:
        >>> normalize_window(torch.tensor([-300, 50, 500]), -200.0, 300.0)
        tensor([0.0000, 0.5000, 1.0000])
    """
    out = data.to(torch.float32, copy=True)
    return out.sub_(low).div_(high - low).clamp_(0, 1)
