"""Stress-test a saved model from Python exactly as ``ramp-stress run`` does.

:func:`stress_test_model` and :func:`stress_test_nnunet` build the run's
:class:`~torchio_ramp.stress.spec.RunSpec` from their keywords (the same
options, names and defaults as the command's) and :func:`run` runs it: it
loads the model (any format of :func:`~torchio_ramp.model_files.load_model`),
reads its sidecar, checks its output, builds the sliding-window predictor and
the protocol, and records the same arguments in the results header. A results
folder made by the command can therefore be resumed from Python and the other
way round. (:func:`~torchio_ramp.stress.runner.run_stress_test` takes any
predictor callable; it knows nothing of a model file, so its header cannot
match the command's.)
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..arguments import check_device
from ..arguments import resolve_device
from ..datasets import read_dataset_info
from ..inference import OutputContract
from ..inference import Predictor
from ..inference import check_output
from ..inference import default_overlap
from ..inference import make_predictor
from ..model_files import load_model
from .protocol import describe_protocol
from .runner import RunOutcome
from .runner import dataset_classes
from .runner import execute
from .runner import expected_channels
from .spec import MODEL
from .spec import NNUNET
from .spec import RunSpec
from .spec import api

Announce = Callable[[str], None]


@api(MODEL, ['model', 'data', 'out'])
def stress_test_model(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    announce: Announce | None = None,
    **options: Any,
) -> RunOutcome:
    """Stress-test a model file on a prepared dataset (``ramp-stress run``).

    Args:
        model: A model file (``torch.export``, ONNX, TorchScript) or
            ``package.module:factory``.
        data: Folder prepared by ``ramp-prep``.
        out: Results folder (resumed if it holds the same run).
        {options}
        announce: Called with a one-line description of the run.

    The HU window and the patch size default to the model's sidecar, the
    overlap to half the patch, the device to ``'auto'`` (see
    :func:`~torchio_ramp.arguments.resolve_device`), the name to the file's
    stem (or the run folder's name for a training run's ``best.pt2`` /
    ``best.pt``); ``shard`` is ``(index, count)`` or ``None``.

    Returns:
        What :func:`~torchio_ramp.stress.runner.execute` did.

    Raises:
        FileNotFoundError: If the model, weights or dataset is missing.
        ValueError: If an argument, the sidecar or the model's output is
            wrong (e.g. its channels are not the dataset's classes), or
            ``out`` holds another run (the message names it).
        TypeError: If a keyword is not an option of this function.
        ~torchio_ramp.stress.runner.ModelError: If the model fails or
            returns non-finite logits during the run (naming the subject
            and setting).

    Example:
        >>> outcome = stress_test_model('runs/ramp/best.pt2', 'prepared', 'results/ramp')  # doctest: +SKIP
        >>> outcome.summary  # doctest: +SKIP
        PosixPath('results/ramp/summary.json')
    """  # noqa: E501
    values = {'model': model, 'data': data, 'out': out, **options}
    return run(RunSpec.of(MODEL, 'stress_test_model', **values), announce=announce)


@api(NNUNET, ['nnunet', 'data', 'out'])
def stress_test_nnunet(
    model_folder: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    announce: Announce | None = None,
    **options: Any,
) -> RunOutcome:
    """Stress-test a trained nnU-Net v2 model (``ramp-stress run --nnunet``).

    nnU-Net's own predictor (its preprocessing, resampling and sliding
    window, as trained; test-time mirroring only with ``mirroring=True``)
    segments each volume; the volumes are
    corrupted exactly as for :func:`stress_test_model`, so the results of
    both are comparable in one report. Needs the ``nnunet`` extra.

    Args:
        model_folder: ``$nnUNet_results/DatasetNNN_Name/TRAINER__PLANS__CONFIG``.
        data: Folder prepared by ``ramp-prep``.
        out: Results folder (resumed if it holds the same run).
        {options}
        announce: Called with a one-line description of the run.

    The HU window of the corruptions defaults to the nnU-Net trainers'
    window (:data:`torchio_ramp.nnunet.domain.DEFAULT_WINDOW`), the name to
    the model folder's.

    Returns:
        What :func:`~torchio_ramp.stress.runner.execute` did.

    Raises:
        FileNotFoundError: If the model folder, fold, checkpoint or dataset
            is missing.
        ImportError: If nnunetv2 is not installed (the message names the
            extra).
        TypeError: If a keyword is not an option of this function.

    Example:
        >>> folder = 'nnUNet_results/Dataset777_X/nnUNetTrainerRAMP__nnUNetPlans__3d_fullres'
        >>> stress_test_nnunet(folder, 'prepared', 'results/ramp')  # doctest: +SKIP
    """  # noqa: E501
    values = {'nnunet': model_folder, 'data': data, 'out': out, **options}
    return run(RunSpec.of(NNUNET, 'stress_test_nnunet', **values), announce=announce)


def run(spec: RunSpec, announce: Announce | None = None) -> RunOutcome:
    """Run a spec that names a model file or an nnU-Net model folder.

    Raises:
        ValueError: If it names neither.

    Example:
        >>> spec = RunSpec(model='m.pt2', data='prepared', out='results')
        >>> run(spec).results  # doctest: +SKIP
        PosixPath('results/results.csv')
    """
    if spec.kind == NNUNET:
        return _run_nnunet(spec, announce)
    if spec.kind == MODEL:
        return _run_model(spec, announce)
    raise ValueError('the run names no model: give model or nnunet')


def _run_model(spec: RunSpec, announce: Announce | None) -> RunOutcome:
    device = str(resolve_device(spec.device))
    aggregation_device = str(
        check_device(spec.aggregation_device, 'aggregation_device')
    )
    info = read_dataset_info(spec.data)
    channels = expected_channels(dataset_classes(info))
    loaded = load_model(spec.model, spec.weights, device=device)
    config = loaded.config
    where = f' or add it to the sidecar {loaded.path.with_suffix(".json")}'
    hu_range = spec.hu_range
    if hu_range is None:
        if config.hu_range is None:
            raise ValueError(
                f'the HU window of {loaded.path} is unknown: pass --hu-range LOW'
                f' HIGH (the one used in training){where}'
            )
        hu_range = config.hu_range
    patch_size = spec.patch_size
    if patch_size is None:
        if config.patch_size is None:
            raise ValueError(
                f'the patch size of {loaded.path} is unknown: pass --patch-size'
                f' N{where}'
            )
        patch_size = config.patch_size
    patch_size = tuple(patch_size)
    overlap = tuple(spec.overlap or default_overlap(patch_size))
    num_classes = check_output(
        loaded.module,
        patch_size,
        num_classes=config.num_classes,
        device=device,
        name=str(loaded.path),
    )
    if num_classes != channels:
        raise ValueError(
            f'{loaded.path} outputs {num_classes} channels but {spec.data} has'
            f' {channels} classes (background included, from'
            f' {Path(spec.data) / "dataset.json"}); this model was not trained for'
            ' this dataset'
        )
    spec = spec.replace(
        name=spec.name or loaded.name,
        hu_range=tuple(hu_range),
        patch_size=patch_size,
        overlap=overlap,
        device=device,
        aggregation_device=aggregation_device,
        amp=bool(spec.amp and torch.device(device).type == 'cuda'),
    )
    spec.stress_protocol  # noqa: B018 (checks families, levels, seed, protocol)
    predictor = make_predictor(
        OutputContract(loaded.module, channels),
        patch_size,
        overlap=overlap,
        batch_size=spec.batch_size,
        device=device,
        amp=spec.amp,
        aggregation_device=aggregation_device,
    )
    return _announce_and_run(
        predictor,
        spec,
        details=f', patch {patch_size}, overlap {overlap}, device {device}',
        announce=announce,
        model_arguments={
            **loaded.fingerprint(),
            'num_classes': num_classes,
            'strategy': config.strategy,
        },
        session={
            'model_path': str(loaded.path.resolve()),
            'sidecar': config.source,
        },
    )


def _run_nnunet(spec: RunSpec, announce: Announce | None) -> RunOutcome:
    from ..nnunet.domain import DEFAULT_WINDOW
    from ..nnunet.predictor import NnunetPredictor

    device = str(resolve_device(spec.device))
    read_dataset_info(spec.data)
    window = tuple(spec.hu_range or DEFAULT_WINDOW)
    predictor = NnunetPredictor(
        spec.nnunet,
        spec.fold,
        spec.checkpoint,
        device=device,
        window=window,
        use_mirroring=spec.mirroring,
    )
    spec = spec.replace(
        name=spec.name or predictor.name, hu_range=window, device=device
    )
    spec.stress_protocol  # noqa: B018 (checks families, levels, seed, protocol)
    return _announce_and_run(
        predictor,
        spec,
        model=f' (nnU-Net, fold {spec.fold})',
        details=f', device {device}',
        announce=announce,
        model_arguments=predictor.fingerprint(),
        session={'model_path': str(predictor.checkpoint_path.resolve())},
    )


def _announce_and_run(
    predictor: Predictor,
    spec: RunSpec,
    *,
    details: str,
    announce: Announce | None,
    model_arguments: Mapping[str, Any],
    session: Mapping[str, Any],
    model: str = '',
) -> RunOutcome:
    """Say what is about to run (when ``announce`` is given), then run it.

    ``model`` follows the name and ``details`` the HU window in the line.
    """
    if announce is not None:
        protocol = spec.stress_protocol
        shard = spec.shard
        shard_text = '' if shard is None else f' shard {shard[0]}/{shard[1]}'
        announce(
            f'ramp-stress: {spec.name}{model} on {spec.data}'
            f' ({spec.split}){shard_text}:'
            f' {len(protocol.settings) - 1} corrupted settings + clean'
            f' ({describe_protocol(protocol.protocol)} severity protocol),'
            f' HU window {protocol.hu_range}{details}'
        )
    return execute(predictor, spec, model_arguments=model_arguments, session=session)
