"""A RAMP-trained nnU-Net model as a model folder that stock nnU-Net predicts with.

A checkpoint records the class that trained it (``trainer_name``), and
nnU-Net's predictor looks that class up to build the network. The RAMP
trainers change only the training augmentation (and the ``_Tiny`` ones the
schedule), never the network, so their weights are a stock ``nnUNetTrainer``
model. :func:`export_model` writes the model folder again under the stock
trainer's name, ``OUT/DatasetNNN_Name/nnUNetTrainer__PLANS__CONFIGURATION``,
with each checkpoint's ``trainer_name`` set to ``nnUNetTrainer`` and where it
came from kept under ``ramp_provenance``, a key nnU-Net does not read. Plain
nnU-Net (``nnUNetv2_predict`` with ``nnUNet_results=OUT``) predicts with it,
without torchio-ramp or its trainer module installed; the predictions are
those of the original folder, voxel for voxel.

Checkpoints are read with :func:`~torchio_ramp.nnunet.checkpoint.load_checkpoint`
(data only) and written atomically.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..files import atomic_path
from ..files import file_sha256
from . import RAMP_TRAINERS
from . import STOCK_TRAINER
from . import package_version
from .checkpoint import PROVENANCE_KEY
from .checkpoint import load_checkpoint
from .model_folder import check_model_folder
from .model_folder import read_json

COPIED_FILES = ('plans.json', 'dataset.json', 'dataset_fingerprint.json')
"""Files of the model folder copied as they are (the last one if present)."""


@dataclass(frozen=True)
class Export:
    """What :func:`export_model` wrote.

    Attributes:
        folder: The new model folder (``.../nnUNetTrainer__PLANS__CONFIG``).
        results: The folder to set as ``nnUNet_results`` for ``nnUNetv2_predict``.
        dataset: ``DatasetNNN_Name``.
        plans: The plans identifier (``nnUNetPlans``...).
        configuration: The configuration (``3d_fullres``...).
        trainer: The trainer recorded in the source checkpoints.
        folds: The exported folds.
    """

    folder: Path
    results: Path
    dataset: str
    plans: str
    configuration: str
    trainer: str
    folds: tuple[str, ...]

    def predict_command(self) -> str:
        """The stock nnU-Net command that predicts with the export.

        Example:
            >>> Export(Path('o/D/x'), Path('o'), 'Dataset777_X', 'nnUNetPlans',
            ...        '3d_fullres', 'nnUNetTrainerRAMP', ('0',)).predict_command()
            'nnUNet_results=o nnUNetv2_predict -d Dataset777_X -p nnUNetPlans -c 3d_fullres -f 0 -i IN -o OUT'
        """  # noqa: E501
        folds = ' '.join(self.folds)
        return (
            f'nnUNet_results={self.results} nnUNetv2_predict -d {self.dataset}'
            f' -p {self.plans} -c {self.configuration} -f {folds} -i IN -o OUT'
        )


def _parse_folder_name(model_folder: Path) -> tuple[str, str, str]:
    parts = model_folder.name.split('__')
    if len(parts) != 3 or not model_folder.parent.name.startswith('Dataset'):
        message = (
            f'{model_folder} is not named like an nnU-Net model folder'
            ' (DatasetNNN_Name/TRAINER__PLANS__CONFIGURATION)'
        )
        raise ValueError(message)
    return parts[0], parts[1], parts[2]


def export_model(
    model_folder: str | Path,
    out: str | Path,
    *,
    folds: tuple[str, ...] | None = None,
    checkpoint: str = 'checkpoint_final.pth',
) -> Export:
    """Write ``model_folder`` as a stock ``nnUNetTrainer`` model under ``out``.

    Args:
        model_folder: ``$nnUNet_results/DatasetNNN_Name/TRAINER__PLANS__CONFIG``
            of a model trained with a torchio-ramp trainer (or the stock one).
        out: A results folder; the export is
            ``out/DatasetNNN_Name/nnUNetTrainer__PLANS__CONFIG``.
        folds: Folds to export (default: every ``fold_*`` holding
            ``checkpoint``).
        checkpoint: Checkpoint file of each fold.

    Returns:
        What was written (:class:`Export`).

    Raises:
        FileNotFoundError: A missing folder, fold or checkpoint.
        ValueError: A trainer that may change the network (not one of
            :data:`~torchio_ramp.nnunet.RAMP_TRAINERS`), a crafted or
            damaged checkpoint, an export that would overwrite its source.

    Example:
        >>> folder = 'results/Dataset777_X/nnUNetTrainerRAMP__nnUNetPlans__3d_fullres'
        >>> export = export_model(folder, 'exported')  # doctest: +SKIP
        >>> export.folder.name  # doctest: +SKIP
        'nnUNetTrainer__nnUNetPlans__3d_fullres'
    """
    source = Path(model_folder)
    if str(out) == '':
        raise ValueError('OUT must not be empty')
    if not source.is_dir():
        raise FileNotFoundError(f'model folder not found: {source}')
    _, plans_name, configuration = _parse_folder_name(source)
    if folds is None:
        folds = tuple(
            sorted(
                p.name[len('fold_') :]
                for p in source.glob('fold_*')
                if (p / checkpoint).is_file()
            )
        )
        if not folds:
            raise FileNotFoundError(f'{source} has no fold_*/{checkpoint}')
    paths = {fold: check_model_folder(source, fold, checkpoint) for fold in folds}
    dataset = source.parent.name
    target = Path(out) / dataset / f'{STOCK_TRAINER}__{plans_name}__{configuration}'
    if target.resolve() == source.resolve():
        raise ValueError(f'the export {target} would overwrite its source')
    checkpoints = {fold: load_checkpoint(path) for fold, path in paths.items()}
    trainers = {c['trainer_name'] for c in checkpoints.values()}
    if len(trainers) != 1:
        raise ValueError(f'{source}: the folds were trained by {sorted(trainers)}')
    (recorded,) = trainers
    provenances = [c.get(PROVENANCE_KEY) or {} for c in checkpoints.values()]
    trainer = str(provenances[0].get('trainer_name', recorded))
    if recorded != STOCK_TRAINER and recorded not in RAMP_TRAINERS:
        message = (
            f'{source} was trained with {recorded}, not with a torchio-ramp trainer:'
            " only trainers known to keep nnU-Net's network are exported as"
            f' {STOCK_TRAINER}'
        )
        raise ValueError(message)
    for name in ('plans.json', 'dataset.json'):
        read_json(source / name)  # data, and readable
    target.mkdir(parents=True, exist_ok=True)
    for name in COPIED_FILES:
        if (source / name).is_file():
            with atomic_path(target / name) as tmp:
                shutil.copyfile(source / name, tmp)
    for fold, loaded in checkpoints.items():
        exported = dict(loaded)
        exported['trainer_name'] = STOCK_TRAINER
        exported[PROVENANCE_KEY] = {
            'trainer_name': trainer,
            **dict(loaded.get(PROVENANCE_KEY) or {}),
            'exported_from': source.name,
            'source_checkpoint_sha256': file_sha256(paths[fold]),
            'exported_by': f'torchio-ramp {package_version()}',
        }
        (target / f'fold_{fold}').mkdir(exist_ok=True)
        with atomic_path(target / f'fold_{fold}' / checkpoint) as tmp:
            torch.save(exported, tmp)
    return Export(target, Path(out), dataset, plans_name, configuration, trainer, folds)
