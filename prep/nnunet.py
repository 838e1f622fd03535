"""nnU-Net's fold 0 from our split: ``splits_final.json`` in ``nnUNet_preprocessed``.

``--format nnunet`` writes ``splits_final.json`` (our train/val split as the
only fold) into the raw dataset folder, and ``nnUNetv2_plan_and_preprocess``
copies it into ``$nnUNet_preprocessed/DatasetNNN_Name/`` when that folder has
none. :func:`write_nnunet_splits` writes it there from the raw folder's
``splits.json`` at any time (after a re-split, or when nnU-Net already made
its own five-fold file), checking every id against the preprocessed cases.
No nnU-Net import is needed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from torchio_ramp.datasets import SPLITS_JSON

from .errors import PrepError
from .outputs import SPLITS_FINAL_JSON
from .outputs import read_json
from .outputs import write_json

_DATASET_NAME = re.compile(r'Dataset(\d{3})_[A-Za-z0-9-]+')


def nnunet_folder(env: str, given: Path | None, option: str) -> Path:
    """An nnU-Net base folder: ``given`` or the environment variable ``env``.

    Raises:
        PrepError: If neither is set or the folder does not exist.

    Example:
        >>> nnunet_folder('nnUNet_raw', Path('.'), '--raw')
        PosixPath('.')
    """
    if given is None:
        value = os.environ.get(env, '')
        if not value:
            raise PrepError(f'{env} is not set: set it or pass {option} DIR')
        given = Path(value)
    if not given.is_dir():
        raise PrepError(f'{option} / {env}: folder not found: {given}')
    return given


def find_dataset(base: Path, dataset: str) -> Path:
    """The ``DatasetNNN_Name`` folder of ``dataset`` (an id or the full name).

    Raises:
        PrepError: If ``dataset`` is neither, or ``base`` does not hold it.

    Example:
        >>> find_dataset(Path('raw'), '777')  # doctest: +SKIP
        PosixPath('raw/Dataset777_RampTotalSegSynth')
    """
    if dataset.isdigit() and 1 <= int(dataset) <= 999:
        matches = sorted(base.glob(f'Dataset{int(dataset):03d}_*'))
    elif _DATASET_NAME.fullmatch(dataset):
        matches = [base / dataset] if (base / dataset).is_dir() else []
    else:
        raise PrepError(
            'DATASET must be an nnU-Net dataset id (1..999) or a name '
            f'DatasetNNN_Name, not {dataset!r}'
        )
    matches = [m for m in matches if m.is_dir()]
    if not matches:
        raise PrepError(f'dataset {dataset} not found in {base}')
    if len(matches) > 1:
        names = ', '.join(m.name for m in matches)
        raise PrepError(f'dataset id {dataset} is ambiguous in {base}: {names}')
    return matches[0]


def preprocessed_cases(folder: Path) -> set[str]:
    """Case ids nnU-Net preprocessed (its ``gt_segmentations`` folder)."""
    segmentations = folder / 'gt_segmentations'
    if not segmentations.is_dir():
        raise PrepError(
            f'{folder} holds no gt_segmentations: run nnUNetv2_plan_and_preprocess '
            f'-d {folder.name[7:10]} first'
        )
    suffix = '.nii.gz'
    return {p.name[: -len(suffix)] for p in segmentations.glob(f'*{suffix}')}


def write_nnunet_splits(
    dataset: str,
    raw: Path | None = None,
    preprocessed: Path | None = None,
    overwrite: bool = False,
) -> tuple[Path, dict[str, list[str]], str]:
    """Write our train/val split as nnU-Net's fold 0 in ``nnUNet_preprocessed``.

    Args:
        dataset: nnU-Net dataset id or ``DatasetNNN_Name``.
        raw: ``nnUNet_raw`` (default: the environment variable).
        preprocessed: ``nnUNet_preprocessed`` (default: the environment
            variable).
        overwrite: Replace a ``splits_final.json`` with other folds (e.g.
            the five-fold split ``nnUNetv2_train`` creates when none exists).

    Returns:
        The written file, fold 0, and ``'written'`` or ``'unchanged'``.

    Raises:
        PrepError: Missing folders or dataset, an export without
            ``splits.json``, ids nnU-Net did not preprocess, or another split
            in place without ``overwrite``.

    Example:
        >>> write_nnunet_splits('777')  # doctest: +SKIP
        (PosixPath('.../Dataset777_X/splits_final.json'), {...}, 'written')
    """
    raw_folder = find_dataset(nnunet_folder('nnUNet_raw', raw, '--raw'), dataset)
    base = nnunet_folder('nnUNet_preprocessed', preprocessed, '--preprocessed')
    target = base / raw_folder.name
    if not target.is_dir():
        raise PrepError(
            f'{target} not found: run nnUNetv2_plan_and_preprocess -d '
            f'{raw_folder.name[7:10]} first'
        )
    splits_path = raw_folder / SPLITS_JSON
    if not splits_path.is_file():
        raise PrepError(
            f'{raw_folder} has no {SPLITS_JSON}: it was not exported by '
            '`ramp-prep ... --format nnunet`'
        )
    splits = read_json(splits_path)
    fold = {'train': list(splits['train']), 'val': list(splits['val'])}
    missing = sorted(set(fold['train'] + fold['val']) - preprocessed_cases(target))
    if missing:
        raise PrepError(
            f'{len(missing)} id(s) of {splits_path} were not preprocessed by '
            f'nnU-Net in {target} (e.g. {missing[0]}): re-run '
            'nnUNetv2_plan_and_preprocess'
        )
    path = target / SPLITS_FINAL_JSON
    if path.is_file():
        current = read_json(path)
        if current == [fold]:
            return path, fold, 'unchanged'
        if not overwrite:
            raise PrepError(
                f'{path} holds another split ({len(current)} fold(s)); pass '
                '--overwrite to replace it (models trained on its folds no longer '
                'match their fold number)'
            )
    write_json(path, [fold])
    return path, fold, 'written'
