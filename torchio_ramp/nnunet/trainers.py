"""nnU-Net v2 trainers that augment with RAMP's strategies.

Use them with the stock command once nnU-Net can find them (see
:mod:`~torchio_ramp.nnunet.install`)::

    nnUNetv2_train DATASET 3d_fullres 0 -tr nnUNetTrainerRAMP [-device cpu]

Each trainer keeps nnU-Net's patch sampling (foreground oversampling, the
patch size of the plans), its loss, deep-supervision targets, schedule,
validation and inference, and replaces only the training augmentation:

* ``nnUNetTrainerRAMP``: ``strategy('ramp')``: RAMP's spatial stage (flips,
  elastic) in nnU-Net's data loader, then the CT intensity stage and the
  multi-corruption stage (:class:`BatchRampCorrupt`) per sample on the
  collated batch, on the training device;
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

The intensity stage needs the plans' foreground statistics, which nnU-Net's
``get_training_transforms`` (a static method, built before the trainer's
plans reach it) cannot see; on the batch it runs where the statistics are
known, and the data loader keeps nnU-Net's own pipeline shape.

Checkpoints are portable: the RAMP trainers keep nnU-Net's network, so they
save ``trainer_name = 'nnUNetTrainer'`` (the class nnU-Net's predictor builds
the network with) and record the trainer that trained the model under
``ramp_provenance``. Stock nnU-Net predicts with a RAMP-trained model without
this package (see :mod:`~torchio_ramp.nnunet.export` for older checkpoints).

``*_Tiny`` variants (``nnUNetTrainer_Tiny`` is the stock trainer) train for a
handful of short epochs, for demos and tests on a CPU: class attributes
``tiny_epochs`` (default 2), ``tiny_iterations`` (training iterations per
epoch, 5) and ``tiny_val_iterations`` (2); subclass to change them.
"""

from __future__ import annotations

from . import require_nnunetv2

require_nnunetv2()

from pathlib import Path  # noqa: E402

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
from ..files import atomic_path  # noqa: E402
from ..pipelines import Ramp  # noqa: E402
from ..pipelines import RampCorrupt  # noqa: E402
from ..pipelines import RampIntensity  # noqa: E402
from ..pipelines import RampSpatial  # noqa: E402
from ..pipelines import strategy  # noqa: E402
from . import RAMP_TRAINERS  # noqa: E402
from . import STOCK_TRAINER  # noqa: E402
from . import package_version  # noqa: E402
from .augment import TorchIOStage  # noqa: E402
from .augment import run_per_sample  # noqa: E402
from .checkpoint import PROVENANCE_KEY  # noqa: E402
from .checkpoint import load_checkpoint  # noqa: E402
from .domain import DEFAULT_WINDOW  # noqa: E402
from .domain import HUWindow  # noqa: E402

__all__ = list(RAMP_TRAINERS)


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


def ramp_training_transforms(strategy_name: str) -> staticmethod:
    """nnU-Net's ``get_training_transforms`` for ``strategy(strategy_name)``.

    A static method with nnU-Net's signature: patch extraction without
    rotation, scaling or elastic deformation, RAMP's spatial stage (if the
    strategy has one) and nnU-Net's label steps (masking, ignore label,
    regions, deep-supervision targets). The intensity and corruption stages
    run on the batch (:meth:`nnUNetTrainerRAMP.augment_batch`).

    Example:
        >>> pipeline = ramp_training_transforms('ramp').__func__((32, 32, 32),
        ...     None, None, (0, 1, 2), False)
        >>> [type(t).__name__ for t in pipeline.transforms]
        ['SpatialTransform', 'TorchIOStage', 'RemoveLabelTransform']
    """

    def get_training_transforms(
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
        if is_cascaded:
            message = (
                f'strategy {strategy_name!r} does not support cascaded configurations'
            )
            raise NotImplementedError(message)
        spatial, _, _ = ramp_stages(strategy_name)
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

    get_training_transforms.__qualname__ = (
        f'ramp_training_transforms({strategy_name!r})'
    )
    return staticmethod(get_training_transforms)


class PortableCheckpoints:
    """Save checkpoints that stock nnU-Net predicts with (mixin).

    After nnU-Net writes a checkpoint, ``trainer_name`` is set to
    ``nnUNetTrainer`` when this class builds nnU-Net's network unchanged, and
    the trainer that trained the model is kept under ``ramp_provenance`` (a
    key nnU-Net does not read). A subclass that overrides
    ``build_network_architecture`` keeps its own name.
    """

    def save_checkpoint(self, filename: str) -> None:
        super().save_checkpoint(filename)
        if getattr(self, 'local_rank', 0) != 0 or not Path(filename).is_file():
            return
        checkpoint = load_checkpoint(filename)
        checkpoint[PROVENANCE_KEY] = self.ramp_provenance()
        if type(self).build_network_architecture is (
            nnUNetTrainer.build_network_architecture
        ):
            checkpoint['trainer_name'] = STOCK_TRAINER
        with atomic_path(Path(filename)) as tmp:
            torch.save(checkpoint, tmp)

    def ramp_provenance(self) -> dict:
        """What trained the model (plain data, stored in each checkpoint)."""
        return {
            'trainer_name': type(self).__name__,
            'ramp_strategy': getattr(self, 'ramp_strategy', 'baseline'),
            'ramp_window': list(getattr(self, 'ramp_window', DEFAULT_WINDOW)),
            'torchio_ramp_version': package_version(),
        }


class nnUNetTrainerRAMP(PortableCheckpoints, nnUNetTrainer):
    """nnU-Net with RAMP's full strategy (spatial, intensity, corruption).

    Class attributes (subclass to change them):

    * ``ramp_strategy``: a name of :func:`~torchio_ramp.strategy`;
    * ``ramp_window``: the HU window of the intensity and corruption stages;
    * ``keep_nnunet_augmentation``: run nnU-Net's default augmentation
      (and only RAMP's corruption stage after it);
    * ``ramp_generator_device``: ``generator_device`` of
      :class:`~torchio_ramp.batch.BatchRampCorrupt` (``'input'``: random
      numbers drawn on the training device).

    A subclass that changes ``ramp_strategy`` or ``keep_nnunet_augmentation``
    gets the matching ``get_training_transforms`` (a static method, as in
    nnU-Net) automatically.
    """

    ramp_strategy = 'ramp'
    ramp_window: tuple[float, float] = DEFAULT_WINDOW
    keep_nnunet_augmentation = False
    ramp_generator_device = 'input'
    get_training_transforms = ramp_training_transforms('ramp')

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if 'get_training_transforms' not in vars(cls):
            cls.get_training_transforms = (
                vars(nnUNetTrainer)['get_training_transforms']
                if cls.keep_nnunet_augmentation
                else ramp_training_transforms(cls.ramp_strategy)
            )

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
    def ramp_intensity(self) -> RampIntensity | None:
        """The CT intensity stage run per sample on the batch (or ``None``).

        With ``keep_nnunet_augmentation`` nnU-Net's own intensity
        augmentation runs instead.
        """
        if not hasattr(self, '_ramp_intensity'):
            _, intensity, _ = ramp_stages(self.ramp_strategy)
            self._ramp_intensity = None if self.keep_nnunet_augmentation else intensity
        return self._ramp_intensity

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

    def _window_stages(self, window: torch.Tensor) -> torch.Tensor:
        if self.ramp_intensity is not None:
            window = run_per_sample(self.ramp_intensity, window)
        if self.ramp_corrupt is not None:
            window = self.ramp_corrupt(window)
        return window

    def augment_batch(self, data: torch.Tensor) -> torch.Tensor:
        """RAMP's intensity and corruption stages on a ``(B, C, ...)`` batch.

        Channel 0 (the CT) is mapped to the window, each sample gets its own
        intensity operations (:attr:`ramp_intensity`) and corruptions
        (:attr:`ramp_corrupt`), and the change is mapped back to nnU-Net's
        domain. Other channels are untouched.
        """
        if self.ramp_intensity is None and self.ramp_corrupt is None:
            return data
        ct = data[:, :1]
        flat = ct.ndim == 4  # 2-D batches (B, C, X, Y)
        if flat:
            ct = ct[..., None]
        with torch.no_grad():
            out = self.ramp_domain.apply(ct, self._window_stages)
        if flat:
            out = out[..., 0]
        return torch.cat([out, data[:, 1:]], dim=1) if data.shape[1] > 1 else out

    def train_step(self, batch: dict) -> dict:
        if self.ramp_intensity is not None or self.ramp_corrupt is not None:
            data = batch['data'].to(self.device, non_blocking=True)
            batch = {**batch, 'data': self.augment_batch(data)}
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


class TinySchedule:
    """A few short epochs for demos and tests (mixin).

    Class attributes ``tiny_epochs``, ``tiny_iterations`` (training
    iterations per epoch) and ``tiny_val_iterations``; subclass to change
    them.
    """

    tiny_epochs = 2
    tiny_iterations = 5
    tiny_val_iterations = 2

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device('cuda'),  # noqa: B008 - nnU-Net's
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.tiny_epochs
        self.num_iterations_per_epoch = self.tiny_iterations
        self.num_val_iterations_per_epoch = self.tiny_val_iterations


class nnUNetTrainer_Tiny(TinySchedule, PortableCheckpoints, nnUNetTrainer):
    """The stock trainer (nnU-Net's augmentation), tiny schedule."""


class nnUNetTrainerRAMP_Tiny(TinySchedule, nnUNetTrainerRAMP):
    """:class:`nnUNetTrainerRAMP`, tiny schedule."""


class nnUNetTrainerRAMPPlus_Tiny(TinySchedule, nnUNetTrainerRAMPPlus):
    """:class:`nnUNetTrainerRAMPPlus`, tiny schedule."""
