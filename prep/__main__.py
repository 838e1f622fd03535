"""``python -m ramp_prep`` runs the ``ramp-prep`` command line."""

from .cli import main

main()
