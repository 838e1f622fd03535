"""Quantum noise of a CT scan at another dose, calibrated to the scan's own noise.

The noise families (:func:`lowdose_noise`, :func:`dose_modulation`,
:func:`photon_starvation`) add, on the sinogram, the noise of a scan made with
fewer photons, and reconstruct it with the soft-tissue kernel
(:data:`~.ct_geometry.SOFT_TISSUE_MTF50`), as Yu et al. (2012), Med. Phys.
39(10), do for the Mayo low-dose tool:

* **photons per reading**: the incident flux is ``photons`` per view per mm^2
  of detector (in-plane bin width x slice thickness) at
  :data:`REFERENCE_VIEWS` views per half rotation, shaped across the detector
  by a body bowtie filter (:func:`bowtie`): a simulated reading ``dt`` mm wide
  of a ``z`` mm slice at ``A`` views collects ``photons dt z 1000 / A``
  times the bowtie's transmission, so quantum noise falls as
  ``1 / sqrt(thickness)`` and does not depend on the simulated view count;
* **calibration** (:func:`calibrated_scale`): the scan's own noise is
  measured in uniform soft tissue (the mode of the local standard deviation,
  Christianson et al. 2015, AJR 205(1)), and the added noise variance is
  scaled so that the simulated full-dose noise, measured the same way, equals
  it: ``dose = a`` then means "this scan at ``a`` times its dose" and the
  total noise is the native one over ``sqrt(a)``. A scan without measurable
  noise (a synthetic phantom) or without uniform soft tissue keeps
  ``photons``;
* **electronic noise** of ``electronic`` counts per reference reading (1 mm^2,
  one view of 1000) adds to each reading in proportion to the readings it
  stands for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import batched
from .base import randn
from .ct_geometry import MU_WATER
from .ct_geometry import SOFT_TISSUE_MTF50
from .ct_geometry import AxialSlices
from .ct_geometry import Simulation
from .ct_geometry import add_artifact
from .ct_geometry import hu_to_mu
from .ct_geometry import simulation
from .projector import ParallelBeam

REFERENCE_VIEWS = 1000
"""Views per half rotation of the reference reading that ``photons`` refers to."""

DEFAULT_PHOTONS = 1.0e5
"""Incident photons per view per mm^2 of detector at full dose (uncalibrated)."""

DEFAULT_ELECTRONIC = 3.0
"""Electronic noise standard deviation in counts per reference reading."""

BOWTIE_EDGE = 120.0
"""Water-equivalent thickness (mm) of the bowtie filter at its edge."""

BOWTIE_RADIUS = 250.0
"""Distance (mm) from the rotation axis where the bowtie reaches its edge."""

SOFT_TISSUE = (-150.0, 250.0)
"""HU range of the windows the scan's noise is measured in."""

NOISE_WINDOW = 5
"""Side (pixels) of the in-plane windows of the local standard deviation."""

MIN_WINDOWS = 200
"""Fewest uniform windows for a calibration (fewer: ``photons`` is kept)."""

MIN_NOISE = 1.0
"""Smallest native noise (HU) taken as measured (below: a noise-free image)."""

CALIBRATION_SLICES = 16
"""Slices the calibration simulates (evenly spread over those with soft tissue)."""

CHUNK_BYTES = 128 << 20
"""Largest fine sinogram drawn at once (slices are processed in chunks)."""

STARVED_COUNTS = 20.0
"""Below this expected count a reading is drawn from the exact Poisson law."""


def bowtie(t: torch.Tensor) -> torch.Tensor:
    """Transmission of the body bowtie filter at detector positions ``t`` (mm).

    Water-equivalent thickness growing as a circular arc from 0 on the axis to
    :data:`BOWTIE_EDGE` mm at :data:`BOWTIE_RADIUS` mm, constant beyond: the
    edge of the fan receives ``exp(-MU_WATER 120) = 10%`` of the central flux.

    Example:
        >>> [round(float(v), 3) for v in bowtie(torch.tensor([0.0, 250.0, 400.0]))]
        [1.0, 0.097, 0.097]
    """
    r = (t.abs() / BOWTIE_RADIUS).clamp(max=1.0)
    thickness = BOWTIE_EDGE * (1 - (1 - r.square()).sqrt())
    return torch.exp(-MU_WATER * thickness)


def readings(beam: ParallelBeam, thickness: float) -> float:
    """Reference readings (1 mm^2, one of 1000 views) one reading stands for."""
    return beam.dt * thickness * REFERENCE_VIEWS / beam.views


def incident(beam: ParallelBeam, thickness: float, photons: float) -> torch.Tensor:
    """Incident photons per reading along the detector ``(L,)`` (float32)."""
    t = (torch.arange(beam.bins, dtype=torch.float64) - (beam.bins - 1) / 2) * beam.dt
    flux = photons * readings(beam, thickness) * bowtie(t)
    return flux.to(torch.float32)


# Calibration -----------------------------------------------------------------------


def _windows(columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Local standard deviation and uniform-soft-tissue windows, ``(S, h, w)``."""
    k = NOISE_WINDOW
    images = columns.permute(2, 0, 1)[:, None].to(torch.float32)
    pool = torch.nn.functional.avg_pool2d
    mean = pool(images, k, stride=1)
    square = pool(images.square(), k, stride=1)
    sd = (square - mean.square()).clamp_(min=0).sqrt_()[:, 0]
    high = torch.nn.functional.max_pool2d(images, k, stride=1)[:, 0]
    low = -torch.nn.functional.max_pool2d(-images, k, stride=1)[:, 0]
    uniform = (low >= SOFT_TISSUE[0]) & (high <= SOFT_TISSUE[1])
    return sd, uniform


def _mode(values: torch.Tensor) -> float:
    """Mode of the density of ``values``: a 200-bin histogram up to the 90th
    percentile smoothed by a Gaussian of 4 bins (a kernel density estimate)."""
    values = values.to(torch.float64).cpu()
    top = float(torch.quantile(values[: 1 << 24], 0.9))
    if top <= 0:
        return 0.0
    bins, width, reach = 200, 4.0, 12  # the Gaussian's width and reach, in bins
    counts = torch.histc(values, bins=bins, min=0.0, max=top)
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / width) ** 2)
    smooth = torch.nn.functional.conv1d(
        counts[None, None], (kernel / kernel.sum())[None, None], padding=reach
    )[0, 0]
    return (int(smooth.argmax()) + 0.5) * top / bins


def noise_level(columns: torch.Tensor, windows: torch.Tensor | None = None) -> float:
    """Noise (HU) of slices ``(H, W, S)``: mode of the local standard deviation.

    The standard deviation in every ``5 x 5`` in-plane window, over the windows
    lying entirely in ``[-150, 250]`` HU (soft tissue, fat, blood: uniform
    regions' spread is their noise, edges only lengthen the tail), or over
    ``windows`` (a boolean ``(S, H - 4, W - 4)`` map, e.g. those of another
    image); the mode of its histogram is the global noise level of
    Christianson et al. (2015), "Automated technique to measure noise in
    clinical CT examinations", AJR 205(1): W93-W99.

    Returns:
        The noise in HU, or ``nan`` when fewer than :data:`MIN_WINDOWS`
        windows qualify.

    Example:
        >>> water = torch.randn(64, 64, 4, generator=torch.Generator().manual_seed(0))
        >>> round(noise_level(10 * water))  # white noise of 10 HU
        10
    """
    sd, uniform = _windows(columns)
    if windows is not None:
        uniform = windows
    if int(uniform.sum()) < MIN_WINDOWS:
        return math.nan
    return _mode(sd[uniform])


def scan_noise(columns: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The scan's own noise (HU, ``nan`` if unmeasurable) and its windows."""
    sd, uniform = _windows(columns)
    if int(uniform.sum()) < MIN_WINDOWS:
        return math.nan, uniform
    return _mode(sd[uniform]), uniform


def _calibration_slices(uniform: torch.Tensor) -> torch.Tensor:
    """Up to :data:`CALIBRATION_SLICES` slices, evenly among those with windows."""
    counts = uniform.sum(dim=(1, 2))
    candidates = torch.nonzero(counts >= max(1, MIN_WINDOWS // 8)).flatten()
    if candidates.numel() <= CALIBRATION_SLICES:
        return candidates
    picks = torch.linspace(0, candidates.numel() - 1, CALIBRATION_SLICES)
    return candidates[picks.round().long()]


# The noise itself ------------------------------------------------------------------


def _chunks(plan: Simulation, count: int) -> list[slice]:
    per_slice = plan.fine.views * plan.fine.bins * 4
    size = max(1, CHUNK_BYTES // per_slice)
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _noise_image(
    plan: Simulation,
    variance,
    count: int,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """FBP (1/mm) of sinogram noise of variance ``variance(chunk)`` ``(A, L, n)``."""
    height, width = plan.fine.shape
    out = torch.empty(height, width, count, device=device)
    for chunk in _chunks(plan, count):
        var = variance(chunk)
        noise = randn(var, generator).mul_(var.sqrt_())
        out[..., chunk] = plan.fine.fbp_columns(noise, mtf50=SOFT_TISSUE_MTF50)
    return out


def _transmission(
    plan: Simulation,
    p: torch.Tensor,
    thickness: float,
    photons: float,
    chunk: slice,
) -> torch.Tensor:
    """``e^p / I0`` on the fine detector for the slices of ``chunk``."""
    fine_p = plan.to_fine_detector(p[..., chunk])
    flux = incident(plan.fine, thickness, photons).to(p.device)
    return fine_p.exp_().div_(flux[:, None])


def calibrated_scale(
    columns: torch.Tensor,
    plan: Simulation,
    p: torch.Tensor,
    thickness: float,
    photons: float,
    generator: torch.Generator | None,
) -> float:
    """Factor on the noise variance that makes the simulated noise the scan's own.

    The quantum noise of a full-dose scan at ``photons``,
    ``FBP(sqrt(e^p / I0) z)``, is simulated on up to
    :data:`CALIBRATION_SLICES` slices (``p``: the coarse sinogram of
    ``columns``) and measured in the windows where the scan's own noise is
    measured (:func:`noise_level`); the ratio of the two variances scales
    every added variance (quantum and electronic alike: what the scan's flux,
    detector, kernel and resampling did to its noise, they do to the added
    noise; the ratio of electronic to quantum noise stays that of ``photons``).
    Returns 1 where the scan's noise is not measurable.
    """
    native, uniform = scan_noise(columns)
    if not (math.isfinite(native) and native >= MIN_NOISE):
        return 1.0
    picks = _calibration_slices(uniform)
    if picks.numel() == 0:
        return 1.0
    chosen = p.index_select(2, picks.to(p.device))
    simulated = _noise_image(
        plan,
        lambda chunk: _transmission(plan, chosen, thickness, photons, chunk),
        picks.numel(),
        generator,
        columns.device,
    )
    simulated *= 1000 / MU_WATER
    measured = noise_level(simulated, uniform.index_select(0, picks.to(uniform.device)))
    if not (math.isfinite(measured) and measured > 0):
        return 1.0
    return (native / measured) ** 2


def _dose_noise(
    x: torch.Tensor,
    dose,
    *,
    photons: float,
    electronic: float,
    calibrate: bool,
    spacing: Sequence[float],
    slice_axis: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Add the noise of a scan at the dose fractions ``dose(p, plan)`` ``(A, S)``.

    Yu et al.'s added variance per reading for a dose fraction ``a`` of a scan
    with ``I0`` incident photons and electronic noise ``s_e``:
    ``(1 - a) / a * e^p / I0 + (1 - a^2) / a^2 * s_e^2 (e^p / I0)^2``. With
    ``calibrate`` the full-dose noise (quantum and electronic,
    ``e^p / I0 + s_e^2 (e^p / I0)^2``) of up to :data:`CALIBRATION_SLICES`
    slices is reconstructed in the same back-projection (extra columns) and
    measured against the scan's own; FBP is linear, so the added noise is then
    scaled by the square root of the variance ratio.
    """
    slices = AxialSlices.of(x, spacing, slice_axis)
    plan = simulation(slices.size, slices.spacing, str(x.device))
    columns = slices.columns(x)
    p = plan.project(hu_to_mu(columns))  # coarse sinogram (A', L', S)
    count = slices.count
    fraction = dose(p, plan).to(x.device)  # (A, S) on the fine views, in (0, 1]
    picks = torch.zeros(0, dtype=torch.long)
    native = math.nan
    if calibrate:
        native, uniform = scan_noise(columns)
        if math.isfinite(native) and native >= MIN_NOISE:
            picks = _calibration_slices(uniform)
    sources = torch.cat([p, p.index_select(2, picks.to(p.device))], dim=2)
    electronic_variance = electronic**2 * readings(plan.fine, slices.thickness)

    def variance(chunk: slice) -> torch.Tensor:
        t = _transmission(plan, sources, slices.thickness, photons, chunk)
        stop = min(chunk.stop, count)
        if chunk.start >= stop:  # calibration columns only: the full-dose noise
            return t.addcmul_(t, t, value=electronic_variance)
        own = slice(0, stop - chunk.start)
        a = fraction[:, None, chunk.start : stop]
        main = t[..., own]
        electronic_part = main.square().mul_((1 - a.square()) / a.square())
        main.mul_((1 - a) / a).add_(electronic_part, alpha=electronic_variance)
        calibration = t[..., stop - chunk.start :]
        calibration.addcmul_(calibration, calibration, value=electronic_variance)
        return t

    noise = _noise_image(plan, variance, sources.shape[-1], generator, x.device)
    added = noise[..., :count]
    if picks.numel():
        simulated = noise[..., count:] * (1000 / MU_WATER)
        windows = uniform.index_select(0, picks.to(uniform.device))
        measured = noise_level(simulated, windows)
        if math.isfinite(measured) and measured > 0:
            added *= native / measured
    return add_artifact(x, slices, added)


def _check_dose(dose: float) -> None:
    if not (math.isfinite(dose) and dose > 0):
        raise ValueError(f'dose must be a positive fraction, not {dose!r}')


@batched(domain='hu')
def lowdose_noise(
    x: torch.Tensor,
    *,
    dose: float,
    photons: float = DEFAULT_PHOTONS,
    electronic: float = DEFAULT_ELECTRONIC,
    calibrate: bool = True,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Simulate the scan at a fraction ``dose`` of its exposure (constant current).

    Every reading gets the added noise of Yu et al. (2012) for the dose
    fraction ``a``: ``(1 - a) / a e^p / I0`` (quantum, the Gaussian limit of
    the Poisson counts) plus ``(1 - a^2) / a^2 s_e^2 (e^p / I0)^2``
    (electronic), reconstructed with the soft-tissue kernel: correlated noise,
    streaky along attenuating paths, stronger in the body's centre. With
    ``calibrate``, ``I0`` comes from the scan's own noise
    (:func:`calibrated_scale`), so the total noise is the native one over
    ``sqrt(a)``. ``dose >= 1`` adds nothing.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        dose: Dose fraction in ``(0, 1]``.
        photons: Incident photons per view per mm^2 of detector at full dose,
            when not calibrated (see :func:`incident`).
        electronic: Electronic noise std in counts per reference reading.
        calibrate: Scale the photons to the scan's own noise.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices (0, 1 or 2).
        generator: Source of the noise.

    Example:
        >>> water = torch.full((1, 32, 32, 2), 0.0)
        >>> noisy = lowdose_noise(water, dose=0.1, generator=torch.Generator())
        >>> bool(noisy.std() > 1)
        True
    """
    AxialSlices.of(x, spacing, slice_axis)  # refuse bad geometry even when idle
    _check_dose(dose)
    if dose >= 1:
        return x.clone()

    def constant(p: torch.Tensor, plan: Simulation) -> torch.Tensor:
        return torch.full((plan.fine.views, p.shape[-1]), float(dose))

    return _dose_noise(
        x,
        constant,
        photons=photons,
        electronic=electronic,
        calibrate=calibrate,
        spacing=spacing,
        slice_axis=slice_axis,
        generator=generator,
    )


GIES_EXPONENT = 0.5
"""Tube current proportional to the square root of the attenuation (Gies et al.)."""


def modulation(p: torch.Tensor, plan: Simulation, strength: float) -> torch.Tensor:
    """Relative tube current ``(A, S)`` of automatic exposure control (mean 1).

    Per view and slice, the current follows the most attenuating ray
    ``p_max``: ``exp(strength p_max)``; ``strength = 0.5`` is the square-root
    rule that minimises noise for a given dose (Gies et al. 1999, Med. Phys.
    26(11)). Fine views take the coarse view below them.

    Example:
        >>> plan = simulation((16, 16), (10.0, 10.0))
        >>> p = torch.zeros(plan.coarse.views, plan.coarse.bins, 2)
        >>> p[: plan.coarse.views // 2, :, 1] = 4.0  # lateral views attenuate more
        >>> current = modulation(p, plan, 0.5)
        >>> round(float(current.mean()), 4), bool(current[0, 1] > current[0, 0])
        (1.0, True)
    """
    peak = p.amax(dim=1)  # (A', S)
    view = (plan.fine.angles / math.pi * plan.coarse.views).floor().long()
    view = view.clamp_(0, plan.coarse.views - 1).to(p.device)
    current = torch.exp(strength * (peak - peak.max())).index_select(0, view)
    return current / current.mean()


@batched(domain='hu')
def dose_modulation(
    x: torch.Tensor,
    *,
    dose: float,
    strength: float = GIES_EXPONENT,
    photons: float = DEFAULT_PHOTONS,
    electronic: float = DEFAULT_ELECTRONIC,
    calibrate: bool = True,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A reduced-dose scan whose tube current follows the patient (AEC).

    The mean dose is ``dose`` times the scan's; the current of each view and
    slice is :func:`modulation` (along z and with the view angle, as automatic
    exposure control modulates it), capped at the scan's own (noise cannot be
    removed): the noise follows the attenuation, more even across views and
    slices than at constant current (:func:`lowdose_noise`), streaks along the
    widest paths weakened. Calibrated as :func:`lowdose_noise`.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        dose: Mean dose fraction in ``(0, 1]``.
        strength: Exponent of the modulation (0: constant current).
        photons: Incident photons per view per mm^2 at full dose (uncalibrated).
        electronic: Electronic noise std in counts per reference reading.
        calibrate: Scale the photons to the scan's own noise.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: Source of the noise.

    Example:
        >>> water = torch.full((1, 32, 32, 2), 0.0)
        >>> noisy = dose_modulation(water, dose=0.1, generator=torch.Generator())
        >>> bool(noisy.std() > 1)
        True
    """
    AxialSlices.of(x, spacing, slice_axis)
    _check_dose(dose)
    if dose >= 1:
        return x.clone()

    def modulated(p: torch.Tensor, plan: Simulation) -> torch.Tensor:
        return (dose * modulation(p, plan, strength)).clamp_(max=1.0).cpu()

    return _dose_noise(
        x,
        modulated,
        photons=photons,
        electronic=electronic,
        calibrate=calibrate,
        spacing=spacing,
        slice_axis=slice_axis,
        generator=generator,
    )


@batched(domain='hu')
def photon_starvation(
    x: torch.Tensor,
    *,
    counts: float,
    electronic: float = DEFAULT_ELECTRONIC,
    photons: float = DEFAULT_PHOTONS,
    calibrate: bool = False,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Photon starvation: a tube output so low that the widest rays run dry.

    The incident flux (with the bowtie, :func:`incident`) is set so that the
    most attenuating reading of the volume expects ``counts`` photons
    (through the shoulders or hips, where a scan without tube-current
    modulation starves first). Readings expecting fewer than
    :data:`STARVED_COUNTS` photons are drawn exactly: Poisson counts plus
    electronic noise, clipped at one count before the log, so they are both
    very noisy and biased (dark and bright streaks along them); the others get
    the Gaussian noise the scan does not already have (its own calibrated
    flux, :func:`calibrated_scale`, taken out). Unlike :func:`lowdose_noise`,
    the damage is concentrated on the most attenuating rays.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        counts: Expected photons on the most attenuating reading, per
            reference reading (1 mm^2, one view of 1000).
        electronic: Electronic noise std in counts per reference reading.
        photons: Incident photons per view per mm^2 of the scan itself, when
            not calibrated.
        calibrate: Measure the scan's own flux from its noise (one more
            back-projection of a few slices; without it the scan's flux is
            ``photons``).
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: Source of the noise.

    Example:
        >>> ct = torch.full((1, 32, 32, 1), -1000.0)
        >>> ct[:, 4:28, 4:28] = 1500.0
        >>> out = photon_starvation(ct, counts=2.0, generator=torch.Generator())
        >>> bool((out - ct).abs().max() > 100)
        True
    """
    slices = AxialSlices.of(x, spacing, slice_axis)
    if not (math.isfinite(counts) and counts > 0):
        raise ValueError(f'counts must be a positive number, not {counts!r}')
    plan = simulation(slices.size, slices.spacing, str(x.device))
    columns = slices.columns(x)
    p = plan.project(hu_to_mu(columns))
    per_reading = readings(plan.fine, slices.thickness)
    # flux (per reference reading) that leaves ``counts`` on the worst reading
    t = torch.arange(plan.coarse.bins, dtype=torch.float64) - (plan.coarse.bins - 1) / 2
    shape = bowtie(t * plan.coarse.dt).to(torch.float32).to(p.device)
    worst = float((p.amax(dim=(0, 2)) - shape.log()).max())
    starved = counts * math.exp(worst)  # photons per reference reading, centre
    native_scale = 1.0
    if calibrate:
        native_scale = calibrated_scale(
            columns, plan, p, slices.thickness, photons, generator
        )
    electronic_variance = electronic**2 * per_reading
    device = 'cpu' if generator is None else generator.device
    height, width = plan.fine.shape
    out = torch.empty(height, width, slices.count, device=x.device)
    for chunk in _chunks(plan, slices.count):
        fine_p = plan.to_fine_detector(p[..., chunk])
        flux = incident(plan.fine, slices.thickness, 1.0).to(p.device)[:, None]
        mean = fine_p.neg_().exp_().mul_(flux * starved)  # expected counts
        # Gaussian: the variance of the log the scan (at ``photons``) lacks
        extra = mean.reciprocal().mul_(max(0.0, 1 - starved / photons))
        extra.addcdiv_(torch.full_like(mean, electronic_variance), mean.square())
        error = randn(mean, generator).mul_(extra.mul_(native_scale).sqrt_())
        del extra
        exact = mean < STARVED_COUNTS
        if bool(exact.any()):
            rates = mean[exact].to(device)
            drawn = torch.poisson(rates, generator=generator)
            drawn += math.sqrt(electronic_variance) * torch.randn(
                rates.shape, generator=generator, device=device
            )
            measured = torch.log(rates / drawn.clamp_(min=1.0)).to(x.device)
            error[exact] = measured
        out[..., chunk] = plan.fine.fbp_columns(error, mtf50=SOFT_TISSUE_MTF50)
    return add_artifact(x, slices, out)
