"""One mechanism for every registered operator, TorchIO style.

:class:`Corruption` and :class:`CTIntensity` are the deterministic transforms:
they hold an operator name, explicit kernel parameters and a seed, and are the
only ones recorded in ``subject.history``, so ``subject.get_composed_history()``
replays a result bit for bit. :class:`RandomCorruption` and
:class:`RandomCTIntensity` sample the parameters from ranges (per image) and a
seed, then delegate to them. The named classes (``RandomGaussianNoise``,
``RandomSharpen``, ...) are these random transforms bound to one operator.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

import torch
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from ..families import FAMILIES
from ..intensity_ops import INTENSITY_OPERATIONS
from ..kernels.base import IntensityError
from ..operators import Operator
from ..operators import seed_value
from .shell import LightCopy
from .shell import owned

_BASE_ARGUMENTS = frozenset(
    inspect.signature(tio.Transform.__init__).parameters.keys() - {'self'}
)


def delegated_arguments(transform: tio.Transform) -> dict[str, Any]:
    """Base arguments for the child a transform delegates to.

    The child runs on the parent's already copied subject, so it neither copies
    it again nor keeps originals (``keep`` is the parent's job).
    """
    return {**transform._get_base_args(), 'copy': False, 'keep': None}


def _is_per_image(values: Any) -> bool:
    return (
        isinstance(values, Mapping)
        and bool(values)
        and all(isinstance(v, Mapping) for v in values.values())
    )


def _for_image(values: Any, image_name: str, what: str, owner: str) -> Any:
    if not isinstance(values, Mapping):
        return values
    if image_name not in values:
        message = f'{owner}: no {what} for image "{image_name}"; got {sorted(values)}'
        raise KeyError(message)
    return values[image_name]


class OperatorTransform(LightCopy, tio.IntensityTransform):
    """Deterministic application of a registered operator (base class).

    Subclasses set ``registry`` (name -> :class:`~torchio_ramp.operators.Operator`)
    and ``kind`` (the name of the first argument, recorded in the history).
    """

    registry: ClassVar[Mapping[str, Operator]]
    kind: ClassVar[str]

    def __init__(
        self,
        operator: str,
        parameters: Mapping[str, Any] | None = None,
        seed: int | Mapping[str, int] = 0,
        level: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.operator = self.lookup(operator)
        if level is not None:
            if parameters is not None:
                message = f'{self.name}: pass either "parameters" or "level", not both'
                raise ValueError(message)
            parameters = self.operator.parameters_at(level)
        if parameters is None:
            parameters = {}
        if _is_per_image(parameters):
            self.parameters = {
                image: self.operator.check_arguments(values)
                for image, values in parameters.items()
            }
        else:
            self.parameters = self.operator.check_arguments(parameters)
        self.seed = self._check_seed(seed)
        setattr(self, self.kind, self.operator.name)
        self.args_names = [self.kind, 'parameters', 'seed']

    @classmethod
    def lookup(cls, name: str) -> Operator:
        """The registered operator called ``name`` (``ValueError`` if unknown)."""
        if name not in cls.registry:
            message = (
                f'{cls.__name__}: unknown {cls.kind} {name!r};'
                f' valid names: {", ".join(cls.registry)}'
            )
            raise ValueError(message)
        return cls.registry[name]

    def _check_seed(self, seed: Any) -> int | dict[str, int]:
        if isinstance(seed, Mapping):
            return {k: seed_value(v, f'{self.name}: seed') for k, v in seed.items()}
        return seed_value(seed, f'{self.name}: seed')

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        for image_name, image in self.get_images_dict(subject).items():
            parameters = self.parameters
            if _is_per_image(parameters):
                parameters = _for_image(parameters, image_name, 'parameters', self.name)
            seed = _for_image(self.seed, image_name, 'seed', self.name)
            data = image.data if image.data.is_floating_point() else image.data.float()
            if data.numel() == 0:
                shape = tuple(data.shape)
                message = f'{self.name}: image "{image_name}" is empty (shape {shape})'
                raise ValueError(message)
            generator = torch.Generator().manual_seed(seed)
            # an intermediate image of this call may be overwritten
            target = data if owned(data) and self.operator.writes_out else None
            try:  # the kernel checks its input (one reduction)
                out = self.operator(
                    data,
                    generator=generator,
                    out=target,
                    spacing=image.spacing,
                    affine=image.affine,
                    labels=self.operator.labels_of(subject),
                    **parameters,
                )
            except IntensityError as error:
                raise error.renamed(self.name, image_name) from None
            image.set_data(out)
        return subject

    def _get_reproducing_arguments(self) -> dict[str, Any]:
        arguments = super()._get_reproducing_arguments()
        # Replaying the history must not modify the subject it is applied to
        arguments['copy'] = True
        return arguments


class Corruption(OperatorTransform):
    """Apply one corruption family with explicit parameters (deterministic).

    Args:
        family: Name in :data:`~torchio_ramp.families.FAMILIES`.
        parameters: Kernel parameters, e.g. ``{'std': 0.1}``, or a mapping from
            image name to such parameters (as recorded by the random
            transforms). Options left out take their defaults.
        seed: Seed of the random numbers (noise, axes, shifts); an int or a
            mapping from image name to int.
        level: Severity level instead of ``parameters`` (see
            :data:`~torchio_ramp.operators.SEVERITY_LEVELS`).
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import Corruption
        >>> ct = tio.ScalarImage(tensor=torch.full((1, 8, 8, 8), 0.5))
        >>> subject = tio.Subject(ct=ct)
        >>> noisy = Corruption('gaussian_noise', {'std': 0.11}, seed=0)(subject)
        >>> graded = Corruption('gaussian_noise', level=0.15, seed=0)(subject)
        >>> torch.equal(noisy.ct.data, graded.ct.data)  # level 0.15 is std 0.11
        True
        >>> noisy.history[0].name
        'Corruption'
    """

    registry = FAMILIES
    kind = 'family'

    def __init__(
        self,
        family: str,
        parameters: Mapping[str, Any] | None = None,
        seed: int | Mapping[str, int] = 0,
        level: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            family, parameters=parameters, seed=seed, level=level, **kwargs
        )


class CTIntensity(OperatorTransform):
    """Apply one CT intensity operation with explicit parameters (deterministic).

    Args:
        operation: Name in :data:`~torchio_ramp.intensity_ops.INTENSITY_OPERATIONS`.
        parameters: Kernel parameters, e.g. ``{'gamma1': 1.2, 'gamma2': 0.9}``,
            or a mapping from image name to such parameters.
        seed: Seed of the random numbers (e.g. warp coefficients).
        **kwargs: See :class:`torchio.transforms.Transform`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import CTIntensity
        >>> image = tio.ScalarImage(tensor=torch.full((1, 4, 4, 4), 0.25))
        >>> out = CTIntensity('gamma', parameters={'gamma1': 2.0, 'gamma2': 1.0})(image)
        >>> float(out.data.max())
        0.0625
    """

    registry = INTENSITY_OPERATIONS
    kind = 'operation'

    def __init__(
        self,
        operation: str,
        parameters: Mapping[str, Any] | None = None,
        seed: int | Mapping[str, int] = 0,
        **kwargs: Any,
    ):
        super().__init__(operation, parameters=parameters, seed=seed, **kwargs)


class RandomOperatorTransform(LightCopy, RandomTransform, tio.IntensityTransform):
    """Sample an operator's parameters per image and apply it (base class).

    Keyword arguments named like the operator's parameters are ranges
    ``(low, high)`` (or one number ``d``, read as TorchIO's ``_parse_range``
    does); keywords named like its options are fixed values; the rest go to
    :class:`torchio.transforms.Transform`.
    """

    deterministic: ClassVar[type[OperatorTransform]]
    bound_operator: ClassVar[str | None] = None

    def __init_subclass__(cls, operator: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if operator is None:
            return
        spec = cls.deterministic.lookup(operator)
        cls.bound_operator = operator
        cls.__doc__ = _bound_docstring(cls, spec)
        cls.__signature__ = _bound_signature(spec)  # type: ignore[attr-defined]

    def __init__(self, operator: str | None = None, **kwargs: Any):
        if self.bound_operator is not None:
            if operator not in (None, self.bound_operator):
                message = (
                    f'{type(self).__name__} always applies {self.bound_operator!r};'
                    f' use {self.deterministic.__name__}-style generic classes for'
                    f' {operator!r}'
                )
                raise ValueError(message)
            operator = self.bound_operator
        if operator is None:
            raise ValueError(f'{type(self).__name__}: the operator name is required')
        spec = self.deterministic.lookup(operator)
        ranges, options, base = self._split_arguments(spec, kwargs)
        super().__init__(**base)
        self.operator = spec
        self.ranges = {
            p.name: _finite_range(
                self._parse_range(
                    ranges.get(p.name, (p.low, p.high)),
                    p.name,
                    min_constraint=p.minimum,
                    max_constraint=p.maximum,
                ),
                f'{type(self).__name__}: "{p.name}"',
            )
            for p in spec.parameters
        }
        owner = f'{type(self).__name__}'
        self.options = {
            o.name: o.validate(options.get(o.name, o.default), f'{owner}: "{o.name}"')
            for o in spec.options
        }

    def _split_arguments(
        self,
        spec: Operator,
        kwargs: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        ranges = {k: v for k, v in kwargs.items() if k in spec.parameter_names}
        options = {k: v for k, v in kwargs.items() if k in spec.option_names}
        base = {k: v for k, v in kwargs.items() if k not in ranges and k not in options}
        unknown = sorted(set(base) - _BASE_ARGUMENTS)
        if unknown:
            valid = [*spec.parameter_names, *spec.option_names]
            message = (
                f'{type(self).__name__} got an unexpected argument {unknown[0]!r};'
                f' parameters of {spec.name!r}: {valid}'
            )
            raise TypeError(message)
        return ranges, options, base

    def get_params(self) -> tuple[dict[str, Any], int]:
        """Sample one set of kernel keywords and a seed."""
        values = {
            name: self.sample_uniform(*bounds) for name, bounds in self.ranges.items()
        }
        return {**values, **self.options}, self._get_random_seed()

    def sample(
        self,
        image_names: list[str],
    ) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """Kernel keywords and a seed for each image, in the order given."""
        parameters: dict[str, dict[str, Any]] = {}
        seeds: dict[str, int] = {}
        for image_name in image_names:
            parameters[image_name], seeds[image_name] = self.get_params()
        return parameters, seeds

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        image_names = list(self.get_images_dict(subject))
        if not image_names:
            return subject
        parameters, seeds = self.sample(image_names)
        arguments = delegated_arguments(self)
        transform = self.deterministic(
            self.operator.name,
            parameters=parameters,
            seed=seeds,
            **arguments,
        )
        return transform(subject)


class RandomCorruption(RandomOperatorTransform):
    """Apply a corruption family with parameters sampled from ranges.

    Args:
        family: Name in :data:`~torchio_ramp.families.FAMILIES` (omitted in the
            named subclasses such as :class:`~torchio_ramp.RandomGaussianNoise`).
        **kwargs: Parameter ranges (default: the paper's training ranges),
            options, and the arguments of :class:`torchio.transforms.Transform`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import RandomCorruption
        >>> transform = RandomCorruption('stripe', strength=(0.1, 0.3), p=1)
        >>> ct = tio.ScalarImage(tensor=torch.full((1, 8, 8, 8), 0.5))
        >>> transform(tio.Subject(ct=ct)).history[0].name
        'Corruption'
    """

    deterministic = Corruption

    def __init__(self, family: str | None = None, **kwargs: Any):
        super().__init__(family, **kwargs)


class RandomCTIntensity(RandomOperatorTransform):
    """Apply a CT intensity operation with parameters sampled from ranges.

    Args:
        operation: Name in
            :data:`~torchio_ramp.intensity_ops.INTENSITY_OPERATIONS` (omitted in
            the named subclasses such as :class:`~torchio_ramp.RandomSharpen`).
        **kwargs: Parameter ranges (default: the paper's), options, and the
            arguments of :class:`torchio.transforms.Transform`.

    Example:
        >>> import torch
        >>> import torchio as tio
        >>> from torchio_ramp import RandomCTIntensity
        >>> transform = RandomCTIntensity('window_level', width_scale=(0.9, 1.1))
        >>> subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
        >>> transform(subject).history[0].name
        'CTIntensity'
    """

    deterministic = CTIntensity

    def __init__(self, operation: str | None = None, **kwargs: Any):
        super().__init__(operation, **kwargs)


def _finite_range(bounds: tuple[float, float], name: str) -> tuple[float, float]:
    if not all(math.isfinite(value) for value in bounds):
        raise ValueError(f'{name} must be a range of finite numbers, not {bounds!r}')
    return bounds


def _bound_signature(spec: Operator) -> inspect.Signature:
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter(p.name, keyword, default=(p.low, p.high))
        for p in spec.parameters
    ]
    parameters += [
        inspect.Parameter(o.name, keyword, default=o.default) for o in spec.options
    ]
    parameters.append(inspect.Parameter('kwargs', inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(parameters)


def _bound_docstring(cls: type, spec: Operator) -> str:
    summary = (cls.__doc__ or spec.title).strip()
    source = 'Reference' if spec.domain == 'hu' else 'Paper'
    lines = [summary, '', f'{spec.summary} {source}: {spec.reference}.', '']
    if spec.domain == 'hu':
        lines += [
            'Acts on the CT in Hounsfield units, before'
            ' :class:`~torchio_ramp.CTNormalize`, with the image spacing in mm.',
            '',
        ]
    lines.append('Args:')
    for p in spec.parameters:
        lines.append(
            f'    {p.name}: Range of the {p.doc}, sampled uniformly per image'
            f' (default ``({p.low}, {p.high})``).'
        )
    for o in spec.options:
        lines.append(f'    {o.name}: Fixed {o.doc} (default ``{o.default!r}``).')
    lines.append('    **kwargs: See :class:`torchio.transforms.Transform`.')
    name = cls.__name__
    example = (
        'torch.rand(1, 16, 16, 2) * 1000 - 500'  # HU
        if spec.domain == 'hu'
        else 'torch.rand(1, 16, 16, 16)'
    )
    lines += [
        '',
        'Example:',
        '    >>> import torch',
        '    >>> import torchio as tio',
        f'    >>> from torchio_ramp import {name}',
        f'    >>> ct = tio.ScalarImage(tensor={example})',
        '    >>> subject = tio.Subject(ct=ct)',
        f'    >>> transformed = {name}()(subject)',
        '    >>> replayed = transformed.get_composed_history()(subject)',
        '    >>> torch.equal(replayed.ct.data, transformed.ct.data)',
        '    True',
    ]
    return '\n'.join(lines)
