"""``python -m torchio_ramp.nnunet install|uninstall|ext-path``."""

from __future__ import annotations

import click

from .install import EXT_FOLDER
from .install import install as install_shim
from .install import uninstall as uninstall_shim


@click.group(context_settings={'help_option_names': ['-h', '--help']})
def main() -> None:
    """Register torchio-ramp's trainers with nnU-Net v2.

    \b
    install    write torchio_ramp_trainers.py into nnU-Net's trainer package
               (then: nnUNetv2_train D 3d_fullres 0 -tr nnUNetTrainerRAMP)
    uninstall  remove it
    ext-path   print the folder for nnUNet_extTrainer (writes nothing)
    """


@main.command()
def install() -> None:
    """Make -tr nnUNetTrainerRAMP (and the other RAMP trainers) work."""
    try:
        path, written = install_shim()
    except (ImportError, PermissionError) as error:
        raise click.ClickException(str(error)) from error
    state = 'installed' if written else 'already installed'
    click.echo(f'RAMP trainers {state}: {path}')


@main.command()
def uninstall() -> None:
    """Remove the module written by install."""
    try:
        path = uninstall_shim()
    except ImportError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f'Removed {path}' if path else 'Nothing to remove.')


@main.command('ext-path')
def ext_path() -> None:
    """Print the folder to put in nnUNet_extTrainer."""
    click.echo(str(EXT_FOLDER))


if __name__ == '__main__':  # pragma: no cover
    main()
