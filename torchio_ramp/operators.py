"""What an operator is: a kernel, its sampled parameters and its fixed options.

Every corruption family (paper Table 2) and every CT intensity operation (Table 1)
is one :class:`Operator` entry in a registry. The transforms, the multi-corruption
sampler and the stress test all read the registries, so an operator is defined
once: its kernel, the training range of each continuous parameter, its fixed
options and, for corruption families, the map from a severity level to
parameters.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import torch
import torchio as tio

from .arguments import parse_size
from .kernels.base import DOMAINS
from .kernels.base import IntensityError
from .kernels.ct_geometry import axial_axis

SEVERITY_LEVELS: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20, 0.25)
"""The paper's five evaluation severity levels (section 3.5)."""


def _is_finite_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(value)


@dataclass(frozen=True)
class Parameter:
    """A continuous parameter sampled uniformly from a range during training.

    Args:
        name: Keyword of the kernel.
        low: Low end of the training range (the paper's default).
        high: High end of the training range.
        minimum: Smallest valid value (``None``: unbounded).
        maximum: Largest valid value (``None``: unbounded).
        doc: One line for the documentation.
    """

    name: str
    low: float
    high: float
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ''

    def clamp(self, value: float) -> float:
        """Restrict ``value`` to the parameter's valid domain."""
        if self.minimum is not None:
            value = max(value, self.minimum)
        if self.maximum is not None:
            value = min(value, self.maximum)
        return value

    def check(self, value: object, owner: str) -> float:
        """Return ``value`` as a float or raise a ``ValueError`` naming it."""
        if not _is_finite_number(value):
            message = (
                f'{owner}: parameter "{self.name}" must be a finite number,'
                f' not {value!r}'
            )
            raise ValueError(message)
        if self.clamp(float(value)) != value:
            message = (
                f'{owner}: parameter "{self.name}" must be in'
                f' [{self.minimum}, {self.maximum}], not {value}'
            )
            raise ValueError(message)
        return float(value)


@dataclass(frozen=True)
class Option:
    """A fixed keyword of the kernel with a default value and a validator.

    Args:
        name: Keyword of the kernel.
        default: The paper's value.
        validate: Function returning the normalised value or raising
            ``ValueError`` with a message that names the option.
        doc: One line for the documentation.
    """

    name: str
    default: Any
    validate: Callable[[Any, str], Any]
    doc: str = ''


def linear_severity(operator: Operator, level: float) -> dict[str, float]:
    """Map ``level`` linearly onto each parameter's training range.

    Level 0.05 gives the low end and 0.25 the high end; other levels extrapolate
    linearly and are clamped to each parameter's valid domain.
    """
    first, last = SEVERITY_LEVELS[0], SEVERITY_LEVELS[-1]
    fraction = (level - first) / (last - first)
    return {
        p.name: p.clamp(p.low + fraction * (p.high - p.low))
        for p in operator.parameters
    }


def identity_severity(operator: Operator, level: float) -> dict[str, float]:
    """Use the level itself as the value of every parameter (compound)."""
    return {p.name: p.clamp(level) for p in operator.parameters}


@dataclass(frozen=True)
class Operator:
    """One registered operator.

    Args:
        name: Registry key, e.g. ``'gaussian_noise'``.
        title: Human-readable name, e.g. ``'Gaussian noise'``.
        kernel: Pure function ``kernel(x, *, **parameters, **options,
            generator)`` from :mod:`torchio_ramp.kernels`.
        parameters: Continuous parameters with their training ranges.
        options: Fixed keywords of the kernel with their defaults.
        summary: What the operator simulates and how (one or two sentences).
        reference: Where the paper specifies it, e.g. ``'Table 2'``.
        probability: Default probability of application inside
            :class:`~torchio_ramp.RampIntensity` (Table 1); ``None`` for
            corruption families.
        severity: Rule mapping a severity level to parameter values.
        domain: Intensities the kernel takes: ``'normalized'`` (``[0, 1]``,
            after :class:`~torchio_ramp.CTNormalize`, every paper operator) or
            ``'hu'`` (Hounsfield units, before it: the CT-physics families,
            whose kernels also take the voxel ``spacing`` in mm).
    """

    name: str
    title: str
    kernel: Callable[..., torch.Tensor]
    parameters: tuple[Parameter, ...]
    summary: str
    reference: str
    options: tuple[Option, ...] = ()
    probability: float | None = None
    severity: Callable[[Operator, float], dict[str, float]] = field(
        default=linear_severity
    )
    domain: str = 'normalized'

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            message = (
                f'Operator "{self.name}": domain must be one of {DOMAINS},'
                f' not {self.domain!r}'
            )
            raise ValueError(message)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def default_options(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    def parameters_at(self, level: float) -> dict[str, Any]:
        """Kernel keywords for a severity ``level`` (options at their defaults).

        Example:
            >>> from torchio_ramp.families import FAMILIES
            >>> FAMILIES['gaussian_noise'].parameters_at(0.25)
            {'std': 0.2}
        """
        if not _is_finite_number(level):
            raise ValueError(f'level must be a finite number, not {level!r}')
        if level < 0:
            raise ValueError(f'level must be non-negative, not {level}')
        return {**self.severity(self, float(level)), **self.default_options()}

    def check_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validate kernel keywords; fill missing options with their defaults.

        Raises:
            ValueError: An unknown keyword, a missing parameter or a value out
                of its domain, with a message naming the operator and keyword.
        """
        owner = f'Operator "{self.name}"'
        known = set(self.parameter_names) | set(self.option_names)
        unknown = sorted(set(arguments) - known)
        if unknown:
            message = (
                f'{owner} has no parameter {unknown[0]!r}; valid names: {sorted(known)}'
            )
            raise ValueError(message)
        checked: dict[str, Any] = {}
        for parameter in self.parameters:
            if parameter.name not in arguments:
                raise ValueError(f'{owner}: missing parameter "{parameter.name}"')
            checked[parameter.name] = parameter.check(arguments[parameter.name], owner)
        for option in self.options:
            value = arguments.get(option.name, option.default)
            checked[option.name] = option.validate(value, f'{owner}: "{option.name}"')
        return checked

    @functools.cached_property
    def writes_out(self) -> bool:
        """Whether the kernel takes ``out=`` (may write into its input)."""
        return 'out' in inspect.signature(self.kernel).parameters

    @functools.cached_property
    def reads_labels(self) -> bool:
        """Whether the kernel reads the label map (``labels=``, never written)."""
        return 'labels' in inspect.signature(self.kernel).parameters

    @functools.cached_property
    def _takes_slice_axis(self) -> bool:
        return 'slice_axis' in inspect.signature(self.kernel).parameters

    def labels_of(self, subject: Any) -> torch.Tensor | None:
        """The label map of a ``tio.Subject`` if the kernel reads one, else ``None``.

        The subject's single :class:`torchio.LabelMap` (its data tensor, read
        only by the kernel); ``None`` without one (a kernel that needs it says
        so).

        Raises:
            ValueError: The kernel reads labels and the subject has several
                label maps (naming them).
        """
        if not self.reads_labels:
            return None
        names = [
            name
            for name, image in subject.get_images_dict(intensity_only=False).items()
            if isinstance(image, tio.LabelMap)
        ]
        if not names:
            return None
        if len(names) > 1:
            message = (
                f'Operator "{self.name}" reads the organs of the subject\'s label'
                f' map and needs one tio.LabelMap; found {len(names)}:'
                f' {", ".join(names)}'
            )
            raise ValueError(message)
        return subject[names[0]].data

    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        out: torch.Tensor | None = None,
        spacing: Sequence[float] | None = None,
        affine: Any = None,
        labels: torch.Tensor | None = None,
        **arguments: Any,
    ) -> torch.Tensor:
        """Apply the kernel with validated ``arguments`` (options default).

        Only the registry's parameters and options are accepted; structural
        keywords of a kernel (e.g. ``axis``) are for direct kernel calls.
        ``out``: write the result into this tensor (it may be ``x``, which is
        then overwritten), for kernels that take it (:attr:`writes_out`).
        The scan's geometry reaches the kernels of the ``'hu'`` domain only
        (the others work in voxels): ``spacing`` (mm; default their 1 mm);
        ``affine`` (the image's 4 x 4 voxel-to-world matrix), from which the
        axial slice axis is found (the voxel axis closest to the
        superior-inferior one; default the last axis; a volume without axial
        slices is refused); ``labels``, the label map on the image's grid,
        for kernels that read organs (:attr:`reads_labels`; never written).

        Example:
            >>> import torch
            >>> from torchio_ramp.families import FAMILIES
            >>> x = torch.full((1, 4, 4, 4), 0.5)
            >>> y = FAMILIES['contrast_reduction'](x, blend=0.5)
            >>> FAMILIES['blur'](x, sigma=-1.0)
            Traceback (most recent call last):
            ...
            ValueError: Operator "blur": parameter "sigma" must be in [0.0, None], not -1.0
        """  # noqa: E501
        arguments = self.check_arguments(arguments)
        if out is not None:
            if not self.writes_out:
                raise TypeError(f'Operator "{self.name}" does not take out=')
            arguments['out'] = out
        if self.domain == 'hu':
            if spacing is not None:
                arguments['spacing'] = tuple(float(s) for s in spacing)
            if affine is not None and self._takes_slice_axis:
                try:
                    arguments['slice_axis'] = axial_axis(affine)
                except ValueError as error:
                    raise ValueError(f'Operator "{self.name}": {error}') from None
            if labels is not None and self.reads_labels:
                arguments['labels'] = labels
        try:
            return self.kernel(x, generator=generator, **arguments)
        except IntensityError as error:
            raise error.renamed(f'Operator "{self.name}"', error.image_name) from None


# Validators for options ---------------------------------------------------------

MAX_SEED = 2**64 - 1
"""Largest seed a ``torch.Generator`` accepts."""


def seed_value(value: Any, name: str = 'seed') -> int:
    """Validate a seed: an integer in ``[0, 2**64 - 1]``.

    Example:
        >>> seed_value(2**64)
        Traceback (most recent call last):
        ...
        ValueError: seed must be an integer in [0, 2**64 - 1], not 18446744073709551616
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f'{name} must be an integer in [0, 2**64 - 1], not {value!r}')
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f'{name} must be an integer in [0, 2**64 - 1], not {value}')
    return int(value)


def positive_int(value: Any, name: str) -> int:
    """Validate a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive integer, not {value!r}')
    return value


def int_range(value: Any, name: str) -> int | tuple[int, int]:
    """Validate a positive integer or an inclusive range ``(low, high)``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return positive_int(value, name)
    try:
        low, high = value
    except (TypeError, ValueError) as error:
        message = f'{name} must be an integer or a pair (low, high), not {value!r}'
        raise ValueError(message) from error
    low, high = positive_int(low, name), positive_int(high, name)
    if low > high:
        raise ValueError(f'{name} must satisfy low <= high, not {value!r}')
    return (low, high)


def fraction(value: Any, name: str) -> float:
    """Validate a number in ``(0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a number in (0, 1], not {value!r}')
    if not 0 < value <= 1:
        raise ValueError(f'{name} must be in (0, 1], not {value}')
    return float(value)


def positive_number(value: Any, name: str) -> float:
    """Validate a non-negative number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f'{name} must be a non-negative number, not {value!r}')
    return float(value)


def int_triplet(value: Any, name: str) -> tuple[int, int, int]:
    """Validate one positive integer or three (a grid size).

    An :class:`Option` validator: :func:`~torchio_ramp.arguments.parse_size`.
    """
    return parse_size(value, name)
