"""Stress-test a saved model from Python exactly as ``ramp-stress run`` does.

:func:`stress_test_model` is the body of ``ramp-stress run``: it loads the
model (any format of :func:`~torchio_ramp.stress.predictors.load_model`),
reads its sidecar, checks its output, builds the sliding-window predictor and
the protocol, and records the same arguments in the results header. A results
folder made by the command can therefore be resumed from Python and the other
way round. (:func:`~torchio_ramp.stress.runner.run_stress_test` takes any
predictor callable; it knows nothing of a model file, so its header cannot
match the command's.)
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..arguments import check_device
from ..arguments import resolve_device
from ..datasets import read_dataset_info
from ..operators import SEVERITY_LEVELS
from .predictors import check_output
from .predictors import default_overlap
from .predictors import load_model
from .predictors import make_predictor
from .protocol import DEFAULT_PROTOCOL
from .protocol import StressProtocol
from .protocol import describe_protocol
from .runner import OutputContract
from .runner import Predictor
from .runner import RunOutcome
from .runner import dataset_classes
from .runner import expected_channels
from .runner import run_stress_test


def stress_test_model(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    weights: str | Path | None = None,
    split: str = 'test',
    families: Sequence[str] | None = None,
    levels: Sequence[float] | None = None,
    seed: int = 0,
    protocol: str = DEFAULT_PROTOCOL,
    name: str | None = None,
    hu_range: Sequence[float] | None = None,
    patch_size: Sequence[int] | None = None,
    overlap: Sequence[int] | None = None,
    batch_size: int = 2,
    device: str | None = None,
    amp: bool = False,
    aggregation_device: str = 'cpu',
    shard: tuple[int, int] | None = None,
    save_worst: int = 0,
    progress: bool = False,
    verify: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Stress-test a model file on a prepared dataset (``ramp-stress run``).

    Args:
        model: A model file (``torch.export``, ONNX, TorchScript) or
            ``package.module:factory``.
        data: Folder prepared by ``ramp-prep``.
        out: Results folder (resumed if it holds the same run).
        weights: ``state_dict`` file, with ``module:factory``.
        split: ``'test'``, ``'val'``, ``'train'`` or ``'all'``.
        families: Corruption families (default: the paper's pool).
        levels: Severity levels (default: the paper's five).
        seed: Base seed of the corrupted volumes.
        protocol: Severity protocol, ``'paired'`` or ``'independent'``.
        name: Model name (default: the file's stem, or the run folder's
            name for a training run's ``best.pt2`` / ``best.pt``).
        hu_range: HU window (default: the model's sidecar).
        patch_size: Sliding-window patch (default: the sidecar).
        overlap: Patch overlap in voxels (default: half the patch).
        batch_size: Patches per forward pass.
        device: Inference device (default ``'auto'``: see
            :func:`~torchio_ramp.arguments.resolve_device`).
        amp: bfloat16 autocast (CUDA only).
        aggregation_device: Device of the blended output volume (default the
            CPU: with a CUDA ``device`` only a batch of patches is on the GPU).
        shard: ``(index, count)`` or ``None``.
        save_worst: Failure pictures of the worst subjects per family.
        progress: Show progress bars.
        verify: How the split's files are checked against ``manifest.csv``
            (``'sha256'`` or ``'size'``, see :mod:`torchio_ramp.integrity`).
        announce: Called with a one-line description of the run.

    Returns:
        What :func:`~torchio_ramp.stress.runner.run_stress_test` did.

    Raises:
        FileNotFoundError: If the model, weights or dataset is missing.
        ValueError: If an argument, the sidecar or the model's output is
            wrong (e.g. its channels are not the dataset's classes), or
            ``out`` holds another run (the message names it).
        ~torchio_ramp.stress.runner.ModelError: If the model fails or
            returns non-finite logits during the run (naming the subject
            and setting).

    Example:
        >>> outcome = stress_test_model('runs/ramp/best.pt2', 'prepared', 'results/ramp')  # doctest: +SKIP
        >>> outcome.summary  # doctest: +SKIP
        PosixPath('results/ramp/summary.json')
    """  # noqa: E501
    device = str(resolve_device(device))
    aggregation_device = str(check_device(aggregation_device, 'aggregation_device'))
    info = read_dataset_info(data)
    channels = expected_channels(dataset_classes(info))
    loaded = load_model(model, weights, device=device)
    config = loaded.config
    where = f' or add it to the sidecar {loaded.path.with_suffix(".json")}'
    if hu_range is None:
        if config.hu_range is None:
            raise ValueError(
                f'the HU window of {loaded.path} is unknown: pass --hu-range LOW'
                f' HIGH (the one used in training){where}'
            )
        hu_range = config.hu_range
    if patch_size is None:
        if config.patch_size is None:
            raise ValueError(
                f'the patch size of {loaded.path} is unknown: pass --patch-size'
                f' N{where}'
            )
        patch_size = config.patch_size
    patch_size = tuple(patch_size)
    overlap = tuple(overlap or default_overlap(patch_size))
    num_classes = check_output(
        loaded.module,
        patch_size,
        num_classes=config.num_classes,
        device=device,
        name=str(loaded.path),
    )
    if num_classes != channels:
        raise ValueError(
            f'{loaded.path} outputs {num_classes} channels but {data} has'
            f' {channels} classes (background included, from'
            f' {Path(data) / "dataset.json"}); this model was not trained for'
            ' this dataset'
        )
    stress_protocol = StressProtocol(
        families=families,
        levels=levels or SEVERITY_LEVELS,
        seed=seed,
        hu_range=tuple(hu_range),
        protocol=protocol,
    )
    predictor = make_predictor(
        OutputContract(loaded.module, channels),
        patch_size,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        amp=amp,
        aggregation_device=aggregation_device,
    )
    name = name or loaded.name
    model_arguments = {
        **loaded.fingerprint(),
        'patch_size': list(patch_size),
        'overlap': list(overlap),
        'amp': bool(amp and torch.device(device).type == 'cuda'),
        'num_classes': num_classes,
        'strategy': config.strategy,
    }
    session = {
        'model_path': str(loaded.path.resolve()),
        'sidecar': config.source,
        'device': str(device),
        'aggregation_device': aggregation_device,
        'batch_size': batch_size,
    }
    return _announce_and_run(
        predictor,
        data,
        out,
        stress_protocol,
        name=name,
        details=f', patch {patch_size}, overlap {overlap}, device {device}',
        announce=announce,
        split=split,
        model_arguments=model_arguments,
        session=session,
        shard=shard,
        progress=progress,
        save_worst=save_worst,
        verify=verify,
    )


def stress_test_nnunet(
    model_folder: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    fold: str = '0',
    checkpoint: str = 'checkpoint_final.pth',
    split: str = 'test',
    families: Sequence[str] | None = None,
    levels: Sequence[float] | None = None,
    seed: int = 0,
    protocol: str = DEFAULT_PROTOCOL,
    name: str | None = None,
    hu_range: Sequence[float] | None = None,
    device: str | None = None,
    shard: tuple[int, int] | None = None,
    save_worst: int = 0,
    progress: bool = False,
    verify: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Stress-test a trained nnU-Net v2 model (``ramp-stress run --nnunet``).

    nnU-Net's own predictor (its preprocessing, resampling, sliding window
    and mirroring, as trained) segments each volume; the volumes are
    corrupted exactly as for :func:`stress_test_model`, so the results of
    both are comparable in one report. Needs the ``nnunet`` extra.

    Args:
        model_folder: ``$nnUNet_results/DatasetNNN_Name/TRAINER__PLANS__CONFIG``.
        data: Folder prepared by ``ramp-prep``.
        out: Results folder (resumed if it holds the same run).
        fold: The fold (``'0'`` to ``'4'`` or ``'all'``).
        checkpoint: Checkpoint file of the fold.
        split: ``'test'``, ``'val'``, ``'train'`` or ``'all'``.
        families: Corruption families (default: the paper's pool).
        levels: Severity levels (default: the paper's five).
        seed: Base seed of the corrupted volumes.
        protocol: Severity protocol, ``'paired'`` or ``'independent'``.
        name: Model name (default: from the model folder).
        hu_range: HU window of the corruptions (default: the nnU-Net
            trainers' window, :data:`torchio_ramp.nnunet.domain.DEFAULT_WINDOW`).
        device: Inference device (default ``'auto'``).
        shard: ``(index, count)`` or ``None``.
        save_worst: Failure pictures of the worst subjects per family.
        progress: Show progress bars.
        verify: How the split's files are checked against ``manifest.csv``.
        announce: Called with a one-line description of the run.

    Returns:
        What :func:`~torchio_ramp.stress.runner.run_stress_test` did.

    Raises:
        FileNotFoundError: If the model folder, fold, checkpoint or dataset
            is missing.
        ImportError: If nnunetv2 is not installed (the message names the
            extra).

    Example:
        >>> folder = 'nnUNet_results/Dataset777_X/nnUNetTrainerRAMP__nnUNetPlans__3d_fullres'
        >>> stress_test_nnunet(folder, 'prepared', 'results/ramp')  # doctest: +SKIP
    """  # noqa: E501
    from ..nnunet.domain import DEFAULT_WINDOW
    from ..nnunet.predictor import NnunetPredictor

    device = str(resolve_device(device))
    read_dataset_info(data)
    window = tuple(hu_range or DEFAULT_WINDOW)
    predictor = NnunetPredictor(
        model_folder, fold, checkpoint, device=device, window=window
    )
    stress_protocol = StressProtocol(
        families=families,
        levels=levels or SEVERITY_LEVELS,
        seed=seed,
        hu_range=window,
        protocol=protocol,
    )
    return _announce_and_run(
        predictor,
        data,
        out,
        stress_protocol,
        name=name or predictor.name,
        model=f' (nnU-Net, fold {fold})',
        details=f', device {device}',
        announce=announce,
        split=split,
        model_arguments=predictor.fingerprint(),
        session={
            'model_path': str(predictor.checkpoint_path.resolve()),
            'device': str(device),
        },
        shard=shard,
        progress=progress,
        save_worst=save_worst,
        verify=verify,
    )


def _announce_and_run(
    predictor: Predictor,
    data: str | Path,
    out: str | Path,
    protocol: StressProtocol,
    *,
    name: str,
    details: str,
    announce: Callable[[str], None] | None,
    model: str = '',
    **options: Any,
) -> RunOutcome:
    """Say what is about to run (when ``announce`` is given), then run it.

    ``model`` follows the name and ``details`` the HU window in the line;
    ``options`` go to :func:`~torchio_ramp.stress.runner.run_stress_test`.
    """
    if announce is not None:
        shard = options.get('shard')
        shard_text = '' if shard is None else f' shard {shard[0]}/{shard[1]}'
        announce(
            f'ramp-stress: {name}{model} on {data} ({options["split"]}){shard_text}:'
            f' {len(protocol.settings) - 1} corrupted settings + clean'
            f' ({describe_protocol(protocol.protocol)} severity protocol),'
            f' HU window {protocol.hu_range}{details}'
        )
    return run_stress_test(
        predictor, data, out, protocol=protocol, name=name, **options
    )
