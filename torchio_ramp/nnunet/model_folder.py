"""A trained nnU-Net model folder, read as data, and its network.

nnU-Net's model folder (``$nnUNet_results/DatasetNNN_Name/
TRAINER__PLANS__CONFIGURATION``) holds ``plans.json``, ``dataset.json`` and
``fold_N/checkpoint_*.pth``. nnU-Net builds the network from the plans by
importing the classes they name and calling them, and reads the checkpoint
with a full unpickling. Here the checkpoint is read with
:func:`~torchio_ramp.nnunet.checkpoint.load_checkpoint` (data only), the
plans may only name nnU-Net's own network classes
(``dynamic_network_architectures``) and ``torch.nn`` building blocks, and the
network comes from the trainer class only when the trainer changes it:
torchio-ramp's trainers (:data:`~torchio_ramp.nnunet.RAMP_TRAINERS`) keep
nnU-Net's network, so their models need neither ``install`` nor
``nnUNet_extTrainer`` to be predicted with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import RAMP_TRAINERS
from . import STOCK_TRAINER
from .checkpoint import load_checkpoint

NETWORK_MODULES = ('dynamic_network_architectures.',)
"""Where the plans' ``network_arch_class_name`` may point."""

BUILDING_BLOCK_MODULES = ('torch.nn.',)
"""Where the plans' ``_kw_requires_import`` entries may point."""


def check_model_folder(results_dir: Path, fold: int | str, checkpoint: str) -> Path:
    """The checkpoint file of ``fold``, after checking the folder's layout.

    Raises:
        FileNotFoundError: If the folder or the checkpoint is missing.
        ValueError: If the folder lacks ``plans.json``/``dataset.json`` or
            the fold.

    Example:
        >>> check_model_folder(Path('no/such/folder'), 0, 'checkpoint_final.pth')
        Traceback (most recent call last):
        ...
        FileNotFoundError: --nnunet: folder not found: no/such/folder
    """
    if not results_dir.is_dir():
        raise FileNotFoundError(f'--nnunet: folder not found: {results_dir}')
    missing = [
        n for n in ('plans.json', 'dataset.json') if not (results_dir / n).is_file()
    ]
    if missing:
        message = (
            f'--nnunet {results_dir} is not an nnU-Net model folder (no'
            f' {", ".join(missing)}); pass $nnUNet_results/DatasetNNN_Name/'
            'TRAINER__PLANS__CONFIGURATION'
        )
        raise ValueError(message)
    fold_dir = results_dir / f'fold_{fold}'
    if not fold_dir.is_dir():
        folds = sorted(p.name for p in results_dir.glob('fold_*') if p.is_dir())
        message = (
            f'--fold {fold}: {results_dir} has no fold_{fold}'
            f' (found: {", ".join(folds) or "no folds"})'
        )
        raise ValueError(message)
    path = fold_dir / checkpoint
    if Path(checkpoint).name != checkpoint or not path.is_file():
        found = sorted(p.name for p in fold_dir.glob('*.pth'))
        message = (
            f'--checkpoint {checkpoint}: not found in {fold_dir}'
            f' (found: {", ".join(found) or "no checkpoints"})'
        )
        raise FileNotFoundError(message)
    return path


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a clear :class:`ValueError` naming it."""
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f'{path} cannot be read as JSON ({error})') from error
    if not isinstance(data, dict):
        raise ValueError(f'{path} must hold a JSON object, not {type(data).__name__}')
    return data


def check_architecture(configuration: Mapping[str, Any], plans_path: Path) -> None:
    """Refuse plans that would make nnU-Net import and call other code.

    Example:
        >>> arch = {'network_class_name': 'os.system', 'arch_kwargs': {},
        ...         '_kw_requires_import': []}
        >>> check_architecture({'architecture': arch}, Path('plans.json'))
        Traceback (most recent call last):
        ...
        ValueError: plans.json: the network class 'os.system' is not one of nnU-Net's (dynamic_network_architectures.*); nnU-Net would import and call it
    """  # noqa: E501
    architecture = configuration.get('architecture')
    if not isinstance(architecture, Mapping):
        raise ValueError(f'{plans_path}: the configuration has no architecture')
    name = architecture.get('network_class_name')
    if not isinstance(name, str) or not name.startswith(NETWORK_MODULES):
        message = (
            f"{plans_path}: the network class {name!r} is not one of nnU-Net's"
            f' ({NETWORK_MODULES[0]}*); nnU-Net would import and call it'
        )
        raise ValueError(message)
    kwargs = architecture.get('arch_kwargs', {})
    for key in architecture.get('_kw_requires_import', []):
        value = kwargs.get(key) if isinstance(kwargs, Mapping) else None
        if value is not None and not (
            isinstance(value, str) and value.startswith(BUILDING_BLOCK_MODULES)
        ):
            message = (
                f'{plans_path}: the network argument {key} = {value!r} is not a'
                f' {BUILDING_BLOCK_MODULES[0]}* class; nnU-Net would import and call it'
            )
            raise ValueError(message)


def network_trainer_class(trainer_name: str) -> type:
    """The trainer class whose ``build_network_architecture`` builds the network.

    torchio-ramp's trainers and the stock trainer use
    ``nnUNetTrainer.build_network_architecture``; any other trainer is looked
    up with nnU-Net's own search (its package, then ``nnUNet_extTrainer``).

    Raises:
        ValueError: If nnU-Net cannot find (or import) the trainer.
    """
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    if trainer_name == STOCK_TRAINER or trainer_name in RAMP_TRAINERS:
        return nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        return recursive_find_trainer_class_by_name(trainer_name)
    except Exception as error:  # not found, or a trainer module fails to import
        message = (
            f'the model was trained with {trainer_name}, which nnU-Net cannot load'
            f' ({type(error).__name__}: {str(error).splitlines()[0][:300]}); make the'
            ' trainer findable (its module in nnU-Net or nnUNet_extTrainer)'
        )
        raise ValueError(message) from error


class ModelFolder:
    """One fold of a trained nnU-Net model, read without running its files.

    Args:
        results_dir: ``TRAINER__PLANS__CONFIGURATION`` folder.
        fold: ``0``..``4`` or ``'all'``.
        checkpoint: Checkpoint file name in ``fold_N``.

    Raises:
        FileNotFoundError: Missing folder or checkpoint.
        ValueError: A folder that is not nnU-Net's, plans naming other code,
            a crafted or damaged checkpoint
            (:class:`~torchio_ramp.nnunet.checkpoint.CheckpointError`).

    Example:
        >>> folder = ModelFolder('Dataset777_X/nnUNetTrainerRAMP__nnUNetPlans__3d_fullres')  # doctest: +SKIP
        >>> folder.checkpoint['trainer_name']  # doctest: +SKIP
        'nnUNetTrainerRAMP'
    """  # noqa: E501

    def __init__(
        self,
        results_dir: str | Path,
        fold: int | str = 0,
        checkpoint: str = 'checkpoint_final.pth',
    ):
        self.path = Path(results_dir)
        self.checkpoint_path = check_model_folder(self.path, fold, checkpoint)
        self.plans = read_json(self.path / 'plans.json')
        self.dataset_json = read_json(self.path / 'dataset.json')
        self.checkpoint = load_checkpoint(self.checkpoint_path)
        self.configuration_name = self.checkpoint['init_args']['configuration']
        configurations = self.plans.get('configurations')
        if (
            not isinstance(configurations, Mapping)
            or self.configuration_name not in configurations
        ):
            message = (
                f'{self.path / "plans.json"} has no configuration'
                f' {self.configuration_name!r}, which {self.checkpoint_path} was'
                ' trained with'
            )
            raise ValueError(message)

    @property
    def trainer_name(self) -> str:
        """The trainer recorded in the checkpoint."""
        return self.checkpoint['trainer_name']

    def build(self) -> tuple[Any, Any, Any]:
        """``(network, plans_manager, configuration_manager)``, weights loaded.

        Raises:
            ValueError: If the plans name other code than nnU-Net's networks,
                or the weights do not fit the network of the plans.
        """
        from nnunetv2.utilities.label_handling.label_handling import (
            determine_num_input_channels,
        )
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        plans_manager = PlansManager(self.plans)
        configuration = plans_manager.get_configuration(self.configuration_name)
        check_architecture(configuration.configuration, self.path / 'plans.json')
        inputs = determine_num_input_channels(
            plans_manager, configuration, self.dataset_json
        )
        outputs = plans_manager.get_label_manager(
            self.dataset_json
        ).num_segmentation_heads
        trainer = network_trainer_class(self.trainer_name)
        network = trainer.build_network_architecture(
            plans_manager, configuration, inputs, outputs, enable_deep_supervision=False
        )
        try:
            network.load_state_dict(self.checkpoint['network_weights'])
        except RuntimeError as error:
            message = (
                f'{self.checkpoint_path}: the weights do not fit the network of'
                f' {self.path / "plans.json"} ({str(error).splitlines()[0]})'
            )
            raise ValueError(message) from error
        return network, plans_manager, configuration
