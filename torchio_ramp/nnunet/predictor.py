"""A trained nnU-Net v2 model as a ``ramp-stress`` predictor.

``ramp-stress run --nnunet RESULTS_DIR --fold 0`` evaluates the model in
``RESULTS_DIR`` (nnU-Net's ``$nnUNet_results/DatasetNNN_Name/
TRAINER__PLANS__CONFIGURATION`` folder) through nnU-Net's own
``nnUNetPredictor``: its preprocessing (CT normalisation, resampling to the
plans' spacing), sliding window with Gaussian weighting, optional test-time
mirroring, and resampling back. Every setting's volume is made exactly as for
any other model (same protocol, seeds and ``[0, 1]`` HU window); the change a
corruption made to the windowed CT is then added to the CT in HU
(:func:`~torchio_ramp.nnunet.domain.hu_with_window_change`), so voxels
outside the window keep their HU and the clean setting is the original CT.

The model folder is read as data (:class:`~torchio_ramp.nnunet.model_folder.
ModelFolder`): the checkpoint with ``torch.load(weights_only=True)`` before
nnU-Net sees it, and nnU-Net's predictor is handed the network, never the
file. Test-time mirroring is off by default (the stress protocol evaluates
one forward pass per window, as the paper does); ``use_mirroring=True``
turns nnU-Net's eight-fold mirroring on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..files import file_sha256
from ..transforms.normalization import normalize_window
from . import require_nnunetv2
from .domain import DEFAULT_WINDOW
from .domain import hu_with_window_change
from .model_folder import ModelFolder


class NnunetPredictor:
    """``ramp-stress`` predictor backed by ``nnUNetPredictor``.

    Args:
        results_dir: nnU-Net's model folder (``TRAINER__PLANS__CONFIG``).
        fold: Fold to load (``0``..``4`` or ``'all'``).
        checkpoint: Checkpoint file in ``fold_N``.
        device: Inference device.
        window: HU window of the stress protocol (the volumes' ``[0, 1]``).
        tile_step_size: nnU-Net's sliding-window step (its default 0.5).
        use_mirroring: nnU-Net's test-time mirroring on the axes stored in the
            checkpoint (eight forward passes per window in 3-D). Off by
            default: the stress protocol's single pass.

    Raises:
        FileNotFoundError: If the folder or the checkpoint is missing.
        ValueError: If the folder is not an nnU-Net model folder or lacks the
            fold, or its checkpoint or plans are crafted or damaged (the
            message names the file).
        ImportError: If nnunetv2 is not installed (names the extra).

    Example:
        >>> predictor = NnunetPredictor('results/Dataset777_X/'
        ...     'nnUNetTrainerRAMP__nnUNetPlans__3d_fullres')  # doctest: +SKIP
        >>> labels = predictor.for_subject(subject)(volume)  # doctest: +SKIP
    """

    def __init__(
        self,
        results_dir: str | Path,
        fold: int | str = 0,
        checkpoint: str = 'checkpoint_final.pth',
        *,
        device: str | torch.device = 'cpu',
        window: tuple[float, float] = DEFAULT_WINDOW,
        tile_step_size: float = 0.5,
        use_mirroring: bool = False,
    ):
        require_nnunetv2()
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        self.results_dir = Path(results_dir)
        folder = ModelFolder(self.results_dir, fold, checkpoint)
        self.checkpoint_path = folder.checkpoint_path
        self.fold = fold
        self.window = (float(window[0]), float(window[1]))
        self.trainer = self.results_dir.name.split('__')[0]
        network, plans_manager, configuration = folder.build()
        device = torch.device(device)
        self.predictor = nnUNetPredictor(
            tile_step_size=tile_step_size,
            use_mirroring=use_mirroring,
            perform_everything_on_device=device.type == 'cuda',
            device=device,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
        self.predictor.manual_initialization(
            network,
            plans_manager,
            configuration,
            [folder.checkpoint['network_weights']],
            folder.dataset_json,
            folder.trainer_name,
            folder.checkpoint.get('inference_allowed_mirroring_axes'),
        )
        self.tile_step_size = tile_step_size
        self.use_mirroring = use_mirroring

    @property
    def name(self) -> str:
        """Default model name: the trainer (``nnUNetTrainerRAMP``)."""
        return self.trainer

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the model in a run's arguments."""
        return {
            'model': 'nnunet',
            'model_sha256': file_sha256(self.checkpoint_path),
            'nnunet_model': self.results_dir.name,
            'fold': str(self.fold),
            'checkpoint': self.checkpoint_path.name,
            'tile_step_size': self.tile_step_size,
            'mirroring': self.use_mirroring,
        }

    def predict_hu(self, hu: torch.Tensor, spacing) -> torch.Tensor:
        """Segment a CT in HU, ``(C, I, J, K)`` with spacing ``(si, sj, sk)``.

        The array is handed to nnU-Net in SimpleITK's axis order
        (``(C, K, J, I)``, spacing reversed), as ``nnUNetv2_predict`` reads a
        NIfTI file; the label map is returned as ``(I, J, K)`` int64.
        """
        array = hu.detach().to('cpu', torch.float32).numpy().transpose(0, 3, 2, 1)
        properties = {'spacing': [float(s) for s in reversed(tuple(spacing))]}
        labels = self.predictor.predict_single_npy_array(array.copy(), properties)
        return torch.from_numpy(labels.transpose(2, 1, 0).astype('int64'))

    def for_subject(
        self, subject, image_name: str = 'ct'
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The predictor of one subject's settings (called by the stress runner).

        Returns ``volume (C, I, J, K) in [0, 1] -> labels (I, J, K)``: the
        volume's change from the clean window is added to the subject's HU.
        """
        image = subject[image_name]
        hu = image.data
        spacing = image.spacing
        clean = normalize_window(hu, *self.window)
        hu = hu.to(torch.float32)

        def predict(volume: torch.Tensor) -> torch.Tensor:
            volume = volume.to('cpu', torch.float32)
            return self.predict_hu(
                hu_with_window_change(hu, clean, volume, self.window), spacing
            )

        return predict

    def __call__(self, volume: torch.Tensor) -> torch.Tensor:
        message = (
            'NnunetPredictor needs the subject (its HU and spacing): use'
            ' predictor.for_subject(subject)(volume); the stress runner does this'
        )
        raise TypeError(message)
