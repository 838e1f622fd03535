"""The corruption test protocol of the paper's section 3.5.

For each held-out subject: the clean volume plus every ``(family, level)``
setting of a grid (default: the paper's pool
:data:`~torchio_ramp.families.PAPER_FAMILIES` x its five levels), each
generated on the fly from the normalised CT, the label unchanged.

A corrupted volume is ``CT (HU) -> CTNormalize(hu_range) -> FAMILIES[family]``
at ``parameters_at(level)``, with random numbers from a CPU
``torch.Generator`` seeded by :meth:`StressProtocol.seed_of`. It is therefore
the same on any machine, in any order and on any shard, and equals
``Corruption(family, level=level, seed=protocol.seed_of(...))`` applied to the
normalised subject. A family acting on Hounsfield units (the ``ct_physics``
pool) comes before the window instead: ``CT (HU) -> FAMILIES[family] (with the
voxel spacing) -> CTNormalize(hu_range)``. :meth:`StressProtocol.volumes`
yields the volumes one at a time, so at most one corrupted copy of the CT
lives in memory.

Two severity protocols (recorded with every results file and summary):

* ``'paired'`` (version 2, the default): common random numbers. The levels of
  one family share one seed, :func:`family_seed` (base seed, subject,
  family), so every random draw other than the severity parameter (noise
  field, axis, sign, ghost shifts, stripe slices, bias field) is the same at
  every level; only the parameter grows. A subject's Dice then follows the
  severity, not the luck of each level's draw.
* ``'independent'`` (version 1): each ``(family, level)`` setting draws its own
  numbers, seeded by :func:`setting_seed` (base seed, subject, family,
  level).

Results of different protocols are never merged or compared.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import torch
import torchio as tio

from ..families import FAMILIES
from ..families import check_families
from ..operators import SEVERITY_LEVELS
from ..transforms.normalization import DEFAULT_HU_RANGE
from ..transforms.normalization import CTNormalize
from ..transforms.normalization import normalize_window

CLEAN = 'clean'
"""Family name of the clean (uncorrupted) setting."""

PROTOCOLS: dict[str, int] = {'paired': 2, 'independent': 1}
"""Severity protocols and their versions (see the module docstring)."""

DEFAULT_PROTOCOL = 'paired'
"""The protocol of :class:`StressProtocol` unless another is asked for."""

LEGACY_PROTOCOL = 'independent'
"""The protocol of results written before protocols were recorded."""


def check_protocol(name: str) -> str:
    """A protocol name of :data:`PROTOCOLS`.

    Example:
        >>> check_protocol('paired')
        'paired'
    """
    if name not in PROTOCOLS:
        message = (
            f'protocol: unknown severity protocol {name!r}; valid names:'
            f' {", ".join(PROTOCOLS)}'
        )
        raise ValueError(message)
    return name


def describe_protocol(name: str) -> str:
    """``'<name> v<version>'``.

    Example:
        >>> describe_protocol('paired')
        'paired v2'
    """
    return f'{name} v{PROTOCOLS[name]}'


@dataclass(frozen=True)
class Setting:
    """One evaluation condition: clean, or a corruption family at a level.

    Attributes:
        family: ``'clean'`` or a name in
            :data:`~torchio_ramp.families.FAMILIES`.
        level: Severity level (0 for clean).

    Example:
        >>> Setting('blur', 0.15).name, Setting.clean().name
        ('blur@0.15', 'clean')
    """

    family: str
    level: float = 0.0

    @classmethod
    def clean(cls) -> Setting:
        """The clean setting."""
        return cls(CLEAN, 0.0)

    @property
    def is_clean(self) -> bool:
        """Whether this is the clean setting."""
        return self.family == CLEAN

    @property
    def name(self) -> str:
        """``'clean'`` or ``'<family>@<level>'``."""
        return CLEAN if self.is_clean else f'{self.family}@{self.level:g}'


def setting_seed(base_seed: int, subject_id: str, family: str, level: float) -> int:
    """Seed of one corrupted volume: a stable 63-bit hash of the setting.

    ``sha256(f'{base_seed}/{subject_id}/{family}/{level:.6g}')``, first eight
    bytes, big-endian, shifted right by one bit. Python's ``hash()`` is
    salted per process and would differ between shards, so it is not used.

    Example:
        >>> setting_seed(0, 's0001', 'blur', 0.05)
        8984647872288268648
    """
    key = f'{base_seed}/{subject_id}/{family}/{level:.6g}'
    digest = hashlib.sha256(key.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'big') >> 1


def family_seed(base_seed: int, subject_id: str, family: str) -> int:
    """Seed shared by every level of one family (the paired protocol).

    ``sha256(f'{base_seed}/{subject_id}/{family}/paired')`` as in
    :func:`setting_seed`.

    Example:
        >>> family_seed(0, 's0001', 'blur') == family_seed(0, 's0001', 'blur')
        True
    """
    key = f'{base_seed}/{subject_id}/{family}/paired'
    digest = hashlib.sha256(key.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'big') >> 1


def _check_levels(levels: Iterable[float]) -> tuple[float, ...]:
    checked = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, (int, float)):
            raise ValueError(f'levels: {level!r} is not a number')
        if not math.isfinite(level) or level <= 0:
            raise ValueError(f'levels must be positive numbers, not {level}')
        checked.append(float(level))
    if not checked:
        raise ValueError('levels: give at least one severity level')
    if len(set(checked)) != len(checked):
        raise ValueError(f'levels: repeated values in {checked}')
    return tuple(checked)


@dataclass(frozen=True)
class StressProtocol:
    """The settings grid and how each corrupted volume is made.

    Args:
        families: Registered corruption families (default: the paper's
            pool :data:`~torchio_ramp.families.PAPER_FAMILIES`, in its order).
        levels: Severity levels (default: 0.05, 0.10, 0.15, 0.20, 0.25);
            levels beyond 0.25 extrapolate the severity map (stress harder
            than training).
        seed: Base seed; the seed of each volume is :func:`setting_seed`.
        hu_range: Hounsfield window of :class:`~torchio_ramp.CTNormalize`;
            must be the one the model was trained with.
        protocol: ``'paired'`` (common random numbers across the levels of a
            family; the default) or ``'independent'`` (one draw per
            setting), see the module docstring.

    Example:
        >>> import torch
        >>> protocol = StressProtocol(families=['blur'], levels=[0.1, 0.2])
        >>> [s.name for s in protocol.settings]
        ['clean', 'blur@0.1', 'blur@0.2']
        >>> ct = torch.rand(1, 8, 8, 8)
        >>> [(s.name, tuple(x.shape)) for s, x in protocol.volumes(ct, 'toy')][-1]
        ('blur@0.2', (1, 8, 8, 8))
    """

    families: Sequence[str] | None = None
    levels: Sequence[float] = SEVERITY_LEVELS
    seed: int = 0
    hu_range: tuple[float, float] = DEFAULT_HU_RANGE
    protocol: str = DEFAULT_PROTOCOL
    _normalize: CTNormalize = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'families', check_families(self.families))
        object.__setattr__(self, 'levels', _check_levels(self.levels))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f'seed must be a non-negative integer, not {self.seed!r}')
        if self.seed < 0:
            raise ValueError(f'seed must be a non-negative integer, not {self.seed}')
        check_protocol(self.protocol)
        normalize = CTNormalize(hu_range=self.hu_range)
        object.__setattr__(self, 'hu_range', normalize.hu_range)
        object.__setattr__(self, '_normalize', normalize)

    @property
    def corrupted_settings(self) -> tuple[Setting, ...]:
        """The ``(family, level)`` grid, family-major."""
        return tuple(Setting(f, level) for f in self.families for level in self.levels)

    @property
    def settings(self) -> tuple[Setting, ...]:
        """Clean first, then :attr:`corrupted_settings`."""
        return (Setting.clean(), *self.corrupted_settings)

    def to_dict(self) -> dict[str, Any]:
        """The arguments, JSON-friendly (recorded with every results file).

        Example:
            >>> StressProtocol(families=['blur'], levels=[0.1]).to_dict()
            {'families': ['blur'], 'levels': [0.1], 'seed': 0, 'hu_range': [-200.0, 300.0], 'protocol': 'paired', 'protocol_version': 2}
        """  # noqa: E501
        return {
            'families': list(self.families),
            'levels': list(self.levels),
            'seed': self.seed,
            'hu_range': list(self.hu_range),
            'protocol': self.protocol,
            'protocol_version': PROTOCOLS[self.protocol],
        }

    def normalize(self, subject: tio.Subject, image_name: str = 'ct') -> torch.Tensor:
        """The clean input: ``subject[image_name]`` in HU windowed to ``[0, 1]``.

        Returns:
            A float32 tensor ``(C, D, H, W)``.

        Example:
            >>> import torch, torchio as tio
            >>> ct = tio.ScalarImage(tensor=torch.tensor([[[[-1000.0, 50.0]]]]))
            >>> StressProtocol().normalize(tio.Subject(ct=ct)).flatten().tolist()
            [0.0, 0.5]
        """
        image = self._normalize(subject[image_name])
        return image.data.float()

    def seed_of(self, subject_id: str, setting: Setting) -> int:
        """Seed of ``setting`` for ``subject_id``: :func:`family_seed` (paired)
        or :func:`setting_seed` (independent).

        Example:
            >>> protocol = StressProtocol(protocol='independent')
            >>> protocol.seed_of('s0001', Setting('blur', 0.05))
            8984647872288268648
            >>> paired = StressProtocol()
            >>> paired.seed_of('s1', Setting('blur', 0.05)) == paired.seed_of(
            ...     's1', Setting('blur', 0.25))
            True
        """
        if self.protocol == 'paired':
            return family_seed(self.seed, subject_id, setting.family)
        return setting_seed(self.seed, subject_id, setting.family, setting.level)

    def corrupt(
        self,
        image: torch.Tensor,
        subject_id: str,
        setting: Setting,
        *,
        hu: torch.Tensor | None = None,
        spacing: Sequence[float] | None = None,
        affine: Any = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One volume of the protocol from the normalised clean ``image``.

        A family acting on Hounsfield units (the ``ct_physics`` pool) corrupts
        ``hu`` instead, with its ``spacing`` in mm, and the result is
        normalised with :attr:`hu_range`, as the clean image was.

        Args:
            image: Clean normalised volume ``(C, D, H, W)`` in ``[0, 1]``.
            subject_id: Identifier of the subject (part of the seed).
            setting: The setting; clean returns a copy of ``image``.
            hu: The same CT in Hounsfield units (needed by HU families).
            spacing: Its voxel spacing in mm (default 1 mm).
            affine: Its voxel-to-world matrix (the axial slice axis).
            labels: The label map, for families that read organs.

        Returns:
            A new tensor (a predictor that modifies its input in place
            cannot affect the other settings).

        Example:
            >>> import torch
            >>> protocol = StressProtocol()
            >>> x = torch.full((1, 4, 4, 4), 0.5)
            >>> a = protocol.corrupt(x, 's1', Setting('gaussian_noise', 0.1))
            >>> b = protocol.corrupt(x, 's1', Setting('gaussian_noise', 0.1))
            >>> torch.equal(a, b), torch.equal(a, x)
            (True, False)
        """
        if setting.is_clean:
            return image.clone()
        operator = FAMILIES[setting.family]
        arguments = operator.check_arguments(operator.parameters_at(setting.level))
        seed = self.seed_of(subject_id, setting)
        generator = torch.Generator().manual_seed(seed)
        if operator.domain == 'hu':
            if hu is None:
                message = (
                    f'{setting.name}: this family acts on Hounsfield units;'
                    ' pass the CT in HU as hu= (and its spacing)'
                )
                raise ValueError(message)
            hu = hu if hu.is_floating_point() else hu.float()
            out = operator(
                hu,
                generator=generator,
                spacing=spacing,
                affine=affine,
                labels=labels,
                **arguments,
            )
            return normalize_window(out, *self.hu_range)
        return operator(image, generator=generator, **arguments)

    def volumes(
        self,
        image: torch.Tensor,
        subject_id: str,
        settings: Iterable[Setting] | None = None,
        *,
        hu: torch.Tensor | None = None,
        spacing: Sequence[float] | None = None,
        affine: Any = None,
        labels: torch.Tensor | None = None,
    ) -> Iterator[tuple[Setting, torch.Tensor]]:
        """Yield ``(setting, volume)`` for every setting, one volume at a time.

        Args:
            image: Clean normalised volume ``(C, D, H, W)``.
            subject_id: Identifier of the subject.
            settings: Subset or reordering of :attr:`settings` (default: all,
                clean first). The volumes do not depend on the order.
            hu: The CT in Hounsfield units, for families acting on HU.
            spacing: Its voxel spacing in mm.
            affine: Its voxel-to-world matrix.
            labels: Its label map.

        Example:
            >>> import torch
            >>> protocol = StressProtocol(families=['stripe'], levels=[0.2])
            >>> volumes = protocol.volumes(torch.rand(1, 8, 8, 8), 's1')
            >>> [setting.name for setting, _ in volumes]
            ['clean', 'stripe@0.2']
        """
        for setting in self.settings if settings is None else settings:
            on_hu = not setting.is_clean and FAMILIES[setting.family].domain == 'hu'
            extra = (
                {'hu': hu, 'spacing': spacing, 'affine': affine, 'labels': labels}
                if on_hu
                else {}
            )
            yield setting, self.corrupt(image, subject_id, setting, **extra)
