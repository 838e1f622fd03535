"""ramp-prep: convert public CT datasets to the RAMP five-class head.

The package is installed as ``ramp_prep`` (``package_dir`` in ``setup.cfg``),
which is its one import identity. In a checkout the folder is also importable
by its name, ``prep`` (the checkout is on ``sys.path`` when running tools or
pytest from it); that name is only an alias: importing ``prep`` or
``prep.<module>`` returns the ``ramp_prep`` modules themselves, so a class
such as ``ramp_prep.errors.PrepError`` exists once, whichever name was used.
"""

if __name__ != 'ramp_prep':  # imported as ``prep`` from a checkout
    import importlib
    import pkgutil
    import sys

    try:
        _package = importlib.import_module('ramp_prep')
    except ImportError as _error:
        raise ImportError(
            f'{__name__!r} is installed as ramp_prep: run `pip install -e .` in the'
            ' checkout and import ramp_prep'
        ) from _error
    sys.modules[__name__] = _package
    for _module in pkgutil.iter_modules(_package.__path__):
        if not _module.name.startswith('_'):
            sys.modules[f'{__name__}.{_module.name}'] = importlib.import_module(
                f'ramp_prep.{_module.name}'
            )
