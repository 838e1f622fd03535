"""``python -m torchio_ramp.training`` (e.g. under ``torchrun -m``): ``ramp-train``."""

from .cli import main

if __name__ == '__main__':
    main(prog_name='ramp-train')
