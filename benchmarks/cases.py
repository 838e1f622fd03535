"""What the benchmarks measure: every operator and pipeline, in one place.

An :class:`OperatorCase` bundles, for one RAMP operator, the kernel with its
parameters (the middle of each training range), our deterministic TorchIO
transform, the plain-torch reference and TorchIO's closest built-in. A
:class:`PipelineCase` is a RAMP pipeline with its TorchIO-built counterpart.
Adding a row to the tables is adding one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import references
import torch
import torchio as tio
from torchio_equivalents import TORCHIO_EQUIVALENTS
from torchio_equivalents import Equivalent
from torchio_equivalents import TorchIORamp
from torchio_equivalents import TorchIORampCorrupt

from torchio_ramp import Corruption
from torchio_ramp import CTIntensity
from torchio_ramp import DenseElastic
from torchio_ramp import LateralityFlip
from torchio_ramp import Ramp
from torchio_ramp import RampCorrupt
from torchio_ramp import kernels
from torchio_ramp.families import FAMILIES
from torchio_ramp.intensity_ops import INTENSITY_OPERATIONS
from torchio_ramp.operators import Operator
from torchio_ramp.phantoms import make_phantom

HU_WINDOW = (-200.0, 300.0)
ELASTIC = {'alpha': 80.0, 'sigma': 10.0}
FLIP = {'axes': (0,)}


def middle_parameters(operator: Operator) -> dict[str, Any]:
    """Kernel keywords at the middle of every training range (options default).

    Example:
        >>> from torchio_ramp.families import FAMILIES
        >>> middle_parameters(FAMILIES['blur'])
        {'sigma': 1.5}
    """
    values = {p.name: (p.low + p.high) / 2 for p in operator.parameters}
    return {**values, **operator.default_options()}


@dataclass(frozen=True)
class OperatorCase:
    """One operator: our kernel and transform, the reference, TorchIO's.

    Args:
        name: Operator name (a family, an intensity operation, ``elastic`` or
            ``flip``).
        stage: ``'corruption'``, ``'intensity'`` or ``'spatial'``.
        parameters: Keywords of the kernel and of the reference.
        kernel: Our kernel ``kernel(x, generator=..., **parameters)``, or
            ``None`` when the operator exists only as a transform (flip).
        transform: Seed -> our deterministic transform with ``parameters``.
        torchio: TorchIO's closest built-in, or ``None``.
    """

    name: str
    stage: str
    parameters: dict[str, Any]
    kernel: Callable[..., torch.Tensor] | None
    transform: Callable[[int], tio.Transform]
    torchio: Equivalent | None

    @property
    def reference(self) -> Callable[..., torch.Tensor] | None:
        """The plain-torch reference, or ``None`` for a family without one."""
        return references.REFERENCES.get(self.name)

    def run_kernel(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        if self.kernel is None:
            raise ValueError(f'{self.name} has no kernel')
        generator = torch.Generator().manual_seed(seed)
        return self.kernel(x, generator=generator, **self.parameters)

    def run_reference(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        if self.reference is None:
            raise ValueError(f'{self.name} has no plain-torch reference')
        generator = torch.Generator().manual_seed(seed)
        return self.reference(x, generator=generator, **self.parameters)

    def torchio_transform(self, **kwargs: Any) -> tio.Transform | None:
        if self.torchio is None:
            return None
        return self.torchio.build(self.parameters, **kwargs)


def _registry_case(name: str, stage: str) -> OperatorCase:
    """A family (``Corruption``) or an intensity operation (``CTIntensity``)."""
    registry, deterministic = {
        'corruption': (FAMILIES, Corruption),
        'intensity': (INTENSITY_OPERATIONS, CTIntensity),
    }[stage]
    parameters = middle_parameters(registry[name])
    return OperatorCase(
        name=name,
        stage=stage,
        parameters=parameters,
        kernel=registry[name].kernel,
        transform=lambda seed: deterministic(name, parameters=parameters, seed=seed),
        torchio=TORCHIO_EQUIVALENTS.get(name),
    )


def operator_cases() -> list[OperatorCase]:
    """Every registered family, every intensity operation, elastic and flip.

    Example:
        >>> [case.name for case in operator_cases()][-2:]
        ['elastic', 'flip']
    """
    # families on Hounsfield units (ct_physics) have their own script, ct_physics.py
    normalized = [name for name in FAMILIES if FAMILIES[name].domain == 'normalized']
    cases = [_registry_case(name, 'corruption') for name in normalized]
    cases += [_registry_case(name, 'intensity') for name in INTENSITY_OPERATIONS]
    cases.append(
        OperatorCase(
            name='elastic',
            stage='spatial',
            parameters=dict(ELASTIC),
            kernel=kernels.elastic_deform,
            transform=lambda seed: DenseElastic(**ELASTIC, seed=seed),
            torchio=TORCHIO_EQUIVALENTS['elastic'],
        )
    )
    cases.append(
        OperatorCase(
            name='flip',
            stage='spatial',
            parameters=dict(FLIP),
            kernel=None,
            transform=lambda seed: LateralityFlip(**FLIP),
            torchio=TORCHIO_EQUIVALENTS['flip'],
        )
    )
    return cases


def optional_class(module: str, name: str) -> type | None:
    """``module.name`` if that module can be imported and has it, else ``None``.

    Example:
        >>> optional_class('torchio_ramp', 'Ramp').__name__
        'Ramp'
        >>> optional_class('torchio_ramp.no_such_module', 'Ramp') is None
        True
    """
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as error:
        if error.name is not None and module.startswith(error.name):
            return None
        raise
    except AttributeError:
        return None


@dataclass(frozen=True)
class PipelineCase:
    """A RAMP pipeline and its TorchIO-built counterpart.

    Args:
        name: Row label.
        build: Returns our pipeline, or ``None`` when it is not available
            (e.g. ``torchio_ramp.batch`` does not exist yet).
        torchio: Returns the same pipeline from TorchIO built-ins, or ``None``.
        batch_size: ``0`` for per-subject transforms (called on a
            ``tio.Subject``); ``B > 0`` for batched modules called on a
            ``(B, C, D, H, W)`` tensor (time reported per patch).
        target_ms: Target median per patch on one thread (ms), if any.
        floor_target: Target median as a multiple of one ``torch.randn`` of
            the patch in the same run, if any.
        missing: Why ``build`` may return ``None`` (for the tables).
    """

    name: str
    build: Callable[[], Any]
    torchio: Callable[[], tio.Transform] | None = None
    batch_size: int = 0
    target_ms: float | None = None
    floor_target: float | None = None
    missing: str = ''


def _batch_ramp_corrupt() -> Any:
    cls = optional_class('torchio_ramp.batch', 'BatchRampCorrupt')
    return None if cls is None else cls()


PIPELINES: list[PipelineCase] = [
    PipelineCase(
        'RampCorrupt()',
        RampCorrupt,
        TorchIORampCorrupt,
        target_ms=25,
        floor_target=2.5,
    ),
    PipelineCase('Ramp()', Ramp, TorchIORamp, target_ms=40, floor_target=4),
    PipelineCase(
        'BatchRampCorrupt() (CPU, batch 2)',
        _batch_ramp_corrupt,
        batch_size=2,
        missing='torchio_ramp.batch.BatchRampCorrupt not available',
    ),
]
"""The pipelines timed per 128^3 patch; a batched path is one more entry."""


def make_patch(
    shape: tuple[int, int, int],
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised phantom CT patch ``(1, *shape)`` float32 and its uint8 label.

    The phantom has 1 mm voxels and is windowed to :data:`HU_WINDOW` and mapped
    to ``[0, 1]``, as ``CTNormalize`` does.

    Example:
        >>> image, label = make_patch((16, 16, 16))
        >>> image.shape, image.dtype, label.dtype
        (torch.Size([1, 16, 16, 16]), torch.float32, torch.uint8)
    """
    phantom = make_phantom(shape, spacing=(1.0, 1.0, 1.0), seed=seed)
    hu = torch.from_numpy(phantom.hu).float()
    low, high = HU_WINDOW
    image = hu.clamp_(low, high).sub_(low).div_(high - low)[None].contiguous()
    label = torch.from_numpy(phantom.label())[None].contiguous()
    return image, label


def make_subject(image: torch.Tensor, label: torch.Tensor | None = None) -> tio.Subject:
    """A subject with ``ct`` (and ``label`` when given), identity affine."""
    images: dict[str, Any] = {'ct': tio.ScalarImage(tensor=image)}
    if label is not None:
        images['label'] = tio.LabelMap(tensor=label)
    return tio.Subject(**images)
