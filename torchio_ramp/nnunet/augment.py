"""RAMP stages as steps of nnU-Net's (batchgeneratorsv2) per-sample pipeline.

nnU-Net's data loader runs a ``ComposeTransforms`` of ``BasicTransform``
steps on each sample: ``image`` ``(C, X, Y, Z)`` float and ``segmentation``
``(C, X, Y, Z)`` int16 tensors. :class:`TorchIOStage` runs one of RAMP's
TorchIO stages (:class:`~torchio_ramp.RampSpatial`,
:class:`~torchio_ramp.RampIntensity`) there; intensity stages run in the
``[0, 1]`` HU window through :class:`~torchio_ramp.nnunet.domain.HUWindow`.
:func:`run_per_sample` runs an intensity stage on a collated batch instead
(the RAMP trainers do, on the training device).
"""

from __future__ import annotations

from . import require_nnunetv2

require_nnunetv2()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchio as tio  # noqa: E402
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform  # noqa: E402

from .domain import HUWindow  # noqa: E402


def run_per_sample(transform: tio.Transform, batch: torch.Tensor) -> torch.Tensor:
    """A TorchIO intensity transform applied to each sample of a batch.

    Args:
        transform: A TorchIO transform of scalar images (e.g.
            :class:`~torchio_ramp.RampIntensity`); each sample draws its own
            parameters from torch's generator.
        batch: ``(B, C, X, Y, Z)`` images, on any device.

    Example:
        >>> import torch
        >>> from torchio_ramp import RampIntensity
        >>> out = run_per_sample(RampIntensity(), torch.rand(2, 1, 8, 8, 8))
        >>> out.shape, bool(out.min() >= 0), bool(out.max() <= 1)
        (torch.Size([2, 1, 8, 8, 8]), True, True)
    """
    samples = [
        transform(tio.Subject(image=tio.ScalarImage(tensor=sample)))['image'].data
        for sample in batch
    ]
    return torch.stack(samples).to(batch.device, batch.dtype)


class TorchIOStage(BasicTransform):
    """A TorchIO transform as a step of nnU-Net's training pipeline.

    Args:
        transform: A TorchIO transform (e.g. ``RampSpatial()``,
            ``RampIntensity()``).
        domain: For intensity transforms: the mapping from nnU-Net's
            normalised intensities to the HU window the transform expects;
            the segmentation is then not passed to the transform at all.
            ``None`` for spatial transforms, which receive the image and the
            segmentation (nearest-neighbour) together.

    Example:
        >>> import torch
        >>> from torchio_ramp import RampSpatial
        >>> stage = TorchIOStage(RampSpatial(flip_probability=1, elastic_probability=0))
        >>> image = torch.arange(8.0).reshape(1, 2, 2, 2)
        >>> seg = torch.zeros(1, 2, 2, 2, dtype=torch.int16)
        >>> out = stage(image=image, segmentation=seg)
        >>> out['image'].flatten().tolist(), out['segmentation'].dtype
        ([7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0], torch.int16)
    """

    def __init__(self, transform: tio.Transform, domain: HUWindow | None = None):
        super().__init__()
        self.transform = transform
        self.domain = domain

    def apply(self, data_dict: dict, **params) -> dict:
        # nnU-Net seeds NumPy in each data-augmentation worker, not torch (whose
        # state every forked worker shares): draw this sample's torch seed
        # from NumPy so that workers do not repeat each other's augmentations.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.randint(0, 2**31 - 1)))
            return self._apply(data_dict)

    def _apply(self, data_dict: dict) -> dict:
        image = data_dict['image']
        flat = image.ndim == 3  # a 2-D sample (C, X, Y)
        if flat:
            image = image[..., None]
        if self.domain is not None:
            out = self.domain.apply(image, self._run_intensity)
        else:
            segmentation = data_dict.get('segmentation')
            if segmentation is not None and flat:
                segmentation = segmentation[..., None]
            out, segmentation = self._run_spatial(image, segmentation)
            if segmentation is not None:
                data_dict['segmentation'] = (
                    segmentation[..., 0] if flat else segmentation
                )
        data_dict['image'] = out[..., 0] if flat else out
        return data_dict

    def _run_intensity(self, window: torch.Tensor) -> torch.Tensor:
        subject = tio.Subject(image=tio.ScalarImage(tensor=window))
        return self.transform(subject)['image'].data

    def _run_spatial(
        self, image: torch.Tensor, segmentation: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = {'image': tio.ScalarImage(tensor=image)}
        if segmentation is not None:
            images['segmentation'] = tio.LabelMap(tensor=segmentation)
        out = self.transform(tio.Subject(images))
        result = out['image'].data.to(image.dtype)
        if segmentation is None:
            return result, None
        return result, out['segmentation'].data.to(segmentation.dtype)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.transform}, domain={self.domain})'
