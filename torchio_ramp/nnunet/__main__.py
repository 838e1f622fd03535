"""``python -m torchio_ramp.nnunet check|ext-path|install|uninstall|export-model``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .install import EXT_FOLDER
from .install import SHIM_NAME


def _fail(error: Exception) -> click.ClickException:
    return click.ClickException(str(error))


@click.group(context_settings={'help_option_names': ['-h', '--help']})
def main() -> None:
    """Use torchio-ramp's trainers and models with nnU-Net v2.

    \b
    check         say how nnU-Net can find the RAMP trainers here
    ext-path      print the folder for nnUNet_extTrainer (the default way)
    install       write torchio_ramp_trainers.py into nnU-Net's trainer package
                  (the fallback where nnUNet_extTrainer cannot work)
    uninstall     remove it
    export-model  a RAMP-trained model as a stock nnUNetTrainer model folder
    \b
    Then: nnUNetv2_train D 3d_fullres 0 -tr nnUNetTrainerRAMP
    """


@main.command('ext-path')
def ext_path() -> None:
    """Print the folder to put in nnUNet_extTrainer."""
    click.echo(str(EXT_FOLDER))


def _visible_routes() -> tuple[list[str], str | None]:
    from .install import trainer_folder
    from .install import trainer_search_problem

    problem = trainer_search_problem()
    ext = os.environ.get('nnUNet_extTrainer', '')  # noqa: SIM112 - nnU-Net's name
    in_ext = str(EXT_FOLDER) in ext.split(os.pathsep)
    routes = []
    if in_ext and problem is None:
        routes.append(f'nnUNet_extTrainer includes {EXT_FOLDER}')
    if (trainer_folder() / SHIM_NAME).is_file():
        routes.append(f'the installed module {trainer_folder() / SHIM_NAME}')
    return routes, problem


@main.command()
def check() -> None:
    """Say whether nnUNetv2_train can find the RAMP trainers, and how to fix it.

    Exit status 0 when it can, 1 when it cannot.
    """
    try:
        routes, problem = _visible_routes()
    except ImportError as error:
        raise _fail(error) from error
    if problem is None:
        click.echo("nnU-Net's trainer search works: nnUNet_extTrainer can be used.")
    else:
        click.echo(problem)
    if routes:
        click.echo(
            'The RAMP trainers are visible through ' + ' and '.join(routes) + '.'
        )
        return
    advice = (
        f'export nnUNet_extTrainer={EXT_FOLDER}'
        if problem is None
        else 'python -m torchio_ramp.nnunet install (until the fix above)'
    )
    raise click.ClickException(f'the RAMP trainers are not visible; run: {advice}')


@main.command()
def install() -> None:
    """Make -tr nnUNetTrainerRAMP (and the other RAMP trainers) work.

    Writes one module into nnU-Net's trainer package and records it in
    nnunetv2's pip RECORD, so that uninstalling nnunetv2 removes it. Where
    nnU-Net's own trainer search works, nnUNet_extTrainer (see ext-path)
    does the same without writing anything.
    """
    from .install import install as install_module
    from .install import trainer_search_problem

    try:
        installed = install_module()
    except (ImportError, PermissionError) as error:
        raise _fail(error) from error
    state = 'installed' if installed.written else 'already installed'
    click.echo(f'RAMP trainers {state}: {installed.path}')
    problem = trainer_search_problem()
    if problem is None:
        click.echo(
            "nnU-Net's trainer search works here: nnUNet_extTrainer="
            f'{EXT_FOLDER} would do the same without writing into nnU-Net.'
        )
    else:
        click.echo(f'Note: {problem}', err=True)
        click.echo(
            'The installed module is found before the part of nnU-Net that fails,'
            ' so the RAMP trainers work meanwhile.',
            err=True,
        )


@main.command()
def uninstall() -> None:
    """Remove the module written by install (also from a leftover folder)."""
    from .install import uninstall as uninstall_module

    try:
        path = uninstall_module()
    except PermissionError as error:
        raise _fail(error) from error
    click.echo(f'Removed {path}' if path else 'Nothing to remove.')


@main.command('export-model')
@click.argument('model_folder', type=click.Path(path_type=Path))
@click.argument('out', type=click.Path())
@click.option(
    '--fold',
    'folds',
    multiple=True,
    help='Fold to export (repeat for several) [default: every fold].',
)
@click.option(
    '--checkpoint',
    default='checkpoint_final.pth',
    show_default=True,
    help='Checkpoint file of each fold.',
)
def export_model(
    model_folder: Path, out: str, folds: tuple[str, ...], checkpoint: str
) -> None:
    """Write MODEL_FOLDER as a stock nnUNetTrainer model under OUT.

    \b
    MODEL_FOLDER: $nnUNet_results/DatasetNNN_Name/TRAINER__PLANS__CONFIGURATION
    of a model trained with a RAMP trainer. OUT/DatasetNNN_Name/
    nnUNetTrainer__PLANS__CONFIGURATION is predicted by plain nnU-Net
    (nnUNet_results=OUT nnUNetv2_predict ...), without torchio-ramp;
    the trainer that trained it is kept in each checkpoint's ramp_provenance.
    """
    from .export import export_model as export

    if not out.strip():
        raise click.BadParameter('must not be empty', param_hint='OUT')
    try:
        done = export(
            model_folder, Path(out), folds=folds or None, checkpoint=checkpoint
        )
    except (FileNotFoundError, ValueError, OSError) as error:
        raise _fail(error) from error
    click.echo(f'Exported {done.trainer} folds {", ".join(done.folds)}: {done.folder}')
    click.echo(f'Predict with stock nnU-Net: {done.predict_command()}')


if __name__ == '__main__':  # pragma: no cover
    main()
