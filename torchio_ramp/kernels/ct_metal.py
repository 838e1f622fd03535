"""Metal implants through a polychromatic projection: hardening, starvation, streaks.

:func:`metal` places two metal rods (a bilateral hip prosthesis, a pair of
pedicle screws: cylinders along the slice axis) in the body, projects the
scan with a 120 kVp spectrum through water, bone and metal, draws the counts
of the rays that cross metal, applies the scanner's water beam-hardening
correction and reconstructs. The simulation follows the one used to train
metal-artifact reduction networks (Zhang and Yu 2018, "Convolutional neural
network based metal artifact reduction in X-ray computed tomography", IEEE
TMI 37(6)): the dark streak along the line between the two objects comes from
the rays that cross both, hardened and starved.

Tables (energy-weighted bins of an energy-integrating detector), computed
with SpekPy 2.5 (Poludniowski et al. 2021, Med. Phys. 48(7); tungsten anode,
12 degrees, 120 kVp, 6 mm Al: mean energy 59.6 keV, first half-value layer
6.4 mm Al) and xraydb 4.5 (Elam, Ravel and Sieber 2002 attenuation tables;
cortical bone of ICRU 44 composition, 1.92 g/cm^3)::

    import numpy as np, spekpy, xraydb
    s = spekpy.Spek(kvp=120, th=12); s.filter('Al', 6.0); k, phi = s.get_spectrum()
    # 10 keV bins from 20 to 120 keV, weights phi * E, mean energy of each
    # mu (1/mm) = xraydb.mu_elam(element, E) (cm^2/g) x mass fraction x density / 10
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import batched
from .base import randn
from .base import uniform
from .ct_geometry import HU_CEILING
from .ct_geometry import MU_WATER
from .ct_geometry import AxialSlices
from .ct_geometry import add_artifact
from .ct_geometry import hu_to_mu
from .ct_geometry import simulation
from .ct_noise import DEFAULT_ELECTRONIC
from .ct_noise import DEFAULT_PHOTONS
from .ct_noise import STARVED_COUNTS
from .ct_noise import incident
from .ct_noise import readings

SPECTRUM_KEV = (27.33, 35.76, 45.22, 56.27, 65.32, 74.92, 84.85, 94.75, 104.52, 113.43)
"""Mean energy (keV) of each 10 keV bin of the 120 kVp spectrum."""

SPECTRUM_WEIGHTS = (
    0.01487, 0.07916, 0.13357, 0.22938, 0.17456,
    0.11607, 0.10105, 0.07957, 0.05250, 0.01927,
)  # fmt: skip
"""Energy-weighted fluence of each bin (sums to 1)."""

ATTENUATION = {
    'water': (0.04343, 0.03002, 0.02428, 0.02124, 0.01983,
              0.0188, 0.018, 0.01737, 0.01684, 0.01642),
    'bone': (0.32605, 0.16529, 0.09868, 0.06664, 0.05376,
             0.04574, 0.04053, 0.03704, 0.03457, 0.03285),
    'steel': (8.38151, 3.91756, 2.03074, 1.12256, 0.76329,
              0.54584, 0.41089, 0.3256, 0.26921, 0.23275),
    'titanium': (2.92211, 1.36257, 0.71382, 0.4042, 0.28234,
                 0.20876, 0.16297, 0.13387, 0.11452, 0.10192),
    'cobalt-chromium': (10.10221, 4.76168, 2.4788, 1.3684, 0.92598,
                        0.6576, 0.49062, 0.38488, 0.31493, 0.26972),
}  # fmt: skip
"""Linear attenuation (1/mm) at :data:`SPECTRUM_KEV`: water, cortical bone (ICRU 44,
1.92 g/cm^3), iron for stainless steel (7.874 g/cm^3), titanium (4.506),
cobalt-chromium-molybdenum (Co 63, Cr 29, Mo 6, Ni 1, Fe 1 by mass; 8.3)."""

METALS = ('steel', 'titanium', 'cobalt-chromium')
"""Materials of :func:`metal`."""

BONE_MU_70 = 0.04935
"""Cortical bone's attenuation at 70 keV (1/mm; xraydb, as the tables)."""

BONE_START = 100.0
"""HU above which a voxel is part bone (fully bone at cortical bone's HU)."""


def _tables(device) -> tuple[torch.Tensor, torch.Tensor]:
    weights = torch.tensor(SPECTRUM_WEIGHTS, dtype=torch.float32, device=device)
    return weights / weights.sum(), weights


def polychromatic(lengths: dict[str, torch.Tensor]) -> torch.Tensor:
    """``-ln`` of the detected fraction through ``lengths`` (mm of each material).

    Example:
        >>> p = polychromatic({'water': torch.tensor([0.0, 100.0, 200.0])})
        >>> round(float(p[0]), 6), bool(p[2] < 2 * p[1])  # the beam hardens
        (0.0, True)
    """
    first = next(iter(lengths.values()))
    weights, _ = _tables(first.device)
    total = torch.zeros_like(first)
    for k in range(len(SPECTRUM_KEV)):
        exponent = torch.zeros_like(first)
        for material, length in lengths.items():
            exponent.add_(length, alpha=-ATTENUATION[material][k])
        total.add_(exponent.exp_(), alpha=float(weights[k]))
    return -torch.log(total.clamp_(min=1e-30))


def water_correction(device) -> tuple[torch.Tensor, torch.Tensor]:
    """The scanner's water linearisation: polychromatic ``p`` -> ``MU_WATER L``.

    A table of water thicknesses 0 to 2000 mm and their polychromatic
    attenuation; :func:`linearise` interpolates it.
    """
    thickness = torch.linspace(0, 2000, 4001, device=device)
    return polychromatic({'water': thickness}), thickness * MU_WATER


def linearise(
    p: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Water-corrected attenuation of measured polychromatic ``p``."""
    measured, corrected = table
    index = torch.searchsorted(measured, p.contiguous()).clamp_(1, measured.numel() - 1)
    low, high = measured[index - 1], measured[index]
    frac = ((p - low) / (high - low)).clamp_(0, 1)
    return corrected[index - 1] + frac * (corrected[index] - corrected[index - 1])


def place_rods(
    body: torch.Tensor,
    radius: float,
    spacing: tuple[float, float],
    avoid: torch.Tensor | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """A mask ``(H, W)`` of two disks of ``radius`` mm inside ``body`` ``(H, W)``.

    The pair sits symmetric about the body's centre along its longer in-plane
    extent (left and right), at a random separation (25-45% of that extent
    each side) and offset across it (up to 15%); of 16 random placements, the
    first whose disks lie in the body and off ``avoid`` (labelled voxels) is
    kept, else the one overlapping ``avoid`` least.
    """
    height, width = body.shape
    dy, dx = spacing
    rows = (torch.arange(height, dtype=torch.float32) * dy)[:, None]
    cols = (torch.arange(width, dtype=torch.float32) * dx)[None, :]
    inside = torch.nonzero(body)
    if inside.numel() == 0:
        inside = torch.tensor([[height // 2, width // 2]])
    centre = inside.float().mean(0) * torch.tensor([dy, dx])
    extent = (inside.float().amax(0) - inside.float().amin(0) + 1) * torch.tensor(
        [dy, dx]
    )
    long_axis = int(extent.argmax())
    best, best_cost = None, math.inf
    for _ in range(16):
        separation = uniform(generator, 0.25, 0.45) * float(extent[long_axis]) / 2
        across = uniform(generator, -0.15, 0.15) * float(extent[1 - long_axis])
        offset = torch.zeros(2)
        offset[long_axis] = separation
        offset[1 - long_axis] = across
        mask = torch.zeros(height, width, dtype=torch.bool)
        for sign in (-1, 1):
            c = centre + sign * offset
            c[1 - long_axis] = centre[1 - long_axis] + across
            mask |= (rows - c[0]).square() + (cols - c[1]).square() <= radius**2
        outside = int((mask & ~body).sum())
        overlap = int((mask & avoid).sum()) if avoid is not None else 0
        cost = outside + overlap
        if cost == 0:
            return mask
        if cost < best_cost:
            best, best_cost = mask, cost
    return best


@batched(domain='hu')
def metal(
    x: torch.Tensor,
    *,
    diameter: float,
    material: str = 'steel',
    labels: torch.Tensor | None = None,
    photons: float = DEFAULT_PHOTONS,
    electronic: float = DEFAULT_ELECTRONIC,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_axis: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Two metal rods of ``diameter`` mm in the body, with their artifacts.

    Each voxel is split into water and cortical bone (bone from
    :data:`BONE_START` HU, fully bone at cortical bone's HU), the rods
    (:func:`place_rods`, the same in every slice, off the labelled organs when
    ``labels`` is given; the label map is only read) add their path through
    metal; the spectrum-weighted transmission (:func:`polychromatic`) of the
    rays that cross metal is drawn as counts (Poisson below
    :data:`~.ct_noise.STARVED_COUNTS`, Gaussian above, electronic noise,
    clipped at one count) from ``photons`` per view per mm^2 with the
    bowtie; the scanner's water correction (:func:`linearise`) is applied
    with and without metal, and the FBP of the difference is added. The
    metal itself appears bright (clipped at :data:`~.ct_geometry.HU_CEILING`),
    dark and bright streaks radiate from it, and the rays through both rods
    leave a dark band between them.

    Args:
        x: CT in HU, ``(C, I, J, K)`` or a batch.
        diameter: Diameter of each rod, mm.
        material: One of :data:`METALS`.
        labels: Label map of ``x``'s grid (read only), to keep the rods off
            the organs.
        photons: Incident photons per view per mm^2 of detector.
        electronic: Electronic noise std in counts per reference reading.
        spacing: Voxel spacing in mm.
        slice_axis: Voxel axis across the axial slices.
        generator: Placement and counts.

    Example:
        >>> ct = torch.full((1, 48, 48, 1), -1000.0)
        >>> ct[:, 8:40, 4:44] = 40.0
        >>> out = metal(ct, diameter=12.0, spacing=(3.0, 3.0, 3.0),
        ...             generator=torch.Generator())
        >>> float(out.max()), bool((out - ct).abs().mean() > 5)
        (3071.0, True)
    """
    slices = AxialSlices.of(x, spacing, slice_axis)
    if material not in METALS:
        raise ValueError(f'material must be one of {METALS}, not {material!r}')
    if not (math.isfinite(diameter) and diameter >= 0):
        raise ValueError(
            f'diameter must be a non-negative number (mm), not {diameter!r}'
        )
    if diameter == 0:
        return x.clone()
    columns = slices.columns(x)
    plan = simulation(slices.size, slices.spacing, str(x.device))
    body = (columns > -500).float().mean(dim=2).cpu() > 0.5
    avoid = None
    if labels is not None:
        grid = labels.reshape(labels.shape[-3:]) if labels.ndim == 4 else labels
        if tuple(grid.shape) != tuple(x.shape[-3:]):
            message = (
                f'labels must have the image grid {tuple(x.shape[-3:])}, not'
                f' {tuple(labels.shape)}'
            )
            raise ValueError(message)
        avoid = slices.columns(grid[None].ne(0)).any(dim=2).cpu()
    rods = place_rods(body, diameter / 2, slices.spacing, avoid, generator)
    # mm of water and of cortical bone per voxel, at 70 keV equal to mu
    # on the projection grid: mm of water and of bone per mm, at 70 keV mu
    mu = plan.coarsen(hu_to_mu(columns))
    hu = plan.coarsen(columns).to(torch.float32, copy=True)  # never x itself
    bone = hu.sub_(BONE_START).div_(1000 * (BONE_MU_70 / MU_WATER - 1) - BONE_START)
    bone = bone.clamp_(0, 1).mul_(mu)
    water = mu.sub_(bone).div_(MU_WATER)
    bone = bone.div_(BONE_MU_70)
    rod = plan.coarsen(rods.to(x.device, torch.float32)[:, :, None])
    projected = plan.coarse.project_columns(torch.cat([water, bone, rod], dim=2))
    del water, bone, mu
    count = slices.count
    p_water, p_bone, p_metal = (
        projected[..., :count],
        projected[..., count:-1],
        projected[..., -1:],
    )
    clean = polychromatic({'water': p_water, 'bone': p_bone})
    hard = polychromatic(
        {'water': p_water, 'bone': p_bone, material: p_metal.expand_as(p_water)}
    )
    # counts on the rays through metal: quantum (Poisson when starved) + electronic
    beam = plan.coarse
    flux = incident(beam, slices.thickness, photons).to(x.device)[None, :, None]
    expected = torch.exp(-hard).mul_(flux)
    quantum = randn(expected, generator).mul_(expected.sqrt())
    spread = electronic * math.sqrt(readings(beam, slices.thickness))
    counts = expected + quantum + randn(expected, generator).mul_(spread)
    exact = (expected < STARVED_COUNTS) & (p_metal > 0)
    if bool(exact.any()):
        device = 'cpu' if generator is None else generator.device
        drawn = torch.poisson(expected[exact].to(device), generator=generator)
        counts[exact] += drawn.to(x.device) - expected[exact] - quantum[exact]
    measured = torch.log(flux / counts.clamp_(min=1.0))
    measured = torch.where(p_metal > 0, measured, hard)
    table = water_correction(x.device)
    error = linearise(measured, table) - linearise(clean, table)
    out = add_artifact(x, slices, plan.reconstruct(error))
    return torch.minimum(out, torch.maximum(x, torch.full_like(x, HU_CEILING)))
