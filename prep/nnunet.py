"""nnU-Net's fold 0 from our split: ``splits_final.json`` in ``nnUNet_preprocessed``.

``--format nnunet`` writes ``splits_final.json`` (our train/val split as the
only fold) into the raw dataset folder, and ``nnUNetv2_plan_and_preprocess``
copies it into ``$nnUNet_preprocessed/DatasetNNN_Name/`` when that folder has
none. :func:`write_nnunet_splits` writes it there from the raw folder's
``splits.json`` at any time (after a re-split, or when nnU-Net already made
its own five-fold file), checking every id against the preprocessed cases.
No nnU-Net import is needed.

nnU-Net needs at least one training and one validation case in the fold (its
data loader fails with ``'a' cannot be empty`` otherwise): an export whose
split has none is refused (:func:`check_nnunet_fold`). After ``ramp-prep
split`` moved cases between ``imagesTr`` and ``imagesTs``, planning must run
again, and it stops (a bare ``AssertionError``) on the preprocessed
``splits_final.json`` of the old split: ``nnunet-splits --overwrite``
replaces that file with the new split first, then says to re-plan.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torchio_ramp.datasets import SPLITS_JSON

from .errors import PrepError
from .outputs import SPLITS_FINAL_JSON
from .outputs import read_json
from .outputs import write_json
from .splits import filling_fractions

_DATASET_NAME = re.compile(r'Dataset(\d{3})_[A-Za-z0-9-]+')


def check_nnunet_fold(split: Mapping[str, Any]) -> None:
    """Refuse a split whose train or val list is empty (nnU-Net fails on it).

    Raises:
        PrepError: Naming the empty list, the cohort size and the fix.

    Example:
        >>> check_nnunet_fold({'train': ['a', 'b', 'c'], 'val': [], 'test': ['d']})
        Traceback (most recent call last):
        ...
        ramp_prep.errors.PrepError: --format nnunet: the val split of these 4 subjects is empty, and nnU-Net's fold 0 needs at least one training and one validation case (it fails with "'a' cannot be empty"); pass --fractions with a val fraction of at least 1/4 (e.g. --fractions 0.5,0.25,0.25), or add subjects
    """  # noqa: E501
    sizes = {name: len(split.get(name) or []) for name in ('train', 'val', 'test')}
    empty = [name for name in ('train', 'val') if not sizes[name]]
    if not empty:
        return
    total = sum(sizes.values())
    fix = 'add subjects'
    fractions = filling_fractions(total)
    if fractions is not None:
        fix = (
            f'pass --fractions with a val fraction of at least 1/{total} (e.g.'
            f' --fractions {",".join(f"{f:g}" for f in fractions)}), or add subjects'
        )
    message = (
        f'--format nnunet: the {" and ".join(empty)} split of these {total}'
        " subjects is empty, and nnU-Net's fold 0 needs at least one training"
        ' and one validation case (it fails with "\'a\' cannot be empty");'
        f' {fix}'
    )
    raise PrepError(message)


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
    fold = read_fold(splits_path)
    check_nnunet_fold(fold)
    missing = sorted(set(fold['train'] + fold['val']) - preprocessed_cases(target))
    path = target / SPLITS_FINAL_JSON
    replan = (
        f'nnUNetv2_plan_and_preprocess -d {raw_folder.name[7:10]}'
        ' --verify_dataset_integrity'
    )
    try:
        current = read_json(path) if path.is_file() else None
    except PrepError as error:
        if not overwrite:
            raise PrepError(f'{error}; pass --overwrite to replace it') from error
        current = 'damaged'
    if current == [fold]:
        if missing:
            raise PrepError(
                f'{len(missing)} id(s) of {splits_path} were not preprocessed by'
                f' nnU-Net in {target} (e.g. {missing[0]}): run {replan}'
            )
        return path, fold, 'unchanged'
    if current is not None and not overwrite:
        stale = (
            f'; it is stale: {len(missing)} id(s) of the new split (e.g.'
            f' {missing[0]}) are not preprocessed, and planning stops on it (its'
            " split must equal the export's)"
            if missing
            else ''
        )
        raise PrepError(
            f'{path} holds another split ({_describe(current)}){stale}; pass'
            ' --overwrite to replace it (models trained on its folds no longer'
            ' match their fold number)'
        )
    write_json(path, [fold])
    if missing:
        return path, fold, f'written; now run {replan} for {len(missing)} new id(s)'
    return path, fold, 'written'


def _describe(current: Any) -> str:
    if isinstance(current, list):
        return f'{len(current)} fold(s)'
    return f'not a list of folds but a {type(current).__name__}'


def read_fold(splits_path: Path) -> dict[str, list[str]]:
    """Train and val ids of an export's ``splits.json``.

    Raises:
        PrepError: If the file is not JSON, or its ``train``/``val`` are not
            lists of ids (the message names the file and the key).

    Example:
        >>> read_fold(Path('Dataset777_X/splits.json'))  # doctest: +SKIP
        {'train': [...], 'val': [...]}
    """
    splits = read_json(splits_path)
    if not isinstance(splits, dict):
        raise PrepError(
            f'{splits_path} must hold a JSON object with "train" and "val", not'
            f' {type(splits).__name__}'
        )
    fold = {}
    for key in ('train', 'val'):
        ids = splits.get(key)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise PrepError(
                f'{splits_path}: "{key}" must be a list of subject ids, not'
                f' {ids!r:.80}; re-run `ramp-prep split` on the export'
            )
        fold[key] = list(ids)
    return fold
