"""Doctest collection: modules that need nnU-Net are skipped without it."""

import importlib.util

collect_ignore_glob = ['torchio_ramp/nnunet/ext/*']
if importlib.util.find_spec('nnunetv2') is None:
    collect_ignore_glob += [
        'torchio_ramp/nnunet/augment.py',
        'torchio_ramp/nnunet/trainers.py',
    ]
