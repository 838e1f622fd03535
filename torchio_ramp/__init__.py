"""torchio-ramp: RAMP multi-corruption augmentation and robustness stress testing."""

__version__ = '0.1.0'
