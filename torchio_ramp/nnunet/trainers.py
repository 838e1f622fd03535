"""nnU-Net v2 trainers that augment with RAMP's strategies.

Use them with the stock command once nnU-Net can find them (see
:mod:`~torchio_ramp.nnunet.install`)::

    nnUNetv2_train DATASET 3d_fullres 0 -tr nnUNetTrainerRAMP [-device cpu]

Each trainer keeps nnU-Net's patch sampling (foreground oversampling, the
patch size of the plans), its loss, deep-supervision targets, schedule,
validation and inference, and replaces only the training augmentation:

* ``nnUNetTrainerRAMP``: ``strategy('ramp')``: RAMP's spatial stage (flips,
  elastic) and CT intensity stage in nnU-Net's data loader, then the
  multi-corruption stage on the training device (:class:`BatchRampCorrupt`);
* ``nnUNetTrainerRAMPIntensity``, ``nnUNetTrainerRAMPGeometric``,
  ``nnUNetTrainerRAMPArtifact``: ``strategy('intensity')``,
  ``strategy('geometric')``, ``strategy('artifact')``; the baseline is the
  stock ``nnUNetTrainer``;
* ``nnUNetTrainerRAMPPlus``: nnU-Net's own augmentation, then RAMP's
  multi-corruption stage (``strategy('corruption')``).

Intensity and corruption stages run in the ``[0, 1]`` HU window
:attr:`nnUNetTrainerRAMP.ramp_window` (default ``(-200, 300)``), mapped from
and back to nnU-Net's normalised intensities with the plans' foreground
mean and standard deviation (:class:`~torchio_ramp.nnunet.domain.HUWindow`);
label maps are never touched by them.

``*_Tiny`` variants (``nnUNetTrainer_Tiny`` is the stock trainer) train for a
handful of short epochs, for demos and tests on a CPU:
``RAMP_NNUNET_TINY_EPOCHS`` (default 2), ``RAMP_NNUNET_TINY_ITERATIONS``
(training iterations per epoch, default 5) and
``RAMP_NNUNET_TINY_VAL_ITERATIONS`` (default 2) change them.
"""

from __future__ import annotations

from . import require_nnunetv2

require_nnunetv2()

import os  # noqa: E402

import torch  # noqa: E402
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform  # noqa: E402
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms  # noqa: E402
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import (  # noqa: E402
    DownsampleSegForDSTransform,
)
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform  # noqa: E402
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform  # noqa: E402
from batchgeneratorsv2.transforms.utils.seg_to_regions import (  # noqa: E402
    ConvertSegmentationToRegionsTransform,
)
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer  # noqa: E402

from ..batch import BatchRampCorrupt  # noqa: E402
from ..pipelines import Ramp  # noqa: E402
from ..pipelines import RampCorrupt  # noqa: E402
from ..pipelines import RampIntensity  # noqa: E402
from ..pipelines import RampSpatial  # noqa: E402
from ..pipelines import strategy  # noqa: E402
from .augment import TorchIOStage  # noqa: E402
from .domain import DEFAULT_WINDOW  # noqa: E402
from .domain import HUWindow  # noqa: E402

__all__ = [
    'nnUNetTrainerRAMP',
    'nnUNetTrainerRAMPArtifact',
    'nnUNetTrainerRAMPGeometric',
    'nnUNetTrainerRAMPIntensity',
    'nnUNetTrainerRAMPPlus',
    'nnUNetTrainerRAMPPlus_Tiny',
    'nnUNetTrainerRAMP_Tiny',
    'nnUNetTrainer_Tiny',
]


def ramp_stages(
    name: str,
) -> tuple[RampSpatial | None, RampIntensity | None, RampCorrupt | None]:
    """The spatial, intensity and corruption stages of ``strategy(name)``.

    Example:
        >>> spatial, intensity, corrupt = ramp_stages('intensity')
        >>> spatial is None, type(intensity).__name__, corrupt is None
        (True, 'RampIntensity', True)
    """
    built = strategy(name)
    parts = built.transforms if isinstance(built, Ramp) else [built]

    def find(kind):
        return next((part for part in parts if isinstance(part, kind)), None)

    return find(RampSpatial), find(RampIntensity), find(RampCorrupt)


class nnUNetTrainerRAMP(nnUNetTrainer):
    """nnU-Net with RAMP's full strategy (spatial, intensity, corruption).

    Class attributes (subclass to change them):

    * ``ramp_strategy``: a name of :func:`~torchio_ramp.strategy`;
    * ``ramp_window``: the HU window of the intensity and corruption stages;
    * ``keep_nnunet_augmentation``: run nnU-Net's default augmentation
      (and only RAMP's corruption stage after it);
    * ``ramp_generator_device``: ``generator_device`` of
      :class:`~torchio_ramp.batch.BatchRampCorrupt` (``'input'``: random
      numbers drawn on the training device).
    """

    ramp_strategy = 'ramp'
    ramp_window: tuple[float, float] = DEFAULT_WINDOW
    keep_nnunet_augmentation = False
    ramp_generator_device = 'input'

    @property
    def ramp_domain(self) -> HUWindow:
        """The mapping between nnU-Net's CT channel and the HU window."""
        schemes = self.configuration_manager.normalization_schemes
        if schemes[0] != 'CTNormalization':
            message = (
                f'{type(self).__name__} needs CTNormalization for channel 0 (a CT),'
                f' the plans use {schemes[0]}'
            )
            raise ValueError(message)
        properties = self.plans_manager.foreground_intensity_properties_per_channel
        return HUWindow.from_plans(properties['0'], self.ramp_window)

    @property
    def ramp_corrupt(self) -> BatchRampCorrupt | None:
        """The corruption stage on the training device (``None`` if absent)."""
        if not hasattr(self, '_ramp_corrupt'):
            _, _, corrupt = ramp_stages(self.ramp_strategy)
            self._ramp_corrupt = (
                None
                if corrupt is None
                else BatchRampCorrupt(
                    p=corrupt.probability,
                    num_corruptions=corrupt.num_corruptions,
                    families=corrupt.families,
                    generator_device=self.ramp_generator_device,
                )
            )
        return self._ramp_corrupt

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, mirror_axes = (
            super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        )
        if not self.keep_nnunet_augmentation:
            # No rotation or scaling: sample patches of the final size.
            initial_patch_size = tuple(self.configuration_manager.patch_size)
        return rotation, dummy_2d, initial_patch_size, mirror_axes

    def get_training_transforms(  # instance method: it needs the plans
        self,
        patch_size,
        rotation_for_DA,
        deep_supervision_scales,
        mirror_axes,
        do_dummy_2d_data_aug,
        use_mask_for_norm=None,
        is_cascaded=False,
        foreground_labels=None,
        regions=None,
        ignore_label=None,
    ):
        if self.keep_nnunet_augmentation:
            return nnUNetTrainer.get_training_transforms(
                patch_size,
                rotation_for_DA,
                deep_supervision_scales,
                mirror_axes,
                do_dummy_2d_data_aug,
                use_mask_for_norm,
                is_cascaded,
                foreground_labels,
                regions,
                ignore_label,
            )
        if is_cascaded:
            message = f'{type(self).__name__} does not support cascaded configurations'
            raise NotImplementedError(message)
        spatial, intensity, _ = ramp_stages(self.ramp_strategy)
        transforms = [
            # nnU-Net's patch extraction, without rotation, scaling or elastic
            SpatialTransform(
                patch_size,
                patch_center_dist_from_border=0,
                random_crop=False,
                p_elastic_deform=0,
                p_rotation=0,
                p_scaling=0,
                border_mode_seg='constant',
                padding_value_seg=-1,
            )
        ]
        if spatial is not None:
            transforms.append(TorchIOStage(spatial))
        if intensity is not None:
            transforms.append(TorchIOStage(intensity, self.ramp_domain))
        if use_mask_for_norm is not None and any(use_mask_for_norm):
            channels = [i for i, used in enumerate(use_mask_for_norm) if used]
            transforms.append(
                MaskImageTransform(
                    apply_to_channels=channels, channel_idx_in_seg=0, set_outside_to=0
                )
            )
        transforms.append(RemoveLabelTansform(-1, 0))
        if regions is not None:
            all_regions = regions if ignore_label is None else [*regions, ignore_label]
            transforms.append(
                ConvertSegmentationToRegionsTransform(all_regions, channel_in_seg=0)
            )
        if deep_supervision_scales is not None:
            transforms.append(DownsampleSegForDSTransform(deep_supervision_scales))
        return ComposeTransforms(transforms)

    def corrupt_batch(self, data: torch.Tensor) -> torch.Tensor:
        """RAMP's corruption stage on a ``(B, C, ...)`` batch (nnU-Net domain).

        Channel 0 (the CT) is mapped to the window, corrupted per sample by
        :class:`~torchio_ramp.batch.BatchRampCorrupt`, and mapped back.
        """
        corrupt = self.ramp_corrupt
        if corrupt is None:
            return data
        ct = data[:, :1]
        flat = ct.ndim == 4  # 2-D batches (B, C, X, Y)
        if flat:
            ct = ct[..., None]
        with torch.no_grad():
            out = self.ramp_domain.apply(ct, corrupt)
        if flat:
            out = out[..., 0]
        return torch.cat([out, data[:, 1:]], dim=1) if data.shape[1] > 1 else out

    def train_step(self, batch: dict) -> dict:
        if self.ramp_corrupt is not None:
            data = batch['data'].to(self.device, non_blocking=True)
            batch = {**batch, 'data': self.corrupt_batch(data)}
        return super().train_step(batch)


class nnUNetTrainerRAMPIntensity(nnUNetTrainerRAMP):
    """nnU-Net with RAMP's CT intensity stage only (``strategy('intensity')``)."""

    ramp_strategy = 'intensity'


class nnUNetTrainerRAMPGeometric(nnUNetTrainerRAMP):
    """nnU-Net with RAMP's spatial stage only (``strategy('geometric')``)."""

    ramp_strategy = 'geometric'


class nnUNetTrainerRAMPArtifact(nnUNetTrainerRAMP):
    """nnU-Net with one artifact-like corruption (``strategy('artifact')``)."""

    ramp_strategy = 'artifact'


class nnUNetTrainerRAMPPlus(nnUNetTrainerRAMP):
    """nnU-Net's default augmentation, then RAMP's multi-corruption stage."""

    ramp_strategy = 'corruption'
    keep_nnunet_augmentation = True


def _env_count(name: str, default: int) -> int:
    value = os.environ.get(name, '')
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f'{name} must be a positive integer, not {value!r}')
    return int(value)


class TinySchedule:
    """A few short epochs (``RAMP_NNUNET_TINY_*``, see the module docstring)."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device('cuda'),  # noqa: B008 - nnU-Net's
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = _env_count('RAMP_NNUNET_TINY_EPOCHS', 2)
        self.num_iterations_per_epoch = _env_count('RAMP_NNUNET_TINY_ITERATIONS', 5)
        self.num_val_iterations_per_epoch = _env_count(
            'RAMP_NNUNET_TINY_VAL_ITERATIONS', 2
        )


class nnUNetTrainer_Tiny(TinySchedule, nnUNetTrainer):
    """The stock trainer (nnU-Net's augmentation), tiny schedule."""


class nnUNetTrainerRAMP_Tiny(TinySchedule, nnUNetTrainerRAMP):
    """:class:`nnUNetTrainerRAMP`, tiny schedule."""


class nnUNetTrainerRAMPPlus_Tiny(TinySchedule, nnUNetTrainerRAMPPlus):
    """:class:`nnUNetTrainerRAMPPlus`, tiny schedule."""
