"""Shared contract of every kernel: shapes, batching and random numbers.

A kernel is a pure function ``kernel(x, *, <parameters>, generator=None)``:

- ``x`` is one image ``(C, D, H, W)`` or a batch ``(B, C, D, H, W)`` of floating
  values in ``[0, 1]``; the result has the same shape, dtype and device, is a new
  tensor (the input is never modified) and is clipped to ``[0, 1]``.
- Randomness comes only from ``generator``. Random numbers are drawn on the
  generator's device and then moved to ``x.device``, so a CPU generator seeded
  with the same value gives the same result for CPU and CUDA tensors. A CUDA
  generator is faster on the GPU but draws a different stream.
- Non-finite input and values outside ``[0, 1]`` (such as raw Hounsfield
  units) are refused with an :class:`IntensityError`: one reduction
  per call (:func:`check_intensities`), skipped only inside
  :func:`inputs_checked`, where a composite transform has checked its input.
- Kernels that take ``out=`` write their result into that tensor (shaped
  like ``x``) and return it; ``out=x`` overwrites the input, for callers that
  own it (a composite's intermediate image): this saves a volume of memory.
- A batch is ``B`` independent images: :func:`batched` runs the single-image
  kernel once per sample, with per-sample parameters when a parameter is given
  as a list (or 1-D tensor) of length ``B`` (tuples are single values, such as
  ranges or grids), and per-sample generators when ``generator`` is a list.
  With one generator the samples draw from it in order, so
  ``kernel(x[None])[0]`` equals ``kernel(x)`` for the same seed.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

import torch

SPATIAL_DIMS = (-3, -2, -1)

KernelT = TypeVar('KernelT', bound=Callable[..., torch.Tensor])

TOLERANCE = 1e-5
"""Slack allowed around ``[0, 1]`` when checking that an image is normalised."""

NORMALIZE_HINT = (
    'RAMP operators expect intensities normalised to [0, 1]; put'
    ' CTNormalize(hu_range=...) first, e.g.'
    ' tio.Compose([CTNormalize(), Ramp()])'
)


class IntensityError(ValueError):
    """Non-finite values, or values outside ``[0, 1]``, reached an operator.

    Every public entry (kernels, registry operators, transforms, the batched
    corruption) raises this error with one message format:
    ``'<owner>: image "<name>" <problem>. <hint>'``.

    Attributes:
        owner: The kernel, operator or transform that refused the image.
        image_name: The image (``'x'`` for a kernel's argument).
        problem: What is wrong, e.g. ``'contains NaN or Inf values'``.
        hint: What to do about it.
    """

    def __init__(self, owner: str, image_name: str, problem: str, hint: str):
        self.owner = owner
        self.image_name = image_name
        self.problem = problem
        self.hint = hint
        super().__init__(f'{owner}: image "{image_name}" {problem}. {hint}'.strip())

    def renamed(self, owner: str, image_name: str) -> IntensityError:
        """The same problem, reported for another owner and image name."""
        return IntensityError(owner, image_name, self.problem, self.hint)


def check_volume(x: torch.Tensor, name: str = 'x') -> None:
    """Raise a ``ValueError`` unless ``x`` is a non-empty floating 4-D or 5-D tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, not {type(x).__name__}')
    if x.ndim not in (4, 5):
        message = (
            f'{name} must have shape (C, D, H, W) or (B, C, D, H, W),'
            f' but it has shape {tuple(x.shape)}'
        )
        raise ValueError(message)
    if not x.is_floating_point():
        raise ValueError(f'{name} must be a floating tensor, not {x.dtype}')
    if x.numel() == 0:
        raise ValueError(f'{name} is empty: it has shape {tuple(x.shape)}')


_INPUTS_CHECKED = contextvars.ContextVar('torchio_ramp_inputs_checked', default=False)


@contextlib.contextmanager
def inputs_checked() -> Iterator[None]:
    """Skip :func:`check_intensities` inside the block (this thread only).

    For composites that checked their input on entry: their children only
    see that input and the ``[0, 1]`` outputs of kernels, so checking again
    before every operator would cost one reduction each and find nothing.
    Never wrap user input that was not checked.

    Example:
        >>> with inputs_checked():
        ...     check_intensities(torch.tensor([5.0]))  # not checked here
        >>> check_intensities(torch.tensor([5.0]))
        Traceback (most recent call last):
        ...
        torchio_ramp.kernels.base.IntensityError: kernel: image "x" has values in [5, 5], outside [0, 1]. RAMP operators expect intensities normalised to [0, 1]; put CTNormalize(hu_range=...) first, e.g. tio.Compose([CTNormalize(), Ramp()])
    """  # noqa: E501
    token = _INPUTS_CHECKED.set(True)
    try:
        yield
    finally:
        _INPUTS_CHECKED.reset(token)


def check_intensities(
    data: torch.Tensor,
    image_name: str = 'x',
    owner: str = 'kernel',
    *,
    normalized: bool = True,
) -> None:
    """Refuse NaN/Inf and, if ``normalized``, values outside ``[0, 1]``.

    The check is one reduction: an integer :func:`torch.aminmax` of the bit
    patterns for images in ``[0, 1]`` (:func:`_in_unit_interval`), a sum when
    only finiteness is required (:func:`_sum_is_finite`). When these cannot
    decide, a floating :func:`torch.aminmax` gives the exact answer (a NaN
    anywhere makes both extremes NaN, an Inf makes one of them infinite). The
    slower :func:`torch.isfinite` pass runs only to word the error. Integer
    tensors are always finite, so only their range is checked.

    Args:
        data: The image.
        image_name: Its name in the message.
        owner: The kernel, operator or transform, in the message.
        normalized: Also require values in ``[0, 1]`` (up to
            :data:`TOLERANCE`).

    Raises:
        ValueError: If ``data`` is empty.
        IntensityError: If it holds non-finite or (when ``normalized``)
            out-of-range values.

    Example:
        >>> try:
        ...     check_intensities(torch.tensor([0.0, float('nan')]), owner='demo')
        ... except IntensityError as error:
        ...     print(error.owner, error.problem)
        demo contains NaN or Inf values (1 of 2 voxels)
    """
    if data.numel() == 0:
        message = f'{owner}: image "{image_name}" is empty (shape {tuple(data.shape)})'
        raise ValueError(message)
    if _INPUTS_CHECKED.get():
        return
    if normalized and _in_unit_interval(data):
        return
    if not normalized and _sum_is_finite(data):
        return
    low, high = (float(v) for v in torch.aminmax(data))
    if normalized:
        if low >= -TOLERANCE and high <= 1 + TOLERANCE:
            return
    elif math.isfinite(low) and math.isfinite(high):
        return
    if not (math.isfinite(low) and math.isfinite(high)):
        count = int((~torch.isfinite(data)).sum()) if data.is_floating_point() else 0
        problem = f'contains NaN or Inf values ({count} of {data.numel()} voxels)'
        hint = (
            'Repair or exclude the scan (ramp-prep refuses such CTs unless'
            ' --repair-nonfinite is given)'
        )
        if normalized:
            hint = f'{hint}; {NORMALIZE_HINT}'
    else:
        problem = f'has values in [{low:.6g}, {high:.6g}], outside [0, 1]'
        hint = NORMALIZE_HINT
    raise IntensityError(owner, image_name, problem, hint)


_SAME_SIZE_INTEGER = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


@functools.cache
def _unit_limit(dtype: torch.dtype) -> int:
    """Bit pattern of the largest ``dtype`` value not above ``1 + TOLERANCE``."""
    integer = _SAME_SIZE_INTEGER[dtype]
    limit = torch.tensor(1 + TOLERANCE, dtype=torch.float64).to(dtype)
    bits = int(limit.view(integer))
    return bits - 1 if float(limit) > 1 + TOLERANCE else bits


def _in_unit_interval(data: torch.Tensor) -> bool:
    """Whether every value is certainly finite and in ``[+0, 1 + TOLERANCE]``.

    Decided on the bit patterns, read as signed integers of the same size:
    a float with a clear sign bit is a non-negative integer, ordered as the
    float, and NaN and +Inf lie above every finite value. One integer
    ``aminmax`` costs half of the floating one, which has to propagate NaN.
    ``False`` means "not certain" (negative zero, values just below 0 within
    the tolerance, other dtypes, lazily negated views): the caller then runs
    the exact check.

    Example:
        >>> _in_unit_interval(torch.tensor([0.0, 0.5, 1.0]))
        True
        >>> _in_unit_interval(torch.tensor([0.5, float('nan')]))
        False
    """
    integer = _SAME_SIZE_INTEGER.get(data.dtype)
    if integer is None or data.is_neg():  # a lazily negated view has no bits
        return False
    low, high = torch.aminmax(data.view(integer))
    return int(low) >= 0 and int(high) <= _unit_limit(data.dtype)


def _sum_is_finite(data: torch.Tensor) -> bool:
    """Whether ``data`` certainly holds no NaN or Inf: its sum is finite.

    A NaN or Inf makes the sum non-finite; a finite sum therefore proves that
    every value is finite. A non-finite sum (also an overflow of finite
    values) means "not certain": the caller runs the exact check. One sum
    costs a third of an ``aminmax``.
    """
    if not data.is_floating_point():
        return True
    return math.isfinite(float(data.sum()))


DOMAINS = ('normalized', 'hu')
"""Intensity domains of kernels: ``[0, 1]`` after CTNormalize, or raw HU."""

HU_LIMITS = (-32768.0, 32767.0)
"""Values a CT in Hounsfield units may hold: the int16 range it is stored in
(padding such as -3024 or -32768 included; below -1000 HU is air)."""

HU_HINT = (
    'CT-physics operators act on Hounsfield units before CTNormalize, e.g.'
    " tio.Compose([RampCorrupt(families='ct_physics'), CTNormalize(), Ramp()])"
)


def check_hu(
    data: torch.Tensor,
    image_name: str = 'x',
    owner: str = 'kernel',
) -> None:
    """Refuse NaN/Inf, values outside :data:`HU_LIMITS` and normalised images.

    An image whose values all lie in ``[0, 1]`` (and are not all equal) is
    a normalised image, not a CT in Hounsfield units (where air is -1000).
    One reduction, as :func:`check_intensities`.

    Raises:
        IntensityError: Naming the owner and image and what is wrong.

    Example:
        >>> check_hu(torch.tensor([-1000.0, 40.0, 700.0]))
        >>> try:
        ...     check_hu(torch.tensor([0.0, 0.5, 1.0]), owner='demo')
        ... except IntensityError as error:
        ...     print(error.problem)
        has values in [0, 1], a normalised image, not Hounsfield units
    """
    if data.numel() == 0:
        message = f'{owner}: image "{image_name}" is empty (shape {tuple(data.shape)})'
        raise ValueError(message)
    low, high = (float(v) for v in torch.aminmax(data))
    if not (math.isfinite(low) and math.isfinite(high)):
        count = int((~torch.isfinite(data)).sum()) if data.is_floating_point() else 0
        problem = f'contains NaN or Inf values ({count} of {data.numel()} voxels)'
        raise IntensityError(owner, image_name, problem, 'Repair or exclude the scan')
    if low < HU_LIMITS[0] or high > HU_LIMITS[1]:
        problem = (
            f'has values in [{low:.6g}, {high:.6g}], outside the Hounsfield range'
            f' [{HU_LIMITS[0]:g}, {HU_LIMITS[1]:g}]'
        )
        raise IntensityError(owner, image_name, problem, HU_HINT)
    if 0 <= low < high <= 1:
        problem = 'has values in [0, 1], a normalised image, not Hounsfield units'
        raise IntensityError(owner, image_name, problem, HU_HINT)


def require_normalized(
    data: torch.Tensor,
    image_name: str,
    transform_name: str,
) -> torch.Tensor:
    """Return ``data`` as a floating tensor, or raise if it is not in ``[0, 1]``.

    RAMP operators work in normalised intensity space. Raw HU values, NaN or
    Inf would otherwise give a silently wrong result after clipping.

    Raises:
        IntensityError: Naming the transform, the image and what is wrong, and
            suggesting :class:`~torchio_ramp.CTNormalize`.

    Example:
        >>> require_normalized(torch.full((1, 2, 2, 2), 0.5), 'ct', 'demo').dtype
        torch.float32
    """
    if not data.is_floating_point():
        data = data.float()
    check_intensities(data, image_name, transform_name)
    return data


def batched(kernel: KernelT | None = None, *, domain: str = 'normalized') -> KernelT:
    """Let a single-image kernel accept a batch with per-sample parameters.

    Used as ``@batched`` (images in ``[0, 1]``, :func:`check_intensities`) or
    ``@batched(domain='hu')`` (images in Hounsfield units, :func:`check_hu`).

    Args:
        kernel: Function of one ``(C, D, H, W)`` image and keyword parameters.
        domain: ``'normalized'`` or ``'hu'``: which input check runs.

    Returns:
        A function that also accepts ``(B, C, D, H, W)``. For a batch, every
        keyword whose value is a list or 1-D tensor of length ``B`` is split
        per sample; ``generator`` may be a single generator or one per sample.

    Example:
        >>> import torch
        >>> from torchio_ramp.kernels import gaussian_noise
        >>> x = torch.full((2, 1, 4, 4, 4), 0.5)
        >>> y = gaussian_noise(x, std=[0.0, 0.1], generator=torch.Generator())
        >>> bool((y[0] == 0.5).all()), bool((y[1] != 0.5).any())
        (True, True)
    """

    if domain not in DOMAINS:
        raise ValueError(f'domain must be one of {DOMAINS}, not {domain!r}')
    if kernel is None:
        return functools.partial(batched, domain=domain)  # type: ignore[return-value]
    check = check_hu if domain == 'hu' else check_intensities

    @functools.wraps(kernel)
    def wrapper(x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        check_volume(x)
        check(x, 'x', kernel.__name__)
        given = kwargs.get('out')
        if given is not None:
            _check_out(given, x, kernel.__name__)
        if x.ndim == 4:
            for key, value in kwargs.items():
                if isinstance(value, list):
                    message = (
                        f'{kernel.__name__}: "{key}" is a per-sample list, which'
                        ' needs a batch (B, C, D, H, W); x has shape'
                        f' {tuple(x.shape)}'
                    )
                    raise ValueError(message)
            return kernel(x, **kwargs)
        batch_size = x.shape[0]
        generators = kwargs.pop('generator', None)
        if not isinstance(generators, list):
            generators = [generators] * batch_size
        elif len(generators) != batch_size:
            message = (
                f'{kernel.__name__}: got {len(generators)} generators for a'
                f' batch of {batch_size}'
            )
            raise ValueError(message)
        kwargs.pop('out', None)
        out = torch.empty_like(x) if given is None else given
        for i in range(batch_size):
            sample_kwargs = {
                key: _select(value, i, batch_size, key, kernel.__name__)
                for key, value in kwargs.items()
            }
            if given is not None:
                sample_kwargs['out'] = given[i]
                kernel(x[i], generator=generators[i], **sample_kwargs)
            else:
                out[i] = kernel(x[i], generator=generators[i], **sample_kwargs)
        return out

    return wrapper  # type: ignore[return-value]


def _check_out(out: Any, x: torch.Tensor, name: str) -> None:
    """``out`` must be a tensor with ``x``'s shape, dtype and device."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f'{name}: out must be a torch.Tensor, not {type(out).__name__}')
    if out.shape != x.shape or out.dtype != x.dtype or out.device != x.device:
        message = (
            f'{name}: out must match x (shape {tuple(x.shape)}, {x.dtype},'
            f' {x.device}), not shape {tuple(out.shape)}, {out.dtype}, {out.device}'
        )
        raise ValueError(message)


def _select(value: Any, index: int, batch_size: int, key: str, name: str) -> Any:
    is_vector = isinstance(value, torch.Tensor) and value.ndim == 1
    if not (is_vector or isinstance(value, list)):
        return value
    if len(value) != batch_size:
        message = (
            f'{name}: per-sample parameter "{key}" has {len(value)} values'
            f' for a batch of {batch_size}'
        )
        raise ValueError(message)
    item = value[index]
    return item.item() if isinstance(item, torch.Tensor) and item.ndim == 0 else item


def _draw(
    sampler: Callable[..., torch.Tensor],
    x: torch.Tensor,
    generator: torch.Generator | None,
    shape: Sequence[int] | None,
) -> torch.Tensor:
    """Draw on the generator's device (CPU/CUDA agreement), deliver on x's."""
    size = tuple(x.shape if shape is None else shape)
    device = x.device if generator is None else generator.device
    values = sampler(size, generator=generator, device=device, dtype=x.dtype)
    return values.to(x.device)


def randn(
    x: torch.Tensor,
    generator: torch.Generator | None,
    shape: Sequence[int] | None = None,
) -> torch.Tensor:
    """Standard normal numbers shaped like ``x`` (or ``shape``) on ``x.device``."""
    return _draw(torch.randn, x, generator, shape)


def rand(
    x: torch.Tensor,
    generator: torch.Generator | None,
    shape: Sequence[int] | None = None,
) -> torch.Tensor:
    """Uniform ``[0, 1)`` numbers shaped like ``x`` (or ``shape``) on ``x.device``."""
    return _draw(torch.rand, x, generator, shape)


def uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    """One uniform number in ``[low, high)`` from ``generator``."""
    device = 'cpu' if generator is None else generator.device
    u = torch.rand((), generator=generator, device=device).item()
    return low + (high - low) * u


def randint(generator: torch.Generator | None, low: int, high: int) -> int:
    """One integer in ``[low, high]`` (both ends included) from ``generator``."""
    device = 'cpu' if generator is None else generator.device
    value = torch.randint(low, high + 1, (), generator=generator, device=device)
    return int(value.item())


def random_axis(x: torch.Tensor, generator: torch.Generator | None) -> int:
    """A spatial axis (0, 1 or 2) drawn uniformly among those longer than 1.

    Returns ``-1`` when every spatial axis has a single voxel.
    """
    candidates = [axis for axis in range(3) if x.shape[-3 + axis] > 1]
    if not candidates:
        return -1
    return candidates[randint(generator, 0, len(candidates) - 1)]


def spatial_dim(axis: int) -> int:
    """Tensor dimension (negative index) of spatial ``axis`` in 0, 1, 2."""
    if axis not in (0, 1, 2):
        raise ValueError(f'axis must be 0, 1 or 2, not {axis}')
    return axis - 3
