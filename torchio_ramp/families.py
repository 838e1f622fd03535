"""Corruption families: the registry and the paper's pool.

Two things with two names:

* :data:`FAMILIES` is the *registry*: every corruption family this library
  knows, by name. The random transforms, the multi-corruption sampler
  :class:`~torchio_ramp.RampCorrupt`, the leave-one-family-out ablation, the
  stress test, its report and the benchmarks look families up here, so a
  family registered here (one entry, plus its kernel) can be used everywhere
  by name. The registry is open: it may hold more families than the paper, and
  :func:`register_family` adds one at run time.
* :data:`PAPER_FAMILIES` is the *paper's pool*: the names of the families of
  Table 2, in its order. It is the default of :class:`~torchio_ramp.RampCorrupt`,
  :class:`~torchio_ramp.stress.protocol.StressProtocol`, :func:`severity_grid`
  and the strategies, so registering a family never changes a paper default.
  Counts of the paper's protocol (families, settings) are derived from it.

Severity (our definition; the paper does not give one per family): a level ``s``
maps linearly onto the family's training range, 0.05 to its low end and 0.25 to
its high end; ``compound`` uses the level itself (noise std = s, blur sigma = 5 s,
bias strength = 3 s). Other levels extrapolate linearly, clamped to each
parameter's valid domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence

from . import kernels
from .ct_physics import CT_PHYSICS_FAMILIES
from .ct_physics import CT_PHYSICS_OPERATORS
from .operators import SEVERITY_LEVELS
from .operators import Operator
from .operators import Option
from .operators import Parameter
from .operators import fraction
from .operators import identity_severity
from .operators import int_range

_NOISE_STD = Parameter('std', 0.02, 0.20, minimum=0.0, doc='noise standard deviation')

FAMILIES: dict[str, Operator] = {
    family.name: family
    for family in (
        Operator(
            name='gaussian_noise',
            title='Gaussian noise',
            kernel=kernels.gaussian_noise,
            parameters=(_NOISE_STD,),
            summary='Adds independent Gaussian noise to every voxel (low-dose'
            ' quantum and electronic noise).',
            reference='Table 2',
        ),
        Operator(
            name='blur',
            title='Isotropic blur',
            kernel=kernels.gaussian_blur,
            parameters=(
                Parameter(
                    'sigma', 0.5, 2.5, minimum=0.0, doc='Gaussian sigma (voxels)'
                ),
            ),
            summary='Gaussian smoothing: loss of sharpness from a soft'
            ' reconstruction kernel.',
            reference='Table 2',
        ),
        Operator(
            name='rician_noise',
            title='Rician-like noise',
            kernel=kernels.rician_noise,
            parameters=(_NOISE_STD,),
            summary='Signal-dependent noise sqrt((x + n1)^2 + n2^2) with two'
            ' independent Gaussian fields.',
            reference='Table 2',
        ),
        Operator(
            name='motion_blur',
            title='Directional motion blur',
            kernel=kernels.motion_blur,
            parameters=(
                Parameter(
                    'sigma', 0.5, 3.0, minimum=0.0, doc='Gaussian sigma (voxels)'
                ),
            ),
            summary='1-D Gaussian smoothing along a random spatial axis (patient'
            ' motion during acquisition).',
            reference='Table 2',
        ),
        Operator(
            name='salt_pepper',
            title='Salt-and-pepper noise',
            kernel=kernels.salt_pepper,
            parameters=(
                Parameter(
                    'prob',
                    0.02,
                    0.20,
                    minimum=0.0,
                    maximum=1.0,
                    doc='voxel probability',
                ),
            ),
            summary='Sets random voxels to 0 or 1 with equal probability (dead or'
            ' hot detector elements, transfer errors).',
            reference='Table 2',
        ),
        Operator(
            name='speckle_noise',
            title='Speckle noise',
            kernel=kernels.speckle_noise,
            parameters=(_NOISE_STD,),
            summary='Multiplicative noise x (1 + n).',
            reference='Table 2',
        ),
        Operator(
            name='bias_field',
            title='Bias field',
            kernel=kernels.bias_field,
            parameters=(
                Parameter('strength', 0.10, 0.60, minimum=0.0, doc='field strength'),
            ),
            summary='Smooth multiplicative field exp(b) from a low-resolution random'
            ' grid (low-frequency intensity non-uniformity, beam hardening).',
            reference='Table 2',
        ),
        Operator(
            name='ghosting',
            title='Ghosting-like artifact',
            kernel=kernels.ghosting,
            parameters=(
                Parameter(
                    'intensity', 0.10, 0.40, minimum=0.0, doc='weight of each copy'
                ),
            ),
            options=(
                Option('num_ghosts', (2, 4), int_range, 'number of copies (range)'),
            ),
            summary='Adds 2-4 circularly shifted copies of the image along a random'
            ' axis.',
            reference='Table 2',
        ),
        Operator(
            name='intensity_shift',
            title='Intensity shift',
            kernel=kernels.intensity_shift,
            parameters=(
                Parameter('shift', 0.05, 0.40, minimum=0.0, doc='offset magnitude'),
            ),
            summary='Adds or subtracts a global offset with equal probability'
            ' (calibration drift).',
            reference='Table 2',
        ),
        Operator(
            name='contrast_reduction',
            title='Contrast reduction',
            kernel=kernels.contrast_reduction,
            parameters=(
                Parameter(
                    'blend', 0.10, 0.60, minimum=0.0, maximum=1.0, doc='blend factor'
                ),
            ),
            summary='Blends the image toward its global mean (low-contrast'
            ' acquisition, poor enhancement).',
            reference='Table 2',
        ),
        Operator(
            name='downsample',
            title='Resolution degradation',
            kernel=kernels.downsample,
            parameters=(
                Parameter('factor', 1.5, 3.0, minimum=1.0, doc='downsampling factor'),
            ),
            summary='Trilinear down- and up-sampling to the original shape (thick'
            ' slices, low-resolution protocols).',
            reference='Table 2',
        ),
        Operator(
            name='stripe',
            title='Stripe artifact',
            kernel=kernels.stripes,
            parameters=(
                Parameter('strength', 0.10, 0.60, minimum=0.0, doc='offset magnitude'),
            ),
            options=(
                Option('fraction', 0.15, fraction, 'fraction of slices with stripes'),
            ),
            summary='Adds offsets to 15% of the slices along a random axis (detector'
            ' or hardware banding).',
            reference='Table 2',
        ),
        Operator(
            name='compound',
            title='Compound corruption',
            kernel=kernels.compound,
            parameters=(
                Parameter('level', 0.03, 0.15, minimum=0.0, doc='corruption level'),
            ),
            summary='Gaussian noise (std = level), Gaussian blur (sigma = 5 level)'
            ' and bias field (strength = 3 level), in that order.',
            reference='Table 2',
            severity=identity_severity,
        ),
    )
}
"""The registry: every known corruption family by name (:func:`register_family`)."""

PAPER_FAMILIES: tuple[str, ...] = (
    'gaussian_noise',
    'blur',
    'rician_noise',
    'motion_blur',
    'salt_pepper',
    'speckle_noise',
    'bias_field',
    'ghosting',
    'intensity_shift',
    'contrast_reduction',
    'downsample',
    'stripe',
    'compound',
)
"""The paper's pool: the families of Table 2, in its order (an immutable tuple).

The default pool of every sampler, protocol and grid. Families added to
:data:`FAMILIES` are not in it."""

FAMILIES.update({operator.name: operator for operator in CT_PHYSICS_OPERATORS})

POOLS: dict[str, tuple[str, ...]] = {
    'paper': PAPER_FAMILIES,
    'ct_physics': CT_PHYSICS_FAMILIES,
}
"""Named pools, accepted wherever a list of families is (``families='ct_physics'``).

``'paper'`` acts on the normalised image (after CTNormalize); ``'ct_physics'``
(:mod:`torchio_ramp.ct_physics`) on Hounsfield units, before it."""

FAMILY_NAMES: tuple[str, ...] = PAPER_FAMILIES
"""The default pool, the same tuple as :data:`PAPER_FAMILIES`.

Not a listing of the registry: ``tuple(FAMILIES)`` names every registered
family, including those added after import."""


def register_family(operator: Operator) -> Operator:
    """Add a corruption family to the registry (not to the paper's pool).

    The family can then be named wherever a family is accepted
    (``RampCorrupt(families=...)``, ``StressProtocol(families=...)``,
    ``ramp-stress run --families``, ``RandomCorruption(name)``); no default
    changes.

    Raises:
        ValueError: If a family of that name is already registered.

    Example:
        >>> import dataclasses
        >>> harder = dataclasses.replace(FAMILIES['blur'], name='strong_blur')
        >>> _ = register_family(harder)
        >>> severity_grid(['strong_blur'], levels=[0.25])
        [('strong_blur', 0.25)]
        >>> unregister_family('strong_blur')
    """
    if operator.name in FAMILIES:
        raise ValueError(f'a corruption family {operator.name!r} is already registered')
    FAMILIES[operator.name] = operator
    return operator


def unregister_family(name: str) -> None:
    """Remove a family added with :func:`register_family`.

    Raises:
        ValueError: If ``name`` is not registered or is one of the paper's.

    Example:
        >>> unregister_family('blur')
        Traceback (most recent call last):
        ...
        ValueError: 'blur' is one of the paper's families and cannot be removed
    """
    if name in PAPER_FAMILIES:
        message = f"{name!r} is one of the paper's families and cannot be removed"
        raise ValueError(message)
    if name not in FAMILIES:
        raise ValueError(f'no corruption family {name!r} is registered')
    del FAMILIES[name]


def check_families(
    names: Iterable[str] | None,
    argument: str | None = 'families',
) -> tuple[str, ...]:
    """Validate family names against the registry; ``None`` means the paper's pool.

    A pool name of :data:`POOLS` (``'paper'``, ``'ct_physics'``) stands for
    its families.

    Raises:
        ValueError: Naming ``argument`` (unless ``None``), the unknown or
            repeated name and the valid ones.

    Example:
        >>> check_families(['blur', 'stripe'])
        ('blur', 'stripe')
        >>> check_families('ct_physics')[:2]
        ('lowdose_noise', 'dose_modulation')
    """
    if names is None:
        return PAPER_FAMILIES
    if isinstance(names, str):
        names = [names]
    names = tuple(family for name in names for family in POOLS.get(name, (name,)))
    prefix = '' if argument is None else f'{argument}: '
    for name in names:
        if name not in FAMILIES:
            message = (
                f'{prefix}unknown corruption family {name!r};'
                f' valid names: {", ".join(FAMILIES)} (pools: {", ".join(POOLS)})'
            )
            raise ValueError(message)
    if len(set(names)) != len(names):
        raise ValueError(f'{prefix}repeated family names in {list(names)}')
    return names


def pool_domain(names: Iterable[str], argument: str = 'families') -> str:
    """The intensity domain shared by registered families (``Operator.domain``).

    Raises:
        ValueError: If the pool mixes families on Hounsfield units with
            families on normalised images: they belong to two stages, before
            and after :class:`~torchio_ramp.CTNormalize`.

    Example:
        >>> pool_domain(['blur', 'stripe']), pool_domain(POOLS['ct_physics'])
        ('normalized', 'hu')
        >>> pool_domain(['blur', 'ring'])
        Traceback (most recent call last):
        ...
        ValueError: families: 'ring' acts on Hounsfield units (before CTNormalize) and 'blur' on normalised images (after it); use one pool per stage
    """  # noqa: E501
    names = check_families(names, argument)
    hu = [name for name in names if FAMILIES[name].domain == 'hu']
    normalized = [name for name in names if FAMILIES[name].domain != 'hu']
    if hu and normalized:
        message = (
            f'{argument}: {hu[0]!r} acts on Hounsfield units (before CTNormalize)'
            f' and {normalized[0]!r} on normalised images (after it); use one'
            ' pool per stage'
        )
        raise ValueError(message)
    return 'hu' if hu else 'normalized'


def severity_grid(
    families: Iterable[str] | None = None,
    levels: Sequence[float] = SEVERITY_LEVELS,
) -> list[tuple[str, float]]:
    """Every ``(family, level)`` pair of the evaluation grid, family-major.

    Args:
        families: Registered family names (default: :data:`PAPER_FAMILIES`).
        levels: Severity levels (default: the paper's five).

    Example:
        >>> len(severity_grid()) == len(PAPER_FAMILIES) * len(SEVERITY_LEVELS)
        True
        >>> severity_grid(['blur'], levels=[0.05, 0.25])
        [('blur', 0.05), ('blur', 0.25)]
    """
    return [
        (family, float(level))
        for family in check_families(families)
        for level in levels
    ]


def severity_table(
    levels: Sequence[float] = SEVERITY_LEVELS,
    families: Iterable[str] | None = None,
) -> list[dict[str, object]]:
    """Rows ``{family, parameter, level -> value}`` for documentation.

    One row per parameter of each family of ``families`` (registered names or
    a pool name; default: :data:`PAPER_FAMILIES`).

    Example:
        >>> row = severity_table()[0]
        >>> row['family'], row['parameter'], row[0.05], row[0.25]
        ('gaussian_noise', 'std', 0.02, 0.2)
    """
    rows: list[dict[str, object]] = []
    for family in (FAMILIES[name] for name in check_families(families)):
        values = [family.severity(family, level) for level in levels]
        for parameter in family.parameters:
            row: dict[str, object] = {
                'family': family.name,
                'parameter': parameter.name,
            }
            row.update(
                {
                    level: round(v[parameter.name], 4)
                    for level, v in zip(levels, values, strict=True)
                }
            )
            rows.append(row)
    return rows
