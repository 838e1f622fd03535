"""Convert subjects to the five-class head, in parallel and resumably.

One subject is converted by :func:`convert_subject`, which runs in a worker
process and holds one subject at a time: the CT is streamed (copied and its
gzip stream checked in 1 MiB chunks, never decoded into memory, unless its
header needs repair), the masks are read one by one and merged into a
``uint8`` label map. Outputs are written to temporary files and renamed into
place only when the whole subject succeeded.

:func:`prepare` runs a whole dataset: discovery, the split, skipping finished
subjects, the process pool with one progress bar, and the final files.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from torchio_ramp.labels import CLASS_NAMES
from torchio_ramp.labels import class_counts
from torchio_ramp.labels import merge_totalseg_masks
from torchio_ramp.labels import remap_abdomenct1k

from . import images as imio
from .errors import FatalPrepError
from .errors import PrepError
from .errors import describe_os_error
from .errors import require_regular_file
from .images import Geometry
from .nnunet import check_nnunet_fold
from .outputs import DEFAULT_NNUNET_NAMES
from .outputs import Layout
from .outputs import finalize
from .outputs import load_records
from .outputs import make_layout
from .outputs import output_lock
from .outputs import read_json
from .outputs import record_status
from .outputs import relocate
from .outputs import source_fingerprint
from .outputs import stat_entry
from .outputs import write_json
from .outputs import write_record
from .sources import DISCOVER
from .sources import Cohort
from .sources import SubjectSource
from .splits import DEFAULT_FRACTIONS
from .splits import DEFAULT_SEED
from .splits import compute_split
from .splits import keep_together
from .splits import release_split
from .splits import split_of

MAX_TASKS_PER_WORKER = 25


@dataclass(frozen=True)
class Options:
    """Conversion options that change the outputs (part of each record)."""

    link: bool = False
    resample_masks: bool = False
    repair_nonfinite: bool = False

    def key(self) -> dict[str, Any]:
        """Options as stored in records (``repair_nonfinite`` only when set,
        so folders prepared before it existed stay current)."""
        key: dict[str, Any] = {'link': self.link, 'resample_masks': self.resample_masks}
        if self.repair_nonfinite:
            key['repair_nonfinite'] = True
        return key


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to convert one subject (picklable)."""

    dataset: str
    subject: SubjectSource
    src: Path
    root: Path
    image_rel: str
    label_rel: str
    options: Options


def _rel(path: Path, src: Path) -> str:
    try:
        return path.relative_to(src).as_posix()
    except ValueError:
        return str(path)


NONFINITE_FILL = {'nan': -1024, 'posinf': 3071, 'neginf': -1024}
"""HU written over non-finite CT voxels by ``--repair-nonfinite``: NaN and
-Inf become air (-1024), +Inf the top of the 12-bit CT range (3071)."""


def _finite_ct(
    task: Task, image: sitk.Image | None, nonfinite: dict[str, int]
) -> sitk.Image | None:
    """Check a floating CT for NaN/Inf; return a repaired image or ``None``.

    SimpleITK reads NaN as 0 HU (water) without a word, so the voxels are
    read with NiBabel. Such a CT is refused or, with ``--repair-nonfinite``,
    repaired (:data:`NONFINITE_FILL`), the counts recorded in ``nonfinite``.

    Args:
        task: The subject.
        image: The CT as SimpleITK read it (geometry of the repaired image),
            or ``None`` to read it here if a repair is needed.
        nonfinite: Filled with the counts of NaN, +Inf and -Inf voxels.
    """
    import nibabel as nib

    ct = task.subject.image
    try:
        array = np.asanyarray(nib.load(str(ct)).dataobj)
    except Exception as error:  # SimpleITK read its header: say what NiBabel says
        raise PrepError(
            f'{ct}: cannot read the voxels to check them ({error})'
        ) from error
    if not np.issubdtype(array.dtype, np.floating):
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    counts = {
        'nan': int(np.isnan(array).sum()),
        'posinf': int(np.isposinf(array).sum()),
        'neginf': int(np.isneginf(array).sum()),
    }
    described = (
        f'{int(bad.sum())} of {array.size} voxels are not finite ({counts["nan"]}'
        f' NaN, {counts["posinf"]} +Inf, {counts["neginf"]} -Inf)'
    )
    if not task.options.repair_nonfinite:
        raise PrepError(
            f'{ct}: {described}; they would be read as 0 HU (water). Fix the '
            'scan, or pass --repair-nonfinite to set NaN and -Inf to -1024 HU '
            'and +Inf to 3071 HU (recorded in the report).'
        )
    fixed = np.nan_to_num(
        array.astype(np.float32),
        nan=NONFINITE_FILL['nan'],
        posinf=NONFINITE_FILL['posinf'],
        neginf=NONFINITE_FILL['neginf'],
    )
    if fixed.ndim == 4 and fixed.shape[3] == 1:
        fixed = fixed[..., 0]
    if image is None:
        image, _ = imio.read_image(ct)
    repaired = sitk.GetImageFromArray(np.ascontiguousarray(fixed.T))
    repaired.CopyInformation(image)
    nonfinite.update(counts)
    return repaired


def _reference_geometry(
    task: Task, repairs: list[str], nonfinite: dict[str, int]
) -> tuple[Geometry, sitk.Image | None]:
    """CT geometry (header only) or, for a CT that must be rewritten (repaired
    header, repaired non-finite voxels), the CT image.

    Floating CTs are decoded to look for NaN/Inf (integer ones cannot hold
    them and are only streamed).
    """
    ct = task.subject.image
    if not ct.exists():
        raise PrepError(f'{ct}: file not found')
    header = imio.read_header(ct)
    if header is None:
        image, repair = imio.read_image(ct)
        repairs.append(imio.Repair(_rel(ct, task.src), repair.max_angle_deg).describe())
        repaired = _finite_ct(task, image, nonfinite)
        return Geometry.of(image), image if repaired is None else repaired
    geometry, pixel, components = header
    if components != 1:
        raise PrepError(
            f'{ct}: CT has {components} components per voxel ({pixel}); '
            'expected a scalar image'
        )
    if 'float' in pixel.lower():  # integer CTs cannot hold NaN/Inf
        return geometry, _finite_ct(task, None, nonfinite)
    return geometry, None


def _load_mask(
    task: Task,
    path: Path,
    geometry: Geometry,
    repairs: list[str],
    resampled: list[str],
    name: str,
) -> sitk.Image:
    image, repair = imio.read_image(path)
    if repair is not None:
        repairs.append(
            imio.Repair(_rel(path, task.src), repair.max_angle_deg).describe()
        )
    differences = geometry.differences(Geometry.of(image))
    if differences:
        if not task.options.resample_masks:
            raise PrepError(
                f'{path}: geometry differs from the CT {task.subject.image} ('
                + '; '.join(differences)
                + '). Fix the mask, or pass --resample-masks to resample masks '
                'onto the CT grid (nearest neighbour).'
            )
        image = imio.resample_like(image, geometry)
        resampled.append(name)
    return image


def _write_ct(task: Task, ct_image: sitk.Image | None, tmp: Path, out: Path):
    """Put the CT at ``tmp``; return (sha256, linked)."""
    source = task.subject.image
    if ct_image is not None:  # repaired header: the file must be rewritten
        imio.sitk_write(ct_image, tmp, out)
        return imio.sha256_file(tmp), False
    if not source.name.endswith('.nii.gz'):
        image, _ = imio.read_image(source)
        imio.sitk_write(image, tmp, out)
        return imio.sha256_file(tmp), False
    expected = imio.expected_size(source)
    if task.options.link:
        size, sha = imio.verify_stream(source)
        try:
            os.symlink(source.resolve(), tmp)
        except OSError as error:
            raise describe_os_error(error, out, 'writing') from error
        linked = True
    else:
        size, sha = imio.copy_checked(source, tmp, out)
        linked = False
    if expected is not None and size < expected:
        raise PrepError(
            f'{source}: truncated NIfTI data ({size} bytes after decompression, '
            f'the header needs {expected}); re-download or re-export it.'
        )
    return sha, linked


def _convert(task: Task) -> dict[str, Any]:
    subject = task.subject
    for path in subject.files():
        require_regular_file(path)
    fingerprint = source_fingerprint(subject.files(), task.src)
    repairs: list[str] = []
    resampled: list[str] = []
    nonfinite: dict[str, int] = {}
    geometry, ct_image = _reference_geometry(task, repairs, nonfinite)
    if len(geometry.size) != 3:
        raise PrepError(
            f'{subject.image}: expected a 3D image, got size {geometry.size}'
        )
    image_out = task.root / task.image_rel
    label_out = task.root / task.label_rel
    for folder in (image_out.parent, label_out.parent):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise describe_os_error(error, folder, 'writing') from error
    image_tmp = imio.temp_path(image_out)
    label_tmp = imio.temp_path(label_out)
    try:
        image_sha, linked = _write_ct(task, ct_image, image_tmp, image_out)
        del ct_image

        conflicts: dict[str, int] = {}
        conflict_voxels = 0
        dropped: dict[str, int] = {}
        if task.dataset == 'totalseg':
            alive: list[sitk.Image] = []  # the image behind the current mask view

            def load(name: str) -> np.ndarray:
                path = subject.masks[name]
                alive.clear()  # the previous mask is no longer used: free it
                alive.append(_load_mask(task, path, geometry, repairs, resampled, name))
                mask = imio.integer_array(alive[0], path, range(2))
                return mask.view(bool)  # values checked to be 0 or 1

            merged = merge_totalseg_masks(load)
            alive.clear()
            label = merged.label
            conflict_voxels = merged.conflict_voxels
            conflicts = {f'{w}>{lo}': n for (w, lo), n in merged.conflict_pairs.items()}
        else:
            path = subject.masks['labels']
            image = _load_mask(task, path, geometry, repairs, resampled, 'labels')
            array = imio.integer_array(image, path, range(5))
            label, dropped_ids = remap_abdomenct1k(array)
            del array, image  # the array may be a view of the image
            dropped = {'pancreas': dropped_ids[4]}

        counts = class_counts(label)
        voxels = {'background': counts[0]}
        voxels.update({name: counts[v] for v, name in CLASS_NAMES.items()})
        label_image = geometry.apply(sitk.GetImageFromArray(label))
        del label
        imio.sitk_write(label_image, label_tmp, label_out)
        del label_image
        label_sha = imio.sha256_file(label_tmp)
        try:
            os.replace(image_tmp, image_out)
            os.replace(label_tmp, label_out)
        except OSError as error:
            raise describe_os_error(error, label_out, 'writing') from error
    except BaseException:
        for tmp in (image_tmp, label_tmp):
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    return {
        'id': subject.id,
        'dataset': task.dataset,
        'image': task.image_rel,
        'label': task.label_rel,
        'linked': linked,
        'shape': list(geometry.size),
        'spacing': list(geometry.spacing),
        'origin': list(geometry.origin),
        'direction': list(geometry.direction),
        'voxels': voxels,
        'conflict_voxels': conflict_voxels,
        'conflicts': conflicts,
        'dropped': dropped,
        'repaired': repairs,
        'nonfinite': nonfinite,
        'resampled': resampled,
        'source_split': subject.source_split,
        'options': task.options.key(),
        'source': fingerprint,
        'outputs': {
            'image': {**stat_entry(image_out), 'sha256': image_sha},
            'label': {**stat_entry(label_out), 'sha256': label_sha},
        },
    }


def convert_subject(task: Task) -> dict[str, Any]:
    """Convert one subject; never raises for a problem with its data.

    Returns:
        ``{'id', 'ok': True, 'record'}`` or ``{'id', 'ok': False, 'error',
        'fatal'}`` (``fatal``: disk full or OUT not writable, which stops the
        run).

    Example:
        >>> result = convert_subject(task)  # doctest: +SKIP
        >>> result['ok'], result['record']['voxels']['liver']  # doctest: +SKIP
        (True, 39350)
    """
    try:
        return {'id': task.subject.id, 'ok': True, 'record': _convert(task)}
    except FatalPrepError as error:
        return {'id': task.subject.id, 'ok': False, 'fatal': True, 'error': str(error)}
    except PrepError as error:
        return {'id': task.subject.id, 'ok': False, 'fatal': False, 'error': str(error)}
    except MemoryError:
        return {
            'id': task.subject.id,
            'ok': False,
            'fatal': False,
            'error': 'out of memory; re-run with fewer --workers',
        }
    except Exception as error:  # a bug or an unforeseen file problem
        detail = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return {
            'id': task.subject.id,
            'ok': False,
            'fatal': False,
            'error': f'unexpected {type(error).__name__}: {error} ({detail})',
        }


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork-server workers where available (Linux, macOS), else spawn.

    Workers never fork the main process (SimpleITK's thread pool makes that
    unsafe). The fork server imports this module once, so each worker, and
    each replacement after ``MAX_TASKS_PER_WORKER`` subjects, starts in
    milliseconds instead of re-importing torch.
    """
    if 'forkserver' in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context('forkserver')
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context('spawn')  # pragma: no cover - Windows


PARENT_POLL_SECONDS = 0.5
"""How often a worker checks that the process that started the run is alive."""


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not).

    Example:
        >>> process_alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:  # no /proc (macOS): os.kill is all we know
        return True
    return stat.rsplit(')', 1)[1].split()[0] != 'Z'


def _watch_parent(pid: int) -> None:
    while process_alive(pid):
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)  # the run is gone (e.g. kill -9): do not linger holding memory


def _init_worker(parent: int | None = None) -> None:
    """Worker set-up: one SimpleITK thread, and exit when ``parent`` dies.

    Workers are children of the fork server, not of the main process, so the
    operating system does not end them when the main process is killed; a
    daemon thread polls the main process instead. When the workers are gone
    the fork server and the resource tracker see their pipes close and exit.
    """
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    if parent is not None:
        threading.Thread(
            target=_watch_parent, args=(parent,), name='ramp-prep-parent', daemon=True
        ).start()


def run_tasks(
    tasks: list[Task], workers: int, progress: bool, desc: str
) -> Iterator[dict[str, Any]]:
    """Run ``tasks`` with ``workers`` processes (in-process for 1), one bar.

    Yields results as subjects finish.
    """
    bar = tqdm(total=len(tasks), desc=desc, unit='subject', disable=not progress)
    failed = 0
    try:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                result = convert_subject(task)
                failed += not result['ok']
                bar.set_postfix(failed=failed)
                bar.update()
                yield result
            return
        context = _pool_context()
        executor = ProcessPoolExecutor(
            max_workers=min(workers, len(tasks)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(),),
            max_tasks_per_child=MAX_TASKS_PER_WORKER,  # fresh workers: no leaks
        )
        try:
            futures = [executor.submit(convert_subject, task) for task in tasks]
            for future in as_completed(futures):
                try:
                    result = future.result()
                except BrokenProcessPool as error:
                    raise FatalPrepError(
                        'A worker process died (killed, e.g. out of memory); '
                        'finished subjects are kept. Re-run with fewer --workers.'
                    ) from error
                failed += not result['ok']
                bar.set_postfix(failed=failed)
                bar.update()
                yield result
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


# --------------------------------------------------------------------------
# A whole run


@dataclass
class Summary:
    """Outcome of :func:`prepare`.

    Attributes:
        root: The dataset folder written.
        converted: Subjects converted in this run.
        skipped: Subjects already done (outputs current), not redone.
        failed: Subject id -> error, for this run.
        splits: The written ``splits.json``.
        cohort: The discovered cohort.
        removed: Temporary files an interrupted run had left, removed
            (paths relative to ``root``).
    """

    root: Path
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    splits: dict[str, Any] = field(default_factory=dict)
    cohort: Cohort | None = None
    removed: list[str] = field(default_factory=list)


def parse_subject_ids(values: tuple[str, ...] | list[str]) -> list[str]:
    """Expand ``--subjects`` values: comma lists and ``@file`` (one id a line).

    Raises:
        PrepError: If an ``@file`` cannot be read.

    Example:
        >>> parse_subject_ids(['s0001,s0002', 's0003'])
        ['s0001', 's0002', 's0003']
    """
    ids: list[str] = []
    for value in values:
        if value.startswith('@'):
            path = Path(value[1:])
            try:
                text = path.read_text(encoding='utf-8')
            except OSError as error:
                raise describe_os_error(error, path, 'reading') from error
            parts = [line.split('#')[0].strip() for line in text.splitlines()]
        else:
            parts = [p.strip() for p in value.split(',')]
        ids.extend(p for p in parts if p)
    return list(dict.fromkeys(ids))


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PrepError(f'--seed must be a non-negative integer, not {seed!r}')


def _prepare_out(out: Path, src: Path) -> None:
    if not str(out).strip():
        raise PrepError('OUT must not be empty (use . for the current folder)')
    src_r, out_r = src.resolve(), out.resolve()
    if out_r == src_r or src_r in out_r.parents:
        raise PrepError(f'OUT {out} must not be SRC or inside it ({src})')
    if out.exists() and not out.is_dir():
        raise FatalPrepError(f'OUT {out} exists and is not a folder')
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FatalPrepError(
            f'OUT {out} cannot be created: {error.strerror or error}'
        ) from error
    try:
        imio.write_text(out / '.ramp-prep-write-test', 'ok\n')
        (out / '.ramp-prep-write-test').unlink()
    except (OSError, PrepError) as error:
        raise FatalPrepError(f'OUT {out} is not writable: {error}') from error


def remove_temporaries(layout: Layout) -> list[str]:
    """Remove the temporary files an interrupted run left anywhere in ``layout``.

    A run killed while it wrote an output, a record, ``state.json`` or one of
    the final files leaves that file under its temporary name (see
    :func:`torchio_ramp.files.temp_path`); nothing reads those, so they are
    removed. Call it while holding the folder's lock.

    Returns:
        The removed files, relative to the dataset folder, sorted.
    """
    folders = [
        layout.root,
        layout.state_dir,
        layout.records_dir,
        *layout.output_folders,
    ]
    removed = [p for folder in folders for p in imio.remove_stale_temporaries(folder)]
    return sorted(p.relative_to(layout.root).as_posix() for p in removed)


def _cohort_split(
    cohort: Cohort,
    seed: int,
    fractions: tuple[float, float, float],
    release: bool,
) -> dict[str, list[str]]:
    """The seeded split of the cohort, or (``release``) the release's own."""
    if not release:
        return compute_split(cohort.ids, seed, fractions)
    meta = cohort.src / 'meta.csv'
    if not meta.exists():
        raise PrepError(
            f'--release-split: {meta} not found, so {cohort.src} gives no split of'
            ' its own; drop --release-split to use the seeded split'
        )
    try:
        return release_split({s.id: s.source_split for s in cohort.subjects})
    except ValueError as error:
        raise PrepError(
            f'--release-split: {meta} (column split) gives {error}; fix meta.csv, or'
            ' drop --release-split to use the seeded split'
        ) from error


def _check_compatible(layout: Layout, state_path: Path, cohort: Cohort) -> None:
    if not state_path.exists():
        return
    old = read_json(state_path)
    same = (
        old.get('dataset') == cohort.dataset
        and bool(old.get('synthetic')) == cohort.synthetic
    )
    if not same:
        kind = ('synthetic ' if old.get('synthetic') else '') + str(old.get('dataset'))
        raise PrepError(
            f'OUT {layout.root} already holds {kind} data (from {old.get("src")}); '
            'use another OUT folder.'
        )


def prepare(
    dataset: str,
    src: Path,
    out: Path,
    *,
    fmt: str = 'ramp',
    dataset_id: int | None = None,
    dataset_name: str | None = None,
    seed: int = DEFAULT_SEED,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    subjects: list[str] | None = None,
    workers: int = 1,
    options: Options = Options(),
    overwrite: bool = False,
    progress: bool = True,
    release: bool = False,
) -> Summary:
    """Convert a TotalSegmentator v2 or AbdomenCT-1K release into OUT.

    The split is computed on the whole cohort found in ``src`` before any
    filtering, so ``subjects`` only chooses which of them to convert now;
    nobody changes split when more subjects are added later. With
    ``release``, the split is the release's own (TotalSegmentator's
    ``meta.csv`` has a ``split`` column) instead of the seeded one.

    Args:
        dataset: ``'totalseg'`` or ``'abdomenct1k'``.
        src: Release folder.
        out: Output folder.
        fmt: ``'ramp'`` or ``'nnunet'``.
        dataset_id: nnU-Net dataset id (``--format nnunet``).
        dataset_name: nnU-Net dataset name.
        seed: Split seed.
        fractions: Train/val/test fractions.
        subjects: Only convert these ids (must be in the cohort).
        workers: Worker processes.
        options: ``--link`` / ``--resample-masks``.
        overwrite: Redo subjects whose outputs are current.
        progress: Show a progress bar.
        release: Use the release's own split (``seed`` and ``fractions``
            are then not used).

    Returns:
        What was converted, skipped and failed, the split, and the
        temporary files of an interrupted run that were removed.

    Raises:
        PrepError: For problems with SRC, OUT or the arguments;
            :class:`FatalPrepError` for disk full / not writable.

    Example:
        >>> summary = prepare('totalseg', Path('Totalsegmentator_dataset_v201'),
        ...                   Path('prepared/totalseg'), workers=8)  # doctest: +SKIP
        >>> [len(summary.splits[n]) for n in ('train', 'val', 'test')]  # doctest: +SKIP
        [859, 184, 185]
    """
    if dataset not in DISCOVER:
        raise PrepError(f'unknown dataset {dataset!r}')
    if release and dataset != 'totalseg':
        raise PrepError(
            f'--release-split: {dataset} has no split of its own (only'
            " TotalSegmentator's meta.csv has one)"
        )
    if workers < 1:
        raise PrepError(f'--workers must be at least 1, got {workers}')
    _check_seed(seed)
    cohort = DISCOVER[dataset](src)
    name = dataset_name or DEFAULT_NNUNET_NAMES[dataset] + (
        'Synth' if cohort.synthetic else ''
    )
    layout = make_layout(out, fmt, dataset_id, name)
    _prepare_out(out, src)
    layout.root.mkdir(parents=True, exist_ok=True)
    with output_lock(layout):
        state_path = layout.state_dir / 'state.json'
        _check_compatible(layout, state_path, cohort)
        if not cohort.subjects:
            raise PrepError(
                f'SRC {src} has no complete subject; excluded: '
                + '; '.join(f'{k}: {v}' for k, v in list(cohort.excluded.items())[:5])
            )
        by_id = {s.id: s for s in cohort.subjects}
        if subjects is not None:
            unknown = [i for i in subjects if i not in by_id]
            if unknown:
                why = [
                    f'{i} ({cohort.excluded[i]})'
                    for i in unknown
                    if i in cohort.excluded
                ]
                raise PrepError(
                    f'--subjects: not in the cohort of {src}: {", ".join(unknown[:10])}'
                    + (f'; excluded: {"; ".join(why[:5])}' if why else '')
                )
        selected = list(by_id) if subjects is None else sorted(set(subjects))
        cohort_split = _cohort_split(cohort, seed, fractions, release)
        if layout.format == 'nnunet':
            check_nnunet_fold(cohort_split)
        where = split_of(cohort_split)
        removed = remove_temporaries(layout)

        records = load_records(layout)
        for subject_id, record in records.items():
            if subject_id in where and relocate(layout, record, where[subject_id]):
                write_record(layout, record)
        option_key = options.key()
        tasks: list[Task] = []
        summary = Summary(root=layout.root, cohort=cohort, removed=removed)
        for subject_id in selected:
            subject = by_id[subject_id]
            fingerprint = source_fingerprint(subject.files(), src)
            status = record_status(
                records.get(subject_id), layout, option_key, fingerprint
            )
            if status is None and not overwrite:
                summary.skipped.append(subject_id)
                continue
            tasks.append(
                Task(
                    dataset,
                    subject,
                    src,
                    layout.root,
                    layout.image_rel(subject_id, where[subject_id]),
                    layout.label_rel(subject_id, where[subject_id]),
                    options,
                )
            )
        state = {
            'dataset': dataset,
            'synthetic': cohort.synthetic,
            'src': str(src.resolve()),
            'format': layout.format,
            'seed': None if release else seed,
            'fractions': None if release else list(fractions),
            'split': 'release' if release else 'seeded',
            'cohort': cohort.ids,
            'cohort_basis': 'source',
            'excluded': cohort.excluded,
            'notes': cohort.notes,
            'options': option_key,
            'failures': {},
            'not_prepared': {},
        }
        write_json(state_path, state)

        desc = f'ramp-prep {dataset}' + (' (synthetic)' if cohort.synthetic else '')
        fatal: str | None = None
        for result in run_tasks(tasks, workers, progress, desc):
            if result['ok']:
                write_record(layout, result['record'])
                records[result['id']] = result['record']
                summary.converted.append(result['id'])
            elif result.get('fatal'):
                fatal = result['error']
                break
            else:
                summary.failed[result['id']] = result['error']
        if fatal is not None:
            raise FatalPrepError(fatal)

        state['failures'] = dict(sorted(summary.failed.items()))
        summary.splits = finish(layout, state, records, cohort_split, selected)
        return summary


def finish(
    layout: Layout,
    state: dict[str, Any],
    records: dict[str, dict[str, Any]],
    cohort_split: dict[str, list[str]],
    selected: list[str] | None = None,
) -> dict[str, Any]:
    """Check records against the disk and write the final files.

    Returns:
        The written ``splits.json``.
    """
    cohort = set(state['cohort'])
    current = {}
    not_prepared = {}
    chosen = set(selected) if selected is not None else cohort
    for subject_id in sorted(cohort):
        record = records.get(subject_id)
        status = record_status(record, layout, state['options'], None)
        if status is None:
            current[subject_id] = record
        elif subject_id in state['failures']:
            not_prepared[subject_id] = 'failed: ' + state['failures'][subject_id]
        elif subject_id not in chosen:
            not_prepared[subject_id] = 'not selected (--subjects)'
        else:
            not_prepared[subject_id] = status
    state['not_prepared'] = not_prepared
    state['stale'] = sorted(set(records) - cohort)
    groups = duplicate_scans(current)
    state['duplicates'] = groups
    if groups:
        cohort_split = keep_together(cohort_split, groups)
        where = split_of(cohort_split)
        for members in groups:
            for subject_id in members:
                if relocate(layout, current[subject_id], where[subject_id]):
                    write_record(layout, current[subject_id])
    write_json(layout.state_dir / 'state.json', state)
    return finalize(layout, state, current, cohort_split)


def duplicate_scans(records: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Groups of ids whose prepared CTs have the same SHA-256 (same scan).

    A subject folder copied or symlinked under a second id would otherwise
    land in train and test at once. Groups are sorted, and so are their ids.

    Example:
        >>> same = {'outputs': {'image': {'sha256': 'ab'}}}
        >>> other = {'outputs': {'image': {'sha256': 'cd'}}}
        >>> duplicate_scans({'s2': same, 's1': same, 's3': other})
        [['s1', 's2']]
    """
    by_hash: dict[str, list[str]] = {}
    for subject_id, record in records.items():
        digest = record['outputs']['image'].get('sha256')
        if digest:
            by_hash.setdefault(digest, []).append(subject_id)
    return sorted(sorted(ids) for ids in by_hash.values() if len(ids) > 1)


def resplit(
    root: Path,
    seed: int,
    fractions: tuple[float, float, float],
    basis: str = 'source',
) -> dict[str, Any]:
    """Recompute the split of a prepared folder; the written ``splits.json``.

    :func:`split_again` with only its ``splits``.

    Example:
        >>> out = Path('prepared/totalseg')
        >>> splits = resplit(out, 7, (0.8, 0.1, 0.1))  # doctest: +SKIP
    """
    return split_again(root, seed, fractions, basis).splits


def split_again(
    root: Path,
    seed: int,
    fractions: tuple[float, float, float],
    basis: str = 'source',
) -> Summary:
    """Recompute the split of a prepared folder (``ramp-prep split``).

    Args:
        root: The dataset folder (OUT, or the nnU-Net ``DatasetNNN_Name``).
        seed: New seed.
        fractions: New fractions.
        basis: ``'source'`` splits the whole recorded cohort (as the first
            run did); ``'prepared'`` splits only the subjects present.

    Returns:
        The written ``splits.json`` (``splits``) and the temporary files of
        an interrupted run that were removed (``removed``).

    Raises:
        PrepError: If ``root`` is not a prepared folder.

    Example:
        >>> out = Path('prepared/totalseg')
        >>> split_again(out, 7, (0.8, 0.1, 0.1)).removed  # doctest: +SKIP
        []
    """
    from .outputs import find_layout

    _check_seed(seed)
    layout = find_layout(root)
    state_path = layout.state_dir / 'state.json'
    if not state_path.exists():
        raise PrepError(
            f'{root} has no {state_path.relative_to(root)}; re-run the conversion'
        )
    with output_lock(layout):
        removed = remove_temporaries(layout)
        state = read_json(state_path)
        records = load_records(layout)
        if basis == 'prepared':
            ids = [
                i
                for i in state['cohort']
                if record_status(records.get(i), layout, state['options'], None) is None
            ]
        elif basis == 'source':
            ids = state['cohort']
        else:
            raise PrepError(f"--cohort must be 'source' or 'prepared', got {basis!r}")
        if not ids:
            raise PrepError(f'{root} has no prepared subjects to split')
        cohort_split = compute_split(ids, seed, fractions)
        if layout.format == 'nnunet':
            check_nnunet_fold(cohort_split)
        where = split_of(cohort_split)
        for subject_id, record in records.items():
            if subject_id in where and relocate(layout, record, where[subject_id]):
                write_record(layout, record)
        state.update(
            seed=seed,
            fractions=list(fractions),
            split='seeded',
            cohort=sorted(ids),
            cohort_basis=basis,
        )
        splits = finish(layout, state, records, cohort_split)
        return Summary(root=layout.root, splits=splits, removed=removed)
