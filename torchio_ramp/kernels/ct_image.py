"""CT corruptions exact in the image domain: reconstruction kernel, contrast phase.

* :func:`reconstruction_kernel`: FBP is linear and its kernel a radial filter
  of each projection, so by the central-slice theorem the same scan
  reconstructed with another kernel is the axial image filtered in 2-D by the
  ratio of the two kernels' modulation transfer functions, as a function of
  the radial frequency. Both are modelled as Gaussian (``MTF(f) =
  2^-(f / f50)^2``, Nickoloff and Riley 1985, Med. Phys. 12(4)); the scan's
  own kernel is the soft-tissue one
  (:data:`~.ct_geometry.SOFT_TISSUE_MTF50`).
* :func:`contrast_phase`: the organs of the label map (read, never written)
  are brought to the attenuation of another time after contrast injection,
  read off published enhancement curves (:data:`ENHANCEMENT`): each organ's
  median is moved to the curve's value, its texture and noise kept.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from collections.abc import Sequence

import torch

from .base import batched
from .ct_geometry import HU_FLOOR
from .ct_geometry import SOFT_TISSUE_MTF50
from .ct_geometry import AxialSlices

MAX_GAIN = 16.0
"""Largest amplification of a frequency by a sharper kernel."""


def kernel_gain(
    frequency: torch.Tensor, mtf50: float, native: float = SOFT_TISSUE_MTF50
) -> torch.Tensor:
    """``MTF_new(f) / MTF_native(f)`` for Gaussian MTFs, capped at :data:`MAX_GAIN`.

    Example:
        >>> gain = kernel_gain(torch.tensor([0.0, 0.35]), 0.7)
        >>> [round(float(g), 3) for g in gain]
        [1.0, 1.682]
    """
    exponent = (frequency / native).square() - (frequency / mtf50).square()
    return torch.exp2(exponent).clamp_(max=MAX_GAIN)


@batched(domain='hu')
def reconstruction_kernel(
    x: torch.Tensor,
    *,
    mtf50: float,
    native_mtf50: float = SOFT_TISSUE_MTF50,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The same scan reconstructed with a smoother or sharper kernel.

    Each axial slice is filtered by ``MTF_new(f) / MTF_native(f)``
    (:func:`kernel_gain`), ``f`` the radial spatial frequency in line pairs
    per mm of the slice's pixel grid: a sharper kernel (``mtf50`` above the
    scan's) raises edges and high-frequency noise, moving the noise power
    spectrum's peak up; a smoother one blurs and moves it down. The slice is
    padded by edge replication before the FFT. Frequencies beyond the pixel
    grid's Nyquist limit cannot be shown: at 3 mm pixels (0.17 lp/mm) kernels
    barely differ. Deterministic.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        mtf50: 50% frequency of the new kernel, lp/mm.
        native_mtf50: 50% frequency of the scan's own kernel, lp/mm.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: Unused (deterministic).

    Example:
        >>> ct = torch.zeros(1, 32, 32, 1)
        >>> ct[:, :, 16:] = 100.0
        >>> sharp = reconstruction_kernel(ct, mtf50=0.7, spacing=(0.7, 0.7, 1.0))
        >>> bool(sharp[0, 16, 16, 0] > 100)  # overshoot at the edge
        True
    """
    slices = AxialSlices.of(x, spacing, slice_axis)
    for name, value in (('mtf50', mtf50), ('native_mtf50', native_mtf50)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f'{name} must be a positive number (lp/mm), not {value!r}')
    if mtf50 == native_mtf50:
        return x.clone()
    columns = slices.columns(x).to(torch.float32)
    height, width = slices.size
    pad = 8
    images = columns.permute(2, 0, 1)[None]  # (1, S, H, W)
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode='replicate')[0]
    rows, cols = padded.shape[-2:]
    dy, dx = slices.spacing
    fy = torch.fft.fftfreq(rows, d=dy, device=x.device)
    fx = torch.fft.rfftfreq(cols, d=dx, device=x.device)
    radial = torch.hypot(fy[:, None], fx[None, :])
    gain = kernel_gain(radial, mtf50, native_mtf50)
    filtered = torch.fft.irfft2(torch.fft.rfft2(padded) * gain, s=(rows, cols))
    out = filtered[:, pad : pad + height, pad : pad + width].permute(1, 2, 0)
    return slices.volume(out.contiguous()).to(x.dtype).clamp_(min=HU_FLOOR)


ENHANCEMENT: dict[str, tuple[tuple[float, float], ...]] = {
    # (seconds after the start of injection, HU)
    'liver': (
        (0, 55),
        (20, 58),
        (30, 70),
        (45, 90),
        (70, 110),
        (100, 105),
        (180, 90),
        (300, 80),
    ),
    'spleen': (
        (0, 45),
        (20, 80),
        (30, 120),
        (45, 130),
        (70, 120),
        (100, 110),
        (180, 90),
        (300, 80),
    ),
    'kidney': (
        (0, 30),
        (20, 100),
        (30, 170),
        (45, 190),
        (70, 180),
        (100, 170),
        (180, 140),
        (300, 120),
    ),
    'heart': (
        (0, 40),
        (15, 120),
        (25, 280),
        (35, 260),
        (45, 210),
        (70, 160),
        (100, 140),
        (180, 120),
        (300, 100),
    ),
}
"""Mean attenuation (HU) of organs against time after injection.

Representative values of a standard protocol (about 1.5-2 mL/kg of
300-370 mgI/mL at 3-5 mL/s, 70 kg adult, 120 kVp), read off published curves
and rounded: blood pool (heart) and liver from Bae (2010), "Intravenous
contrast medium administration and scan timing at CT", Radiology 256(1)
(aortic peak 25-35 s, hepatic peak 60-80 s, equilibrium after 3 min);
liver and spleen unenhanced about 55 and 45 HU, portal venous 100-120
(Heiken et al. 1995, Radiology 195(2)); kidneys from Yuh and Cohan (1999),
"Different phases of renal enhancement", AJR 173(3): corticomedullary
(25-40 s), nephrographic (80-120 s), excretory (> 3 min). The colon (mostly
content) keeps its values."""


ORGAN_LABELS: dict[str, int] = {'liver': 1, 'spleen': 2, 'kidney': 3, 'heart': 4}
"""Default label value of each organ: the five-class output head's
(:data:`torchio_ramp.labels.CLASS_IDS`; kernels import nothing above them)."""


def enhancement(organ: str, delay: float) -> float:
    """HU of ``organ`` at ``delay`` seconds, linear between the curve's points.

    Example:
        >>> enhancement('liver', 0.0), enhancement('liver', 70.0)
        (55.0, 110.0)
    """
    points = ENHANCEMENT[organ]
    if delay <= points[0][0]:
        return float(points[0][1])
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if delay <= t1:
            return float(v0 + (v1 - v0) * (delay - t0) / (t1 - t0))
    return float(points[-1][1])


def _soft_mask(mask: torch.Tensor) -> torch.Tensor:
    """A 3 x 3 x 3 box average of a binary mask: a one-voxel partial volume."""
    padded = torch.nn.functional.pad(
        mask[None, None].float(), (1,) * 6, mode='replicate'
    )
    return torch.nn.functional.avg_pool3d(padded, 3, stride=1)[0, 0]


@batched(domain='hu')
def contrast_phase(
    x: torch.Tensor,
    *,
    delay: float,
    labels: torch.Tensor | None = None,
    classes: Mapping[str, int] | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The organs as in another contrast phase: ``delay`` s after injection.

    For each organ of :data:`ENHANCEMENT` present in ``labels`` (values from
    ``classes``, default the output head's: liver 1, spleen 2, kidney 3,
    heart 4), its median HU is moved to the curve's value at ``delay``
    (0: non-contrast, 25-35: arterial, 60-80: portal venous, 180+: delayed);
    the shift is spread over a one-voxel rim (partial volume). The label map
    is only read. Vessels outside the labelled organs keep their phase.
    Deterministic.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        delay: Seconds after the start of injection.
        labels: Label map ``(1, I, J, K)`` (or ``(I, J, K)``) of ``x``'s grid.
        classes: Label value of each organ (names of :data:`ENHANCEMENT`).
        spacing: Voxel spacing in mm (unused).
        slice_axis: Voxel axis across the axial slices (unused).
        generator: Unused (deterministic).

    Raises:
        ValueError: Without ``labels``, or with labels of another grid.

    Example:
        >>> ct = torch.full((1, 8, 8, 8), -100.0)
        >>> ct[:, 2:6, 2:6, 2:6] = 105.0  # a portal-venous liver
        >>> labels = (ct > 0).to(torch.uint8)
        >>> plain = contrast_phase(ct, delay=0.0, labels=labels)
        >>> round(float(plain[0, 3, 3, 3]))  # unenhanced liver
        55
    """
    AxialSlices.of(x, spacing, slice_axis)
    if labels is None:
        message = (
            'contrast_phase reads the organs from the label map: pass labels='
            ' (the subject needs one tio.LabelMap)'
        )
        raise ValueError(message)
    if not (math.isfinite(delay) and delay >= 0):
        raise ValueError(
            f'delay must be a non-negative number of seconds, not {delay!r}'
        )
    grid = labels.reshape(labels.shape[-3:]) if labels.ndim == 4 else labels
    if grid.ndim != 3 or tuple(grid.shape) != tuple(x.shape[-3:]):
        message = (
            f'labels must have the image grid {tuple(x.shape[-3:])}, not'
            f' {tuple(labels.shape)}'
        )
        raise ValueError(message)
    grid = grid.to(x.device)
    classes = dict(ORGAN_LABELS) if classes is None else dict(classes)
    shift = torch.zeros(x.shape[-3:], device=x.device)
    for organ, value in classes.items():
        if organ not in ENHANCEMENT:
            continue
        mask = grid == value
        if not bool(mask.any()):
            continue
        native = float(x[0][mask].float().median())
        shift += (enhancement(organ, delay) - native) * _soft_mask(mask)
    return x + shift.to(x.dtype)
