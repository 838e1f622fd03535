"""Run the stress test: every subject under every setting, results appended.

:func:`evaluate_subject` scores one subject under all settings of a
:class:`~torchio_ramp.stress.protocol.StressProtocol` (or of a
:class:`~torchio_ramp.stress.spec.RunSpec`) and returns its long-format rows;
:func:`execute` does that for the subjects of a prepared dataset split (or of
one shard of it) as a run specification says, appending each finished subject
to the results store and skipping those already there.
:func:`run_stress_test` is the same for any predictor callable, from keywords.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchio as tio
from tqdm.auto import tqdm

from .. import __version__
from ..datasets import data_fingerprint
from ..datasets import load_split
from ..datasets import read_dataset_info
from ..inference import ModelOutputError
from ..inference import Predictor
from ..labels import CLASS_NAMES
from ..labels import SYNTHETIC_PREFIX
from ..metrics import score_volume
from .protocol import Setting
from .protocol import StressProtocol
from .results import StressResults
from .results import summarize
from .spec import PREDICTOR
from .spec import RunSpec
from .spec import api
from .store import SUMMARY_JSON
from .store import ResultsError
from .store import ResultsWriter
from .store import complete_shards
from .store import header_differences
from .store import header_path
from .store import load_results
from .store import make_header
from .store import merge_shards
from .store import read_header
from .store import results_stem
from .store import scan_results
from .store import shard_subjects
from .store import write_json
from .worst import WORST_DIR
from .worst import SubjectPictures
from .worst import WorstCases


class ModelError(RuntimeError):
    """The model failed or misbehaved on one subject under one setting.

    The message names the subject, the setting and the model's own message,
    so that nothing is scored from a broken model.
    """


def expected_channels(class_names: Mapping[int, str]) -> int:
    """Output channels a model needs for these label values (background 0).

    Example:
        >>> expected_channels({1: 'liver', 2: 'spleen', 5: 'colon'})
        6
    """
    return max([0, *map(int, class_names)]) + 1


def _predict(
    predictor: Predictor,
    volume: torch.Tensor,
    subject_id: str,
    setting: Setting,
) -> Any:
    where = f'subject {subject_id!r}, setting {setting.name}'
    try:
        return predictor(volume)
    except ModelOutputError as error:
        raise ModelError(f'{where}: {error}') from error
    except Exception as error:  # the model's code: say where it failed
        text = str(error).strip().splitlines()
        detail = f'{type(error).__name__}: {text[0] if text else ""}'.rstrip(': ')
        raise ModelError(f'the model failed on {where}: {detail}') from error


def _check_prediction(
    prediction: Any,
    label: torch.Tensor,
    subject_id: str,
    setting: Setting,
    num_labels: int | None = None,
) -> torch.Tensor:
    prediction = torch.as_tensor(prediction)
    where = f'subject {subject_id!r}, setting {setting.name}'
    if prediction.is_floating_point() or prediction.is_complex():
        message = (
            f'the predictor returned a {prediction.dtype} tensor for {where}; it'
            ' must return an integer label map (e.g. logits.argmax(0))'
        )
        raise TypeError(message)
    if prediction.shape != label.shape:
        message = (
            f'prediction shape {tuple(prediction.shape)} differs from the label'
            f' shape {tuple(label.shape)} for {where}'
        )
        raise ValueError(message)
    if num_labels is not None and prediction.numel():
        low, high = (int(v) for v in torch.aminmax(prediction))
        if low < 0 or high >= num_labels:
            message = (
                f'the predictor returned labels in [{low}, {high}] for {where};'
                f' the dataset has labels 0..{num_labels - 1}'
            )
            raise ModelError(message)
    return prediction


def evaluate_subject(
    predictor: Predictor,
    subject: tio.Subject,
    protocol: StressProtocol | None = None,
    *,
    spec: RunSpec | None = None,
    class_names: Mapping[int, str] = CLASS_NAMES,
    annotated: Sequence[int] | None = None,
    model: str | None = None,
    image_name: str = 'ct',
    label_name: str = 'label',
    progress: bool | None = None,
    observe: Callable[[Setting, torch.Tensor, torch.Tensor], None] | None = None,
) -> list[dict[str, Any]]:
    """Score one subject on the clean volume and every corrupted setting.

    The CT (HU) is normalised with the protocol's window, then each setting's
    volume is made, predicted and scored one at a time (every per-volume
    metric of :func:`torchio_ramp.metrics.score_volume`).

    Args:
        predictor: ``image (C, D, H, W) -> label map (D, H, W)``.
        subject: With a CT in HU (``image_name``), a label map
            (``label_name``), ``subject_id`` and optionally ``dataset``.
        protocol: Settings and how volumes are made (or give ``spec``).
        spec: The run: its protocol, model name and progress option.
        class_names: Classes to score and their names.
        annotated: Classes the dataset annotates (default: all).
        model: Model name written in each row (default: the spec's name,
            else ``'model'``).
        image_name: Key of the CT in ``subject``.
        label_name: Key of the label map in ``subject``.
        progress: Show a progress bar over the settings (default: the
            spec's option, else no).
        observe: Called with ``(setting, volume, prediction)`` for every
            setting (e.g. to keep failure pictures).

    Returns:
        One row (a dict with the keys of
        :data:`~torchio_ramp.stress.store.COLUMNS`) per setting x class.

    Raises:
        ValueError: If a prediction or the label does not have the CT's
            spatial shape (naming the subject and setting), or not exactly
            one of ``protocol`` and ``spec`` is given.
        TypeError: If the predictor does not return integer labels.
        ModelError: If the predictor raises (e.g.
            :class:`~torchio_ramp.inference.OutputContract` finds NaN logits)
            or returns labels outside the dataset's; the message names the
            subject, the setting and the model's message.

    Example:
        >>> from torchio_ramp.phantoms import phantom_subject
        >>> subject = phantom_subject((16, 16, 16), seed=0)
        >>> label = subject.label.data[0]
        >>> protocol = StressProtocol(families=['blur'], levels=[0.1])
        >>> rows = evaluate_subject(lambda image: label, subject, protocol)
        >>> len(rows), {row['dice'] for row in rows}
        (10, {1.0})
    """
    if (protocol is None) == (spec is None):
        raise ValueError('pass either protocol or spec')
    if spec is not None:
        protocol = spec.stress_protocol
        model = spec.name if model is None else model
        progress = spec.progress if progress is None else progress
    assert protocol is not None
    model = 'model' if model is None else model
    subject_id = str(subject['subject_id'])
    dataset = str(subject.get('dataset', ''))
    classes = [int(c) for c in class_names]
    annotated_set = set(classes if annotated is None else map(int, annotated))
    label_image = subject[label_name]
    label = label_image.data[0]
    image = protocol.normalize(subject, image_name)
    # Predictors that need the subject itself (nnU-Net: its HU and spacing)
    bind = getattr(predictor, 'for_subject', None)
    if bind is not None:
        predictor = bind(subject, image_name)
    if tuple(image.shape[1:]) != tuple(label.shape):
        message = (
            f'subject {subject_id!r}: the label has shape {tuple(label.shape)} but'
            f' the CT has {tuple(image.shape[1:])}'
        )
        raise ValueError(message)
    rows: list[dict[str, Any]] = []
    bar = tqdm(
        total=len(protocol.settings),
        desc=subject_id,
        unit='setting',
        leave=False,
        disable=not progress,
    )
    # Only the volume being predicted is alive: the loop variable is dropped
    # before the generator makes the next one.
    num_labels = expected_channels(class_names)
    ct = subject[image_name]
    volumes = protocol.volumes(
        image,
        subject_id,
        hu=ct.data,
        spacing=ct.spacing,
        affine=ct.affine,
        labels=label_image.data,
    )
    for setting, volume in volumes:
        output = _predict(predictor, volume, subject_id, setting)
        prediction = _check_prediction(output, label, subject_id, setting, num_labels)
        if observe is not None:
            observe(setting, volume, prediction)
        del volume
        bar.update()
        scores = score_volume(prediction, label, classes, spacing=label_image.spacing)
        for label_value in classes:
            rows.append(
                {
                    'model': model,
                    'dataset': dataset,
                    'subject_id': subject_id,
                    'family': setting.family,
                    'level': float(setting.level),
                    'class_id': label_value,
                    'class_name': class_names[label_value],
                    'annotated': label_value in annotated_set,
                    **scores[label_value],
                }
            )
    bar.close()
    return rows


def results_from_rows(
    rows: Sequence[Mapping[str, Any]],
    protocol: StressProtocol,
    *,
    class_names: Mapping[int, str] = CLASS_NAMES,
    annotated: Sequence[int] | None = None,
    synthetic: bool = False,
) -> StressResults:
    """In-memory :class:`~torchio_ramp.stress.results.StressResults` of rows.

    For evaluations kept in memory (notebooks, tests) rather than on disk.

    Example:
        >>> from torchio_ramp.phantoms import phantom_subject
        >>> subject = phantom_subject((16, 16, 16), seed=0)
        >>> protocol = StressProtocol(families=['blur'], levels=[0.1])
        >>> rows = evaluate_subject(lambda x: subject.label.data[0], subject, protocol)
        >>> results_from_rows(rows, protocol).subject_dice().tolist()
        [[1.0, 1.0]]
    """
    if not rows:
        raise ValueError('no rows')
    return StressResults.from_rows(
        rows,
        protocol.settings,
        list(class_names),
        list(class_names) if annotated is None else annotated,
        model=str(rows[0]['model']),
        dataset=str(rows[0]['dataset']),
        synthetic=synthetic,
        class_names=dict(class_names),
    )


def complete_single_run(out: Path, header: Mapping[str, Any]) -> Path | None:
    """``out/results.csv`` if it is a complete run made with ``header``'s
    binding arguments (so a sharded re-run has nothing to do), else ``None``.

    Example:
        >>> complete_single_run(Path('results'), header)  # doctest: +SKIP
        PosixPath('results/results.csv')
    """
    path = Path(out) / f'{results_stem(None)}.csv'
    if not path.is_file():
        return None
    try:
        old = read_header(header_path(path))
    except (FileNotFoundError, ResultsError):
        return None
    if old.get('shard') is not None or header_differences(old, header):
        return None
    if sorted(old.get('subjects', [])) != sorted(header['subjects']):
        return None
    scanned = scan_results(path, old)
    if scanned.damaged_tail or sorted(scanned.subjects) != sorted(header['subjects']):
        return None
    return path


def dataset_classes(info: Mapping[str, Any]) -> dict[int, str]:
    """Foreground classes of a prepared dataset (``dataset.json``).

    Example:
        >>> dataset_classes({'class_names': {'0': 'background', '1': 'liver'}})
        {1: 'liver'}
    """
    names = info.get('class_names') or {}
    classes = {int(k): str(v) for k, v in names.items() if int(k) != 0}
    return dict(sorted(classes.items())) or dict(CLASS_NAMES)


@dataclass
class RunOutcome:
    """What :func:`run_stress_test` did.

    Attributes:
        results: The results CSV of this run (or shard).
        evaluated: Subjects evaluated now.
        skipped: Subjects already complete in the file (resumed run).
        subjects: All subjects of this run (or shard).
        truncated_bytes: Bytes of a subject cut short by an earlier crash
            that were removed before resuming.
        summary: ``summary.json``, written when the run is complete and not
            sharded, or when the last shard finished and merged them all.
        merged: The merged CSV, if this shard completed the set.
        merge_error: Why the complete set of shards could not be merged
            into ``out`` (e.g. it holds another run's ``results.csv``).

    Example:
        >>> outcome = run_stress_test(predict, 'prepared', 'results')  # doctest: +SKIP
        >>> outcome.results, len(outcome.skipped)  # doctest: +SKIP
        (PosixPath('results/results.csv'), 0)
    """

    results: Path
    evaluated: list[str]
    skipped: list[str]
    subjects: list[str]
    truncated_bytes: int = 0
    summary: Path | None = None
    merged: Path | None = None
    merge_error: str | None = None


def write_summary(results: StressResults, folder: Path, **kwargs: Any) -> Path:
    """Write ``summary.json`` (see :func:`~torchio_ramp.stress.results.summarize`).

    Example:
        >>> write_summary(load_results('results'), 'results')  # doctest: +SKIP
        PosixPath('results/summary.json')
    """
    path = Path(folder) / SUMMARY_JSON
    write_json(path, summarize(results, **kwargs))
    return path


@api(PREDICTOR, ['data', 'out'])
def run_stress_test(
    predictor: Predictor,
    data: str | Path,
    out: str | Path,
    *,
    protocol: StressProtocol | None = None,
    model_arguments: Mapping[str, Any] | None = None,
    session: Mapping[str, Any] | None = None,
    **options: Any,
) -> RunOutcome:
    """Stress-test a predictor on a prepared dataset split.

    Subjects are the split's ids, sorted, and for a shard ``(i, n)`` every
    ``n``-th from the ``i``-th. Each finished subject is appended to
    ``out/results.csv`` (``results.shard-i-of-n.csv``); a re-run with the
    same arguments continues where an interrupted one stopped.

    Args:
        predictor: ``image (C, D, H, W) -> label map (D, H, W)``.
        data: Folder prepared by ``ramp-prep``.
        out: Results folder.
        {options}
        protocol: Families, levels, seed and window (default: the paper's
            families and levels, seed 0, window (-200, 300) HU).
        model_arguments: Everything about the model that changes the
            numbers (fingerprint, patch size, overlap, AMP); compared on
            resume.
        session: Facts about this process recorded in the header (device,
            batch size); not compared.

    The data's identity (``data_sha256``) is computed from the SHA-256 of
    the files on disk whatever ``verify`` says, so results made from other
    bytes are never resumed. ``name`` defaults to ``'model'``; ``save_worst``
    keeps the failure pictures in ``out/worst`` (see
    :mod:`~torchio_ramp.stress.worst`).

    Raises:
        FileNotFoundError: If ``data`` is not a prepared dataset.
        ~torchio_ramp.integrity.IntegrityError: If a file is truncated or
            differs from the manifest.
        ValueError: If the split is empty or unknown.
        ~torchio_ramp.stress.store.ResultsError: If ``out`` holds results
            made with other arguments.

    Example:
        >>> outcome = run_stress_test(predict, 'prepared/totalseg', 'results')  # doctest: +SKIP
        >>> len(outcome.evaluated)  # doctest: +SKIP
        185
    """  # noqa: E501
    protocol = StressProtocol() if protocol is None else protocol
    spec = RunSpec.of(PREDICTOR, 'run_stress_test', data=data, out=out, **options)
    spec = spec.replace(
        families=protocol.families,
        levels=protocol.levels,
        seed=protocol.seed,
        hu_range=protocol.hu_range,
        protocol=protocol.protocol,
    )
    return execute(predictor, spec, model_arguments=model_arguments, session=session)


def execute(
    predictor: Predictor,
    spec: RunSpec,
    *,
    model_arguments: Mapping[str, Any] | None = None,
    session: Mapping[str, Any] | None = None,
) -> RunOutcome:
    """Run ``spec`` with ``predictor`` (the body of :func:`run_stress_test`).

    The results header records the spec's options (those declared with a
    ``header`` part), ``model_arguments`` (what identifies the model: compared
    on resume), the protocol and the data's identity; ``session`` is recorded
    with this process's facts, not compared.

    Example:
        >>> spec = RunSpec(data='prepared', out='results', name='m')  # doctest: +SKIP
        >>> execute(predict, spec).results  # doctest: +SKIP
        PosixPath('results/results.csv')
    """
    if spec.name is None:
        spec = spec.replace(name='model')
    protocol = spec.stress_protocol
    name = str(spec.name)
    shard = spec.shard
    root = Path(spec.data)
    out = Path(spec.out)
    info = read_dataset_info(root)
    dataset = load_split(root, spec.split, verify=spec.verify)
    ids = [str(s['subject_id']) for s in dataset.dry_iter()]
    index_of = {subject_id: i for i, subject_id in enumerate(ids)}
    mine = shard_subjects(ids, shard)
    class_names = dataset_classes(info)
    annotated = [int(c) for c in info['annotated_classes']]
    dataset_name = str(info['dataset'])
    synthetic = bool(info.get('synthetic')) or dataset_name.startswith(SYNTHETIC_PREFIX)
    arguments = {
        **spec.header_values('arguments'),
        **(model_arguments or {}),
        **protocol.to_dict(),
        'data_sha256': data_fingerprint(root, ids),
    }
    header = make_header(
        model=name,
        dataset=dataset_name,
        synthetic=synthetic,
        arguments=arguments,
        settings=protocol.settings,
        class_names=class_names,
        annotated=annotated,
        subjects=mine,
        shard=shard,
        all_subjects=ids,
    )
    facts = {
        'data': str(root.resolve()),
        'tool_version': __version__,
        'torch': torch.__version__,
        'torchio': tio.__version__,
        'host': platform.node(),
        **(session or {}),
        **spec.header_values('session'),
    }
    if shard is not None:
        single = {**header, 'shard': None, 'subjects': sorted(ids)}
        done = complete_single_run(out, single)
        if done is not None:  # e.g. torchrun over a finished one-process run
            summary = out / SUMMARY_JSON
            return RunOutcome(
                results=done,
                evaluated=[],
                skipped=list(mine),
                subjects=mine,
                summary=summary if summary.is_file() else None,
            )
    evaluated = []
    worst = None
    if spec.save_worst:
        worst = WorstCases(out / WORST_DIR, spec.save_worst, mine)
    with ResultsWriter(out, header, session=facts) as writer:
        skipped = [s for s in mine if s in writer.completed]
        bar = tqdm(
            writer.remaining,
            desc=f'ramp-stress {name}',
            unit='subject',
            disable=not spec.progress,
        )
        for subject_id in bar:
            subject = dataset[index_of[subject_id]]
            pictures = None
            if worst is not None:
                pictures = SubjectPictures(subject['label'].data[0], protocol.families)
            rows = evaluate_subject(
                predictor,
                subject,
                spec=spec,
                class_names=class_names,
                annotated=annotated,
                observe=None if pictures is None else pictures.observe,
            )
            writer.append(subject_id, rows)
            if worst is not None:
                worst.offer(subject_id, rows, pictures)
            evaluated.append(subject_id)
    outcome = RunOutcome(
        results=writer.csv_path,
        evaluated=evaluated,
        skipped=skipped,
        subjects=mine,
        truncated_bytes=writer.truncated_bytes,
    )
    if shard is None:
        outcome.summary = write_summary(load_results(writer.csv_path), out)
    elif complete_shards(out) is not None:
        # The last shard to finish merges; concurrent merges write the same bytes.
        try:
            outcome.merged = merge_shards([out], out)
        except ResultsError as error:
            outcome.merge_error = str(error)
        else:
            outcome.summary = write_summary(load_results(outcome.merged), out)
    return outcome
