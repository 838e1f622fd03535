"""CT-physics corruptions simulated in the projection (sinogram) domain.

Each kernel takes a CT in Hounsfield units ``(C, I, J, K)`` (or a batch), cuts
it into axial slices along ``slice_axis`` (:mod:`.ct_geometry`; the last axis
by default, TorchIO's superior-inferior axis of a canonical image) with the
in-plane voxel spacing in mm, converts them to linear attenuation
``mu = MU_WATER (1 + HU / 1000)`` (1/mm; below -1000 HU is air, ``mu = 0``),
projects them with the parallel-beam :class:`~.projector.ParallelBeam`,
corrupts the sinogram ``p = -ln(I / I0)`` the way a scanner does, and adds the
*difference* between the reconstructions (soft-tissue kernel) of the corrupted
and the clean sinograms to the input::

    HU' = HU + 1000 / MU_WATER * (FBP(corrupt(R mu)) - FBP(R mu))

so the image keeps its resolution and only the artifact (noise, streaks,
rings, cupping, doubled edges) is added. The result is clipped below at
:data:`HU_FLOOR`. Labels are never written. Random numbers come only from
``generator`` (drawn on its device, as every kernel).

This module holds the detector and acquisition families (rings, few views,
missing angles, beam hardening, motion); the noise families live in
:mod:`.ct_noise`, metal in :mod:`.ct_metal`, and the image-domain ones
(reconstruction kernel, contrast phase) in :mod:`.ct_image`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from .base import batched
from .base import uniform
from .ct_geometry import HU_FLOOR
from .ct_geometry import MU_WATER
from .ct_geometry import SOFT_TISSUE_MTF50
from .ct_geometry import AxialSlices
from .ct_geometry import add_artifact
from .ct_geometry import axial_axis
from .ct_geometry import hu_to_mu
from .ct_geometry import mu_to_hu
from .ct_geometry import simulation
from .ct_image import contrast_phase
from .ct_image import reconstruction_kernel
from .ct_metal import metal
from .ct_noise import DEFAULT_ELECTRONIC
from .ct_noise import DEFAULT_PHOTONS
from .ct_noise import dose_modulation
from .ct_noise import lowdose_noise
from .ct_noise import noise_level
from .ct_noise import photon_starvation
from .projector import ParallelBeam
from .projector import filter_response

# Detector and beam ---------------------------------------------------------------


def ring_elements(
    beam: ParallelBeam,
    fraction: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Miscalibrated detector elements and their relative gain errors.

    ``max(1, round(fraction * n))`` of the ``n`` elements whose rays cross the
    slice's inscribed circle, with errors of random sign and magnitude in
    ``[0.5, 1]`` (relative; the kernel scales them to the ring amplitude).

    Returns:
        ``(elements, errors)``: bin indices (sorted) and errors.

    Example:
        >>> beam = ParallelBeam((32, 32), views=8)
        >>> elements, errors = ring_elements(beam, 0.1, torch.Generator())
        >>> len(elements), bool(errors.abs().min() >= 0.5)
        (3, True)
    """
    radius = min(n * s for n, s in zip(beam.shape, beam.spacing, strict=True)) / 2
    t = (torch.arange(beam.bins) - (beam.bins - 1) / 2) * beam.dt
    inside = torch.nonzero(t.abs() < radius - beam.dt).flatten()
    count = max(1, round(fraction * inside.numel()))
    device = 'cpu' if generator is None else generator.device
    order = torch.randperm(inside.numel(), generator=generator, device=device).cpu()
    elements = inside[order[:count]].sort().values
    draws = torch.rand(2, count, generator=generator, device=device).cpu()
    signs = torch.where(draws[0] < 0.5, -1.0, 1.0)
    return elements, signs * (0.5 + 0.5 * draws[1])


def ring_image(beam: ParallelBeam, row: torch.Tensor) -> torch.Tensor:
    """FBP ``(H, W)`` of a sinogram whose every view is ``row`` ``(L,)``.

    Such a sinogram reconstructs to a radially symmetric image: its profile is
    back-projected once along a radius (at a quarter of a bin) and read at
    each pixel's distance from the rotation axis, instead of a full
    back-projection.
    """
    size = max(64, 1 << math.ceil(math.log2(2 * beam.bins)))
    response = filter_response(size, 'ramp', beam.dt, SOFT_TISSUE_MTF50, 'cpu')
    spectrum = torch.fft.rfft(row.to(torch.float32), n=size)
    filtered = torch.fft.irfft(spectrum * response, n=size)[: beam.bins]
    height, width = beam.shape
    dy, dx = beam.spacing
    reach = math.hypot(height * dy, width * dx) / 2
    radius = torch.arange(0.0, reach + beam.dt, beam.dt / 4, dtype=torch.float64)
    position = radius[:, None] * beam.angles.cos()[None, :] / beam.dt
    position = (position + (beam.bins - 1) / 2).clamp_(0, beam.bins - 1)
    lower = position.floor().clamp_(max=beam.bins - 2)
    frac = (position - lower).to(torch.float32)
    lower = lower.long()
    values = filtered[lower] * (1 - frac) + filtered[lower + 1] * frac
    profile = values.sum(dim=1) * (beam.arc / beam.views)
    y = (torch.arange(height, dtype=torch.float64) - (height - 1) / 2) * dy
    x = (torch.arange(width, dtype=torch.float64) - (width - 1) / 2) * dx
    distance = torch.hypot(y[:, None], x[None, :]) / (beam.dt / 4)
    index = distance.floor().long().clamp_(max=radius.numel() - 2)
    weight = (distance - index).to(torch.float32)
    return profile[index] * (1 - weight) + profile[index + 1] * weight


@batched(domain='hu')
def ring(
    x: torch.Tensor,
    *,
    amplitude: float,
    fraction: float = 0.05,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ring artifacts from per-detector-element gain errors.

    A gain error ``g_k`` of element ``k`` offsets its attenuation by
    ``-ln(g_k)`` in every view of a full rotation (seen at ``t`` and, half a
    turn later, at ``-t``); the FBP of that sinogram is a set of full rings
    centred on the rotation axis at the elements' radii (:func:`ring_image`).
    The ring image is scaled so its largest magnitude is ``amplitude`` HU and
    is the same in every slice (a miscalibrated detector column).

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        amplitude: Peak ring magnitude in HU.
        fraction: Fraction of the elements that are miscalibrated.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: Which elements, signs and magnitudes.

    Example:
        >>> ct = torch.zeros(1, 32, 32, 2)
        >>> out = ring(ct, amplitude=20.0, generator=torch.Generator())
        >>> round(float((out - ct).abs().max()), 3)
        20.0
    """
    slices = AxialSlices.of(x, spacing, slice_axis)
    if amplitude == 0:
        return x.clone()
    beam = simulation(slices.size, slices.spacing).fine
    elements, errors = ring_elements(beam, fraction, generator)
    row = torch.zeros(beam.bins)
    row[elements] = errors
    # a 360-degree scan reads each element at t and (rotated by pi) at -t:
    # the redundant rays are averaged, every element draws a full ring
    rings = ring_image(beam, (row + row.flip(0)) / 2)
    rings *= amplitude / rings.abs().max().clamp(min=1e-12)
    columns = rings[:, :, None].expand(*slices.size, slices.count).to(x.device)
    return (x + slices.volume(columns).to(x.dtype)).clamp_(min=HU_FLOOR)


REFERENCE_DIAMETER = 200.0
"""Diameter (mm) of the water phantom cupping is defined on (the ACR phantom's)."""


@functools.cache
def cupping_per_strength() -> float:
    """Cupping (HU) of the 200 mm water phantom per unit of ``strength``.

    Measured once by simulating the phantom (2 mm pixels): the mean of the
    ring at 80-90% of the radius minus the mean within 10% of it, as the
    ACR uniformity test compares edge and centre regions.
    """
    size = 120
    spacing = 2.0
    coordinates = (torch.arange(size) - (size - 1) / 2) * spacing
    radius = torch.hypot(*torch.meshgrid(coordinates, coordinates, indexing='ij'))
    water = torch.where(radius <= REFERENCE_DIAMETER / 2, 0.0, -1000.0)
    probe = 1e-3  # small: the result stays far from the HU floor, where it is linear
    out = _hardened(water[None, :, :, None], probe, 0.0, 200.0, (spacing,) * 3, 2)
    half = REFERENCE_DIAMETER / 2
    rim = (radius >= 0.8 * half) & (radius <= 0.9 * half)
    centre = radius <= 0.1 * half
    image = out[0, :, :, 0]
    return float(image[rim].mean() - image[centre].mean()) / probe


def _hardened(x, strength, bone_weight, bone_threshold, spacing, slice_axis):
    slices = AxialSlices.of(x, spacing, slice_axis)
    plan = simulation(slices.size, slices.spacing, str(x.device))
    columns = slices.columns(x).to(torch.float32)
    bone = (columns - bone_threshold).clamp_(min=0).mul_(MU_WATER / 1000)
    both = torch.cat([hu_to_mu(columns), bone], dim=2)
    p, p_bone = plan.project(both).chunk(2, dim=2)  # one product for both
    # the correction is exact at the slice's mean path through the body
    crossing = p > 0.05
    count = crossing.sum(dim=(0, 1), keepdim=True).clamp_(min=1)
    reference = (p * crossing).sum(dim=(0, 1), keepdim=True) / count
    error = p * (p - reference) + bone_weight * p_bone.square()
    return add_artifact(x, slices, plan.reconstruct(error.mul_(-strength)))


@batched(domain='hu')
def beam_hardening(
    x: torch.Tensor,
    *,
    cupping: float,
    bone_weight: float = 10.0,
    bone_threshold: float = 200.0,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Residual beam hardening: an error of the scanner's water correction.

    A polychromatic beam hardens along its path, so the measured attenuation
    grows slower than linearly. The scanner's water correction is calibrated
    for a typical path; one off by ``strength`` leaves
    ``p' = p - strength (p (p - p_ref) + bone_weight p_b^2)``, where ``p_ref``
    is the slice's mean attenuation over the rays crossing the body (exact
    there: no global shift) and ``p_b`` the line integral of the attenuation
    above that of ``bone_threshold`` HU (bone hardens the beam more than
    water). ``strength`` is set by ``cupping``: the centre-to-edge difference
    it leaves on a 200 mm water phantom (:func:`cupping_per_strength`), the
    quantity of the ACR uniformity test (which allows 5 HU). The water term
    cups the body (longer central paths are under-corrected), more in a larger
    one; the bone term darkens the bands between dense structures.
    Deterministic.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        cupping: Cupping of the 200 mm water phantom, HU.
        bone_weight: Extra hardening of the bone part.
        bone_threshold: HU above which attenuation counts as bone.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: Unused (deterministic).

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 6:26, 6:26] = 0.0
        >>> out = beam_hardening(ct, cupping=40.0, spacing=(8.0, 8.0, 5.0))
        >>> bool(out[0, 16, 16, 0] < out[0, 8, 16, 0])  # cupping
        True
    """
    AxialSlices.of(x, spacing, slice_axis)
    if cupping == 0:
        return x.clone()
    strength = cupping / cupping_per_strength()
    return _hardened(x, strength, bone_weight, bone_threshold, spacing, slice_axis)


# Acquisition ---------------------------------------------------------------------


def _view_weighted_artifact(
    x: torch.Tensor,
    slices: AxialSlices,
    weights: torch.Tensor,
) -> torch.Tensor:
    """``x`` plus ``FBP_w(R mu) - FBP(R mu)``: views reweighted by ``weights``.

    A reconstruction from a subset of the full scan's views is its FBP with the
    missing views weighted 0 and the others by ``pi / (arc covered per view)``
    relative to the full scan; FBP is linear, so the artifact is the FBP of
    the sinogram weighted by ``weights - 1``.
    """
    plan = simulation(slices.size, slices.spacing, str(x.device))
    p = plan.project(hu_to_mu(slices.columns(x)))
    weights = (weights - 1).to(device=x.device, dtype=p.dtype)
    return add_artifact(x, slices, plan.reconstruct(p.mul_(weights[:, None, None])))


def _full_views(slices: AxialSlices) -> int:
    return simulation(slices.size, slices.spacing).coarse.views


@batched(domain='hu')
def sparse_view(
    x: torch.Tensor,
    *,
    step: float,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reconstruction from few views, ``step`` degrees apart: fanned streaks.

    ``n = round(180 / step)`` views of the full scan (the simulation's
    views), the nearest to equal spacing from a random first view, are
    reconstructed by FBP; the difference to the reconstruction from all views
    is added. No change when ``n`` is at least the full number of views.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        step: Angle between views in degrees.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: The first view.

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 10:22, 12:20] = 800.0
        >>> out = sparse_view(ct, step=20.0, generator=torch.Generator())
        >>> bool((out - ct)[:, :4].abs().max() > 10)  # streaks reach the air
        True
    """
    slices = AxialSlices.of(x, spacing, slice_axis)
    full = _full_views(slices)
    views = max(2, round(180 / step)) if step > 0 else full
    if views >= full:
        return x.clone()
    stride = full / views
    offset = uniform(generator, 0.0, stride)
    kept = (offset + torch.arange(views) * stride).long().clamp_(max=full - 1)
    weights = torch.zeros(full, dtype=torch.float64)
    weights[kept] = full / views  # each kept view stands for ``stride`` views
    return _view_weighted_artifact(x, slices, weights)


@batched(domain='hu')
def limited_angle(
    x: torch.Tensor,
    *,
    wedge: float,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reconstruction with a missing wedge of ``wedge`` degrees: smeared edges.

    The views of a random ``wedge``-degree arc of the half rotation are
    missing; FBP of the remaining arc (normalised to it, so the mean
    attenuation is kept) replaces the full reconstruction. A tomosynthesis or
    C-arm geometry rather than a diagnostic CT failure: registered, but
    outside the ``ct_physics`` pool.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        wedge: Missing arc in degrees, in ``[0, 180)``.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: Where the wedge starts.

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 10:22, 10:22] = 0.0
        >>> out = limited_angle(ct, wedge=60.0, generator=torch.Generator())
        >>> bool((out - ct).abs().max() > 50)
        True
    """
    slices = AxialSlices.of(x, spacing, slice_axis)
    full = _full_views(slices)
    missing = min(round(wedge / 180 * full), full - 2)
    if missing <= 0:
        return x.clone()
    start = int(uniform(generator, 0.0, 1.0) * full)
    # the kept views span pi - wedge: weighted pi / arc, the mean is kept
    weights = torch.full((full,), full / (full - missing), dtype=torch.float64)
    weights[(start + torch.arange(missing)) % full] = 0
    return _view_weighted_artifact(x, slices, weights)


@batched(domain='hu')
def rigid_motion(
    x: torch.Tensor,
    *,
    shift: float,
    fraction: float = 0.5,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The patient moves by ``shift`` mm during part of the rotation.

    During a random block of ``fraction`` of the views the object is
    translated in-plane by ``shift`` mm in a random direction; a projection at
    angle ``theta`` of the moved object is the projection of the still one
    shifted by ``shift cos(theta - phi)`` along the detector. The FBP of the
    inconsistent sinogram doubles edges and draws streaks tangent to them.
    (Translation only; rotation would need a second projection.)

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        shift: Displacement in mm.
        fraction: Fraction of the views acquired after the motion.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: The direction and the moved block of views.

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 10:22, 10:22] = 0.0
        >>> out = rigid_motion(ct, shift=3.0, generator=torch.Generator())
        >>> bool((out - ct).abs().max() > 50)
        True
    """
    slices = AxialSlices.of(x, spacing, slice_axis)
    if shift == 0:
        return x.clone()
    plan = simulation(slices.size, slices.spacing, str(x.device))
    beam = plan.coarse
    p = plan.project(hu_to_mu(slices.columns(x)))  # (A, L, S)
    direction = uniform(generator, 0.0, 2 * math.pi)
    count = max(1, round(fraction * beam.views))
    first = int(uniform(generator, 0.0, 1.0) * beam.views)
    moved = (torch.arange(count) + first) % beam.views
    theta = beam.angles[moved]
    offset = (shift * torch.cos(theta - direction) / beam.dt).to(torch.float32)
    # p_moved(t) = p(t - offset): linear interpolation along the bins
    position = torch.arange(beam.bins, dtype=torch.float32)[None, :] - offset[:, None]
    lower = torch.floor(position)
    frac = (position - lower).to(x.device)[:, :, None]
    lower = lower.long().to(x.device)
    rows = p[moved.to(x.device)]  # (m, L, S)
    padded = torch.nn.functional.pad(rows, (0, 0, 1, 1))  # zeros off the detector
    index = (lower + 1).clamp(0, beam.bins + 1)[:, :, None].expand_as(rows)
    below = padded.gather(1, index)
    index = (lower + 2).clamp(0, beam.bins + 1)[:, :, None].expand_as(rows)
    above = padded.gather(1, index)
    shifted = below * (1 - frac) + above * frac
    error = torch.zeros_like(p)
    error[moved.to(x.device)] = shifted - rows
    return add_artifact(x, slices, plan.reconstruct(error))


__all__ = [
    'DEFAULT_ELECTRONIC',
    'DEFAULT_PHOTONS',
    'HU_FLOOR',
    'MU_WATER',
    'axial_axis',
    'beam_hardening',
    'contrast_phase',
    'cupping_per_strength',
    'dose_modulation',
    'hu_to_mu',
    'limited_angle',
    'lowdose_noise',
    'metal',
    'mu_to_hu',
    'noise_level',
    'photon_starvation',
    'reconstruction_kernel',
    'rigid_motion',
    'ring',
    'ring_elements',
    'ring_image',
    'sparse_view',
]
