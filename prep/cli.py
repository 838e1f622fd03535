"""``ramp-prep``: prepare CT datasets for torchio-ramp's five-class head."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from torchio_ramp.cli_options import progress_option
from torchio_ramp.cli_options import seed_option
from torchio_ramp.cli_options import size_option
from torchio_ramp.cli_options import workers_option
from torchio_ramp.labels import CLASS_NAMES

from .convert import Options
from .convert import Summary
from .convert import parse_subject_ids
from .convert import prepare
from .convert import split_again
from .errors import PrepError
from .outputs import DEFAULT_NNUNET_NAMES
from .outputs import REPORT_TXT
from .outputs import tool_version
from .splits import DEFAULT_SEED
from .splits import empty_split_warnings
from .splits import parse_fractions
from .synth import write_synthetic

HEAD = ', '.join(f'{k} {v}' for k, v in CLASS_NAMES.items())
CONTEXT = {'help_option_names': ['-h', '--help'], 'max_content_width': 100}


def _fractions(ctx, param, value: str) -> tuple[float, float, float]:
    try:
        return parse_fractions(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def _out_folder(ctx, param, value: str) -> Path:
    """Refuse an empty OUT: ``""`` would silently mean the current folder.

    An unset variable (``ramp-prep totalseg SRC "$nnUNet_raw"``) gives one.
    """
    if not value.strip():
        raise click.BadParameter(
            f'OUT is empty: {value!r} is not a folder name (an unset variable'
            ' such as $nnUNet_raw?); pass a path (use . for the current folder)'
        )
    return Path(value)


def _conversion_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument(
            'src', type=click.Path(exists=True, file_okay=False, path_type=Path)
        ),
        click.argument('out', type=click.Path(), callback=_out_folder),
        click.option(
            '--format',
            'fmt',
            type=click.Choice(['ramp', 'nnunet']),
            default='ramp',
            show_default=True,
            help='ramp: OUT/images, OUT/labels. nnunet: an nnU-Net v2 raw dataset '
            'OUT/DatasetNNN_Name (imagesTr, labelsTr, imagesTs, labelsTs, '
            'splits_final.json).',
        ),
        click.option(
            '--dataset-id',
            type=click.IntRange(1, 999),
            help='nnU-Net dataset id NNN (required with --format nnunet).',
        ),
        click.option(
            '--dataset-name',
            help='nnU-Net dataset name (default '
            + ' / '.join(DEFAULT_NNUNET_NAMES.values())
            + ', with "Synth" appended for synthetic data).',
        ),
        seed_option(
            default=DEFAULT_SEED, help='Seed of the split (numpy.random.default_rng).'
        ),
        click.option(
            '--fractions',
            default='0.7,0.15,0.15',
            show_default=True,
            callback=_fractions,
            help='Train,val,test fractions; train = floor(f*n), val = floor(f*n), '
            'test = the rest.',
        ),
        click.option(
            '--release-split',
            'release',
            is_flag=True,
            help="Use the release's own split (TotalSegmentator: the split column "
            'of meta.csv) instead of the seeded one; --seed and --fractions are '
            'then not used.',
        ),
        click.option(
            '--subjects',
            'subject_args',
            multiple=True,
            metavar='ID[,ID...]|@FILE',
            help='Convert only these ids (repeatable; @FILE: one id a line). The '
            'split is still computed on the whole cohort in SRC, so each '
            "subject's split never depends on this filter.",
        ),
        workers_option(
            minimum=1,
            default=1,
            help='Worker processes, one subject each at a time. A worker streams '
            'the CT and holds one mask plus the label: about 3 bytes per CT voxel.',
        ),
        click.option(
            '--link',
            is_flag=True,
            help='Symlink images to SRC instead of copying them (repaired '
            'headers are still written as files).',
        ),
        click.option(
            '--resample-masks',
            is_flag=True,
            help='Resample masks whose geometry differs from the CT onto the CT '
            'grid (nearest neighbour) instead of failing the subject.',
        ),
        click.option(
            '--repair-nonfinite',
            is_flag=True,
            help='Floating-point CTs with NaN/Inf voxels fail by default (they '
            'would be read as 0 HU, water); with this flag NaN and -Inf become '
            '-1024 HU and +Inf 3071 HU, and the counts go in the report.',
        ),
        click.option(
            '--overwrite',
            is_flag=True,
            help='Redo every subject, even those already finished.',
        ),
        click.option(
            '--keep-going',
            is_flag=True,
            help='Exit with status 0 even if some subjects failed (they are '
            'listed in the report). Other subjects are always converted.',
        ),
        progress_option(),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run(dataset: str, **kwargs: Any) -> None:
    if kwargs['fmt'] == 'nnunet' and kwargs['dataset_id'] is None:
        raise click.UsageError(
            '--format nnunet needs --dataset-id N (1..999), the nnU-Net dataset id'
        )
    if kwargs['release'] and dataset != 'totalseg':
        raise click.UsageError(
            f'--release-split: {dataset} has no split of its own (only '
            "TotalSegmentator's meta.csv has one); use --fractions"
        )
    keep_going = kwargs.pop('keep_going')
    subject_args = kwargs.pop('subject_args')
    try:
        subjects = parse_subject_ids(subject_args) if subject_args else None
        summary = prepare(
            dataset,
            kwargs.pop('src'),
            kwargs.pop('out'),
            subjects=subjects,
            options=Options(
                kwargs.pop('link'),
                kwargs.pop('resample_masks'),
                kwargs.pop('repair_nonfinite'),
            ),
            **kwargs,
        )
    except PrepError as error:
        raise click.ClickException(str(error)) from error
    _echo_summary(summary)
    if summary.failed and not keep_going:
        click.echo(
            f'{len(summary.failed)} subject(s) failed (see the report); exiting '
            'with status 1. Fix them and re-run, or pass --keep-going.',
            err=True,
        )
        raise SystemExit(1)


def _echo_removed(summary: Summary) -> None:
    removed = summary.removed
    if removed:
        click.echo(
            f'Removed {len(removed)} temporary file{"s" * (len(removed) != 1)} left'
            f' by an interrupted run: {", ".join(removed)}',
            err=True,
        )


def _echo_warnings(summary: Summary) -> None:
    for warning in empty_split_warnings(summary.splits, summary.root):
        click.echo(f'WARNING: {warning}', err=True)


def _echo_summary(summary: Summary) -> None:
    splits = summary.splits
    cohort = summary.cohort
    synthetic = ' SYNTHETIC' if cohort and cohort.synthetic else ''
    prepared = sum(len(splits[n]) for n in ('train', 'val', 'test'))
    how = (
        "the release's own split"
        if splits.get('method') == 'release'
        else f'seed {splits["seed"]}'
    )
    _echo_removed(summary)
    click.echo(
        f'Prepared{synthetic} {prepared} of {splits["cohort"]["size"]} cohort '
        f'subjects in {summary.root}: train {len(splits["train"])}, val '
        f'{len(splits["val"])}, test {len(splits["test"])} ({how}).'
    )
    click.echo(
        f'This run: {len(summary.converted)} converted, {len(summary.skipped)} '
        f'already done, {len(summary.failed)} failed; '
        f'{len(cohort.excluded) if cohort else 0} excluded from the cohort.'
    )
    for ids in splits.get('duplicates') or []:
        click.echo(
            f'WARNING: the same scan (CT SHA-256) under {len(ids)} ids: '
            f'{", ".join(ids)}; kept in one split (see the report).',
            err=True,
        )
    for subject_id, error in sorted(summary.failed.items()):
        click.echo(f'FAILED {subject_id}: {error}', err=True)
    _echo_warnings(summary)
    click.echo(f'Report: {summary.root / REPORT_TXT}')


class _InOrder(click.Group):
    """A group whose help lists its commands in the order they are defined."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_InOrder, context_settings=CONTEXT)
@click.version_option(tool_version(), prog_name='ramp-prep')
def main() -> None:
    """Prepare CT datasets for torchio-ramp's five-class head.

    \b
    Output classes: 0 background, HEAD.

    \b
    Output (OUT): images/<id>.nii.gz, labels/<id>.nii.gz (uint8 0..5 on the
    CT's exact grid), splits.json, manifest.csv, dataset.json, report.txt.
    Split: sort ids, permute with numpy.random.default_rng(seed),
    train = floor(0.70 n), val = floor(0.15 n), test = the rest
    (1228 -> 859/184/185, 1000 -> 700/150/150); --release-split keeps
    the release's own split instead. Re-running finishes what a killed run
    left and skips finished subjects.
    """


main.help = main.help.replace('HEAD', HEAD)


@main.command(
    context_settings=CONTEXT,
    short_help='Convert TotalSegmentator v2 to the five-class head.',
)
@_conversion_options
def totalseg(**kwargs: Any) -> None:
    """Convert TotalSegmentator v2 (SRC) to the five-class head in OUT.

    \b
    SRC layout: <id>/ct.nii.gz, <id>/segmentations/<structure>.nii.gz,
    meta.csv (";"-separated). Subjects with the CT and all six masks
    (liver, spleen, kidney_left, kidney_right, heart, colon) form the
    cohort; only those six masks are read. kidney = kidney_left | kidney_right;
    every other structure is background. Overlapping masks: the class
    first in kidney > spleen > colon > heart > liver wins; conflicts are
    counted per subject in the report. TotalSegmentator v1 (no heart.nii.gz)
    is detected and refused.
    """
    _run('totalseg', **kwargs)


@main.command(
    context_settings=CONTEXT, short_help='Convert AbdomenCT-1K to the five-class head.'
)
@_conversion_options
def abdomenct1k(**kwargs: Any) -> None:
    """Convert AbdomenCT-1K (SRC) to the five-class head in OUT.

    \b
    SRC layout: images/ + masks/, or AbdomenCT-1K-ImagePart*/ + Mask/;
    Case_XXXXX_0000.nii.gz images pair with Case_XXXXX.nii.gz masks.
    Masks: 1 liver -> 1, 2 kidney -> 3, 3 spleen -> 2, 4 pancreas -> 0
    (counted in the report). Heart and colon are recorded as NOT ANNOTATED
    in dataset.json (exclude them from evaluation; they are not background).
    Images without a mask are listed, not converted. Headers with
    non-orthonormal direction cosines are read with NiBabel and
    orthonormalised (named in the report), never dropped. The paper uses
    AbdomenCT-1K as a test set only: --fractions 0,0,1 puts every case in
    test.
    """
    _run('abdomenct1k', **kwargs)


@main.command(
    context_settings=CONTEXT,
    short_help="Write SYNTHETIC phantom CTs in a dataset's layout.",
)
@click.argument('out', type=click.Path(), callback=_out_folder)
@click.option(
    '--layout',
    type=click.Choice(['totalseg', 'abdomenct1k']),
    required=True,
    help='On-disk layout to imitate.',
)
@click.option(
    '--subjects',
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help='Number of phantoms.',
)
@size_option(
    '--shape',
    default='64,64,48',
    show_default=True,
    help='Voxels per phantom (I,J,K).',
)
@size_option(
    '--spacing',
    kind=float,
    default='3,3,3',
    show_default=True,
    help='Voxel size in mm.',
)
@seed_option(help='Seed of the first phantom (subject i uses seed + i).')
@click.option(
    '--release-folders',
    is_flag=True,
    help='AbdomenCT-1K only: AbdomenCT-1K-ImagePart1/ + Mask/ instead of '
    'images/ + masks/.',
)
@progress_option()
def synth(
    out: Path,
    layout: str,
    subjects: int,
    shape,
    spacing,
    seed: int,
    release_folders: bool,
    progress: bool,
) -> None:
    """Write SYNTHETIC phantom CTs in a real dataset's layout to OUT.

    \b
    Phantoms: air, a body of fat and muscle, spine, lung bases, and the
    organs as smooth blobs with typical HU (liver 60, spleen 50, kidneys 150,
    heart 40, colon wall 30 around an air lumen) plus 15 HU noise.
    totalseg: <id>/ct.nii.gz, <id>/segmentations/*.nii.gz, meta.csv.
    abdomenct1k: images/<id>_0000.nii.gz, masks/<id>.nii.gz (1..4 incl.
    pancreas). The folder gets SYNTHETIC.txt and every converted output is
    labelled synthetic.
    """
    try:
        ids = write_synthetic(
            out,
            layout,
            subjects,
            shape=shape,
            spacing=spacing,
            seed=seed,
            release_folders=release_folders,
            progress=progress,
        )
    except PrepError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f'Wrote {len(ids)} SYNTHETIC phantom subjects ({layout} layout) to {out}. '
        f'Convert them with: ramp-prep {layout} {out} OUT'
    )


@main.command(
    context_settings=CONTEXT, short_help='Recompute the split of a prepared OUT.'
)
@click.argument('out', type=click.Path(exists=True, file_okay=False, path_type=Path))
@seed_option(default=DEFAULT_SEED, help='Seed of numpy.random.default_rng.')
@click.option(
    '--fractions',
    default='0.7,0.15,0.15',
    show_default=True,
    callback=_fractions,
    help='Train,val,test fractions.',
)
@click.option(
    '--cohort',
    'basis',
    type=click.Choice(['source', 'prepared']),
    default='source',
    show_default=True,
    help='source: split the whole cohort found in SRC (as conversion does); '
    'prepared: split only the subjects present in OUT.',
)
def split(out: Path, seed: int, fractions, basis: str) -> None:
    """(Re)compute the train/val/test split of a prepared OUT.

    \b
    Rewrites splits.json, manifest.csv, dataset.json and report.txt; for an
    nnU-Net export (pass OUT/DatasetNNN_Name) it also moves cases between
    imagesTr/labelsTr and imagesTs/labelsTs and rewrites splits_final.json.
    Same ids, seed and fractions give the same split on every platform.
    """
    try:
        summary = split_again(out, seed, fractions, basis)
    except PrepError as error:
        raise click.ClickException(str(error)) from error
    splits = summary.splits
    _echo_removed(summary)
    click.echo(
        f'Split {out} with seed {seed}, fractions {list(fractions)}: train '
        f'{len(splits["train"])}, val {len(splits["val"])}, test '
        f'{len(splits["test"])} (cohort {splits["cohort"]["size"]}).'
    )
    _echo_warnings(summary)


@main.command(
    'nnunet-splits',
    context_settings=CONTEXT,
    short_help="Write our train/val split as nnU-Net's fold 0.",
)
@click.argument('dataset')
@click.option(
    '--raw',
    type=click.Path(file_okay=False, path_type=Path),
    help='nnU-Net raw folder [default: $nnUNet_raw].',
)
@click.option(
    '--preprocessed',
    type=click.Path(file_okay=False, path_type=Path),
    help='nnU-Net preprocessed folder [default: $nnUNet_preprocessed].',
)
@click.option(
    '--overwrite',
    is_flag=True,
    help='Replace a splits_final.json that holds other folds.',
)
def nnunet_splits(
    dataset: str, raw: Path | None, preprocessed: Path | None, overwrite: bool
) -> None:
    """Make nnU-Net's fold 0 our train/val split (DATASET: id or DatasetNNN_Name).

    \b
    Writes $nnUNet_preprocessed/DatasetNNN_Name/splits_final.json from the
    splits.json of the export in $nnUNet_raw, after
    nnUNetv2_plan_and_preprocess (which copies the export's own
    splits_final.json when it plans a dataset for the first time). Every id
    must have been preprocessed. Running it again changes nothing.
    """
    from .nnunet import write_nnunet_splits

    try:
        path, fold, status = write_nnunet_splits(dataset, raw, preprocessed, overwrite)
    except PrepError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f'{path}: fold 0 = train {len(fold["train"])}, val {len(fold["val"])} '
        f'({status}).'
    )


if __name__ == '__main__':  # pragma: no cover
    main()
