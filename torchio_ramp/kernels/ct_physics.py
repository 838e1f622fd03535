"""CT-physics corruptions simulated in the projection (sinogram) domain.

Each kernel takes a CT in Hounsfield units ``(C, I, J, K)`` (or a batch), treats
the planes ``x[..., k]`` as axial slices (TorchIO's last axis, the
superior-inferior axis of an axial scan in canonical orientation) with the
in-plane ``spacing[:2]`` in mm, converts them to linear attenuation
``mu = MU_WATER (1 + HU / 1000)`` (1/mm; below -1000 HU is air, ``mu = 0``),
projects them with the parallel-beam :class:`~.projector.ParallelBeam`,
corrupts the sinogram ``p = -ln(I / I0)`` the way a scanner does, and adds the
*difference* between the reconstructions of the corrupted and the clean
sinograms to the input::

    HU' = HU + 1000 / MU_WATER * (FBP(corrupt(R mu)) - FBP(R mu))

so the image keeps its resolution and only the artifact (noise, streaks,
rings, cupping, doubled edges) is added. The result is clipped below at
:data:`HU_FLOOR`. Labels are never involved. Random numbers come only from
``generator`` (drawn on its device, as every kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import batched
from .base import randn
from .base import uniform
from .projector import ParallelBeam
from .projector import default_views

MU_WATER = 0.0194
"""Linear attenuation coefficient of water at 70 keV, in 1/mm.

Water's mass attenuation coefficient is 0.2059 cm^2/g at 60 keV and 0.1837
cm^2/g at 80 keV (NIST XCOM, Hubbell and Seltzer); log-log interpolation gives
0.194 cm^2/g at 70 keV, the effective energy of a 120 kVp beam, times
1 g/cm^3."""

HU_FLOOR = -1024.0
"""Smallest value written (the lowest value a 12-bit scanner stores)."""

REFERENCE_VIEWS = 1000
"""Views per half rotation of the reference scan that ``photons`` refers to."""

DEFAULT_PHOTONS = 2.0e5
"""Incident photons per view per mm of detector width at full dose."""

DEFAULT_ELECTRONIC = 10.0
"""Electronic noise standard deviation in photon counts per reading."""


def hu_to_mu(hu: torch.Tensor) -> torch.Tensor:
    """Linear attenuation (1/mm) of Hounsfield units; air and below give 0.

    Example:
        >>> hu_to_mu(torch.tensor([-1000.0, 0.0, 1000.0]))
        tensor([0.0000, 0.0194, 0.0388])
    """
    return (hu.to(torch.float32) / 1000 + 1).clamp_(min=0).mul_(MU_WATER)


def mu_to_hu(mu: torch.Tensor) -> torch.Tensor:
    """Hounsfield units of a linear attenuation (or attenuation difference x 1000).

    Example:
        >>> mu_to_hu(torch.tensor([0.0194]))
        tensor([0.])
    """
    return mu / MU_WATER * 1000 - 1000


def _spacing(spacing: Sequence[float]) -> tuple[float, float]:
    values = tuple(float(s) for s in spacing)
    if len(values) not in (2, 3) or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f'spacing must be 2 or 3 positive numbers (mm), not {spacing}')
    return values[0], values[1]


def _slices(x: torch.Tensor) -> torch.Tensor:
    """``(C, I, J, K) -> (C * K, I, J)``: the axial slices of a volume."""
    channels, height, width, depth = x.shape
    return x.movedim(-1, 1).reshape(channels * depth, height, width)


def _volume(slices: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    channels, height, width, depth = shape
    return slices.reshape(channels, depth, height, width).movedim(1, -1)


def geometry(
    x: torch.Tensor,
    spacing: Sequence[float],
    views: int | None = None,
    **kwargs,
) -> ParallelBeam:
    """The parallel-beam geometry of the slices of ``x`` ``(C, I, J, K)``."""
    shape = tuple(x.shape[-3:-1])
    return ParallelBeam(shape, _spacing(spacing), views, device=x.device, **kwargs)


def _add_artifact(x: torch.Tensor, artifact_mu: torch.Tensor) -> torch.Tensor:
    """``x`` (HU) plus an attenuation difference (1/mm, slices), clipped below."""
    artifact = _volume(artifact_mu, x.shape).mul_(1000 / MU_WATER).to(x.dtype)
    return (x + artifact).clamp_(min=HU_FLOOR)


def ray_photons(beam: ParallelBeam, photons: float) -> float:
    """Incident photons per reading in ``beam``: scaled by bin width and views.

    ``photons`` is per view per mm of detector at :data:`REFERENCE_VIEWS`
    views; fewer, wider readings each collect more, so the reconstructed noise
    does not depend on the simulated view count.
    """
    return photons * beam.dt * REFERENCE_VIEWS / beam.views


# Noise ---------------------------------------------------------------------------


@batched(domain='hu')
def lowdose_noise(
    x: torch.Tensor,
    *,
    dose: float,
    photons: float = DEFAULT_PHOTONS,
    electronic: float = DEFAULT_ELECTRONIC,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Simulate a scan at a fraction ``dose`` of the original exposure.

    The added sinogram noise follows Yu et al. (2012), "Development and
    validation of a practical lower-dose-simulation tool", Med. Phys. 39(10):
    for an original scan with ``I0`` incident photons per reading and a dose
    fraction ``a``, ``p_a = p + sqrt((1 - a) / a * e^p / I0 * (1 + (1 + a) / a
    * s_e^2 e^p / I0)) z`` (Gaussian limit of the Poisson counts plus
    electronic noise ``s_e``). Its FBP is added: correlated noise, streaky along
    attenuating paths and stronger in the body's centre. ``dose >= 1`` adds
    nothing.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        dose: Dose fraction in ``(0, 1]``.
        photons: Incident photons per view per mm of detector at full dose
            (see :func:`ray_photons`).
        electronic: Electronic noise std in photon counts.
        spacing: Voxel spacing in mm (the first two are in-plane).
        generator: Source of the noise.

    Example:
        >>> water = torch.full((1, 32, 32, 2), 0.0)
        >>> noisy = lowdose_noise(water, dose=0.1, generator=torch.Generator())
        >>> bool(noisy.std() > 1)
        True
    """
    _spacing(spacing)  # refuse a bad spacing even when nothing is added
    if dose >= 1:
        return x.clone()
    beam = geometry(x, spacing)
    p = beam.project(hu_to_mu(_slices(x)))
    intensity = ray_photons(beam, photons)
    transmission = torch.exp(p).div_(intensity)  # e^p / I0
    variance = transmission * (1 - dose) / dose
    variance *= 1 + (1 + dose) / dose * electronic**2 * transmission
    noise = variance.sqrt_().mul_(randn(p, generator))
    return _add_artifact(x, beam.fbp(noise))


@batched(domain='hu')
def photon_starvation(
    x: torch.Tensor,
    *,
    photons: float,
    electronic: float = DEFAULT_ELECTRONIC,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Photon starvation: few counts, clipped at one, along attenuating rays.

    A scan at a very low tube output: the detector reads
    ``N = max(m + sqrt(m + s_e^2) z, 1)`` counts, with the expected count
    ``m = I0 e^-p`` (``I0`` from ``photons``, see :func:`ray_photons`) and
    electronic noise ``s_e``. The measured attenuation ``ln(I0 / N)`` is
    capped at ``ln(I0)`` and its log is far from linear at a few counts, so
    the rays through the most attenuating paths (between bones, through the
    shoulders and pelvis) are both very noisy and biased low: dark and bright
    streaks along them. Unlike :func:`lowdose_noise` (its Gaussian limit, the
    noise added to the original scan), this is the exact count model with
    clipping.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        photons: Incident photons per view per mm of detector.
        electronic: Electronic noise std in photon counts.
        spacing: Voxel spacing in mm.
        generator: Source of the noise.

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 4:28, 4:28] = 1500.0
        >>> out = photon_starvation(ct, photons=5.0, generator=torch.Generator())
        >>> bool((out - ct).abs().max() > 100)
        True
    """
    _spacing(spacing)  # refuse a bad spacing even when nothing is added
    beam = geometry(x, spacing)
    p = beam.project(hu_to_mu(_slices(x)))
    intensity = ray_photons(beam, photons)
    mean = torch.exp(-p).mul_(intensity)
    counts = mean + (mean + electronic**2).sqrt_() * randn(p, generator)
    measured = torch.log(intensity / counts.clamp_(min=1.0))
    return _add_artifact(x, beam.fbp(measured - p))


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


@batched(domain='hu')
def ring(
    x: torch.Tensor,
    *,
    amplitude: float,
    fraction: float = 0.05,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ring artifacts from per-detector-element gain errors.

    A gain error ``g_k`` of element ``k`` offsets its attenuation by
    ``-ln(g_k)`` in every view; the FBP of that sinogram is a set of rings
    centred on the rotation axis at the elements' radii. The ring image is
    scaled so its largest magnitude is ``amplitude`` HU and is the same in
    every slice (a miscalibrated detector column).

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        amplitude: Peak ring magnitude in HU.
        fraction: Fraction of the elements that are miscalibrated.
        spacing: Voxel spacing in mm.
        generator: Which elements, signs and magnitudes.

    Example:
        >>> ct = torch.zeros(1, 32, 32, 2)
        >>> out = ring(ct, amplitude=20.0, generator=torch.Generator())
        >>> round(float((out - ct).abs().max()), 3)
        20.0
    """
    _spacing(spacing)  # refuse a bad spacing even when nothing is added
    if amplitude == 0:
        return x.clone()
    beam = geometry(x, spacing)
    elements, errors = ring_elements(beam, fraction, generator)
    sinogram = torch.zeros(1, beam.views, beam.bins, device=x.device)
    sinogram[..., elements.to(x.device)] = errors.to(x.device)
    rings = beam.fbp(sinogram)[0]
    rings *= amplitude / rings.abs().max().clamp(min=1e-12)
    return (x + rings[None, :, :, None].to(x.dtype)).clamp_(min=HU_FLOOR)


@batched(domain='hu')
def beam_hardening(
    x: torch.Tensor,
    *,
    strength: float,
    bone_weight: float = 10.0,
    bone_threshold: float = 200.0,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
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
    water). The water term cups the body (longer central paths are
    under-corrected); the bone term darkens the bands between dense
    structures, where rays cross several of them. Deterministic.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        strength: Coefficient of the residual error (per unit attenuation).
        bone_weight: Extra hardening of the bone part.
        bone_threshold: HU above which attenuation counts as bone.
        spacing: Voxel spacing in mm.
        generator: Unused (deterministic).

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 6:26, 6:26] = 0.0
        >>> out = beam_hardening(ct, strength=0.05, spacing=(5.0, 5.0, 5.0))
        >>> bool(out[0, 16, 16, 0] < out[0, 8, 16, 0])  # cupping
        True
    """
    _spacing(spacing)  # refuse a bad spacing even when nothing is added
    if strength == 0:
        return x.clone()
    beam = geometry(x, spacing)
    slices = _slices(x)
    bone = (slices.to(torch.float32) - bone_threshold).clamp_(min=0)
    both = torch.cat([hu_to_mu(slices), bone.mul_(MU_WATER / 1000)])
    p, p_bone = beam.project(both).chunk(2)  # one sparse product for both
    # the correction is exact at the slice's mean path through the body
    crossing = p > 0.05
    count = crossing.sum(dim=(1, 2), keepdim=True).clamp_(min=1)
    reference = (p * crossing).sum(dim=(1, 2), keepdim=True) / count
    error = p * (p - reference) + bone_weight * p_bone.square()
    return _add_artifact(x, beam.fbp(error.mul_(-strength)))


# Acquisition ---------------------------------------------------------------------


def _view_weighted_artifact(
    x: torch.Tensor,
    spacing: Sequence[float],
    weights: torch.Tensor,
) -> torch.Tensor:
    """``x`` plus ``FBP_w(R mu) - FBP(R mu)``: views reweighted by ``weights``.

    A reconstruction from a subset of the full scan's views is its FBP with the
    missing views weighted 0 and the others by ``pi / (arc covered per view)``
    relative to the full scan; the full geometry (cached) serves both.
    """
    beam = geometry(x, spacing)
    filtered = beam.filter(beam.project(hu_to_mu(_slices(x))))
    weights = (weights - 1).to(device=x.device, dtype=filtered.dtype)
    return _add_artifact(x, beam.backproject(filtered.mul_(weights[:, None])))


@batched(domain='hu')
def sparse_view(
    x: torch.Tensor,
    *,
    step: float,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reconstruction from few views, ``step`` degrees apart: fanned streaks.

    ``n = round(180 / step)`` views of the full scan
    (:func:`~.projector.default_views`), the nearest to equal spacing from a
    random first view, are reconstructed by FBP; the difference to the
    reconstruction from all views is added. No change when ``n`` is at least
    the full number of views.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        step: Angle between views in degrees.
        spacing: Voxel spacing in mm.
        generator: The first view.

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 10:22, 12:20] = 800.0
        >>> out = sparse_view(ct, step=20.0, generator=torch.Generator())
        >>> bool((out - ct)[:, :4].abs().max() > 10)  # streaks reach the air
        True
    """
    _spacing(spacing)  # refuse a bad spacing even when nothing is added
    full = default_views(x.shape[-3:-1])
    views = max(2, round(180 / step)) if step > 0 else full
    if views >= full:
        return x.clone()
    stride = full / views
    offset = uniform(generator, 0.0, stride)
    kept = (offset + torch.arange(views) * stride).long().clamp_(max=full - 1)
    weights = torch.zeros(full, dtype=torch.float64)
    weights[kept] = full / views  # each kept view stands for ``stride`` views
    return _view_weighted_artifact(x, spacing, weights)


@batched(domain='hu')
def limited_angle(
    x: torch.Tensor,
    *,
    wedge: float,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reconstruction with a missing wedge of ``wedge`` degrees: smeared edges.

    The views of a random ``wedge``-degree arc of the half rotation are
    missing; FBP of the remaining arc (normalised to it, so the mean
    attenuation is kept) replaces the full reconstruction.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        wedge: Missing arc in degrees, in ``[0, 180)``.
        spacing: Voxel spacing in mm.
        generator: Where the wedge starts.

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 10:22, 10:22] = 0.0
        >>> out = limited_angle(ct, wedge=60.0, generator=torch.Generator())
        >>> bool((out - ct).abs().max() > 50)
        True
    """
    _spacing(spacing)  # refuse a bad spacing even when nothing is added
    full = default_views(x.shape[-3:-1])
    missing = min(round(wedge / 180 * full), full - 2)
    if missing <= 0:
        return x.clone()
    start = int(uniform(generator, 0.0, 1.0) * full)
    # the kept views span pi - wedge: weighted pi / arc, the mean is kept
    weights = torch.full((full,), full / (full - missing), dtype=torch.float64)
    weights[(start + torch.arange(missing)) % full] = 0
    return _view_weighted_artifact(x, spacing, weights)


@batched(domain='hu')
def rigid_motion(
    x: torch.Tensor,
    *,
    shift: float,
    fraction: float = 0.5,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
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
        generator: The direction and the moved block of views.

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 10:22, 10:22] = 0.0
        >>> out = rigid_motion(ct, shift=3.0, generator=torch.Generator())
        >>> bool((out - ct).abs().max() > 50)
        True
    """
    _spacing(spacing)  # refuse a bad spacing even when nothing is added
    if shift == 0:
        return x.clone()
    beam = geometry(x, spacing)
    p = beam.project(hu_to_mu(_slices(x)))
    direction = uniform(generator, 0.0, 2 * math.pi)
    count = max(1, round(fraction * beam.views))
    first = int(uniform(generator, 0.0, 1.0) * beam.views)
    moved = (torch.arange(count) + first) % beam.views
    theta = beam.angles[moved]
    offset = (shift * torch.cos(theta - direction) / beam.dt).to(torch.float32)
    # p_moved(t) = p(t - offset): linear interpolation along the bins
    position = torch.arange(beam.bins, dtype=torch.float32)[None, :] - offset[:, None]
    lower = torch.floor(position)
    frac = (position - lower).to(x.device)
    lower = lower.long().to(x.device)
    rows = p[:, moved.to(x.device)]
    padded = torch.nn.functional.pad(rows, (1, 1))  # zeros outside the detector
    below = padded.gather(-1, (lower + 1).clamp(0, beam.bins + 1).expand_as(rows))
    above = padded.gather(-1, (lower + 2).clamp(0, beam.bins + 1).expand_as(rows))
    shifted = below * (1 - frac) + above * frac
    error = torch.zeros_like(p)
    error[:, moved.to(x.device)] = shifted - rows
    return _add_artifact(x, beam.fbp(error))


__all__ = [
    'MU_WATER',
    'beam_hardening',
    'hu_to_mu',
    'limited_angle',
    'lowdose_noise',
    'mu_to_hu',
    'photon_starvation',
    'rigid_motion',
    'ring',
    'ring_elements',
    'sparse_view',
]
