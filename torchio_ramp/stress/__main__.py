"""``python -m torchio_ramp.stress``: the ``ramp-stress`` command (for ``torchrun``).

Example:
    ``torchrun --nproc-per-node 4 -m torchio_ramp.stress run --model m.pt ...``
"""

from .cli import main

if __name__ == '__main__':
    main(prog_name='ramp-stress')
