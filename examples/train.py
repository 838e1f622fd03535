#!/usr/bin/env python
"""Train a 3D U-Net on a ramp-prep dataset: the ``ramp-train`` command.

``python examples/train.py ARGS`` equals ``ramp-train ARGS`` (see
:mod:`torchio_ramp.training.cli`); under torchrun::

    torchrun --nproc_per_node 4 examples/train.py --data prepared/totalseg \\
        --strategy ramp --out runs/ramp --workers 4
"""

from torchio_ramp.training.cli import main

if __name__ == '__main__':
    main()
