"""Synthetic phantom CTs: seeded, pure-NumPy abdominal CT slabs.

:func:`make_phantom` / :func:`phantom_subject` draw a phantom with the six
TotalSegmentator structures the five-class head needs, so that every test,
example and demo runs offline. Phantoms are synthetic data, not anatomy; they
only look like an abdominal CT slab.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torchio as tio

from .labels import TOTALSEG_STRUCTURES
from .labels import merge_totalseg_masks

HU = {
    'air': -1000,
    'lung': -850,
    'lumen': -900,
    'fat': -100,
    'muscle': 40,
    'csf': 15,
    'bone': 450,
    'cortical_bone': 700,
    'liver': 60,
    'spleen': 50,
    'kidney': 150,
    'heart': 40,
    'colon_wall': 30,
    'pancreas': 45,
}
"""Mean Hounsfield units of the phantom's tissues (noise is added on top)."""


@dataclass
class Phantom:
    """A synthetic CT volume with its structure masks.

    Attributes:
        hu: ``int16`` Hounsfield units, voxel order ``(I, J, K)``, where ``I``
            runs towards the patient's right, ``J`` anterior and ``K``
            superior (RAS).
        affine: ``4x4`` voxel-to-world matrix in RAS+ (NIfTI / TorchIO
            convention).
        masks: ``uint8`` binary masks of ``liver``, ``spleen``,
            ``kidney_left``, ``kidney_right``, ``heart`` and ``colon``
            (plus ``pancreas`` when requested); masks never overlap.
        seed: Seed that generated the phantom.
    """

    hu: np.ndarray
    affine: np.ndarray
    masks: dict[str, np.ndarray]
    seed: int

    def label(self) -> np.ndarray:
        """Return the five-class ``uint8`` label map (values 0..5).

        Example:
            >>> phantom = make_phantom((24, 24, 24), seed=1)
            >>> sorted(set(phantom.label().ravel().tolist()))
            [0, 1, 2, 3, 4, 5]
        """
        return merge_totalseg_masks(self.masks.__getitem__).label


def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """Normalised voxel-centre coordinates in ``[-1, 1]`` along each axis."""
    axes = []
    for n, dim in zip(shape, range(3), strict=True):
        coords = (2 * (np.arange(n, dtype=np.float32) + 0.5) / n - 1).astype(np.float32)
        view = [1, 1, 1]
        view[dim] = n
        axes.append(coords.reshape(view))
    return tuple(axes)


class _Blobs:
    """Smooth random blobs on a fixed grid (one ``rng`` for the whole phantom)."""

    def __init__(self, shape: tuple[int, int, int], rng: np.random.Generator):
        self.u, self.v, self.w = _grid(shape)
        self.rng = rng

    def jitter(self, center, radii, move=0.03, scale=0.1):
        center = np.asarray(center) + self.rng.normal(0, move, 3)
        radii = np.asarray(radii) * self.rng.uniform(1 - scale, 1 + scale, 3)
        return center.tolist(), radii.tolist()

    def ellipsoid(self, center, radii, *, rough=0.12, tilt=0.15) -> np.ndarray:
        """Ellipsoid with a random tilt and a smooth random surface."""
        cu, cv, cw = center
        ru, rv, rw = radii
        angle = float(self.rng.normal(0, tilt))
        cos, sin = math.cos(angle), math.sin(angle)
        du, dv = self.u - cu, self.v - cv
        a = (cos * du + sin * dv) / ru
        b = (-sin * du + cos * dv) / rv
        c = (self.w - cw) / rw
        level = a * a + b * b + c * c
        for _ in range(3):
            freq = self.rng.uniform(1.0, 2.5, 3).tolist()
            phase = float(self.rng.uniform(0, 2 * math.pi))
            amplitude = rough * float(self.rng.uniform(0.5, 1.0))
            level = level + amplitude * np.cos(
                freq[0] * a + freq[1] * b + freq[2] * c + phase
            )
        return level < 1

    def tube(self, points, radius) -> np.ndarray:
        """Distance to a polyline, in units of ``radius``."""
        best = None
        p = (self.u, self.v, self.w)
        for start, end in itertools.pairwise(points):
            start = [float(x) for x in start]
            seg = [float(b) - a for a, b in zip(start, end, strict=True)]
            length2 = sum(x * x for x in seg)
            rel = [p[i] - start[i] for i in range(3)]
            t = (rel[0] * seg[0] + rel[1] * seg[1] + rel[2] * seg[2]) / length2
            t = np.clip(t, 0, 1)
            dist2 = sum((rel[i] - t * seg[i]) ** 2 for i in range(3))
            best = dist2 if best is None else np.minimum(best, dist2)
        return np.sqrt(best) / radius


def make_phantom(
    shape: tuple[int, int, int] = (64, 64, 48),
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0),
    seed: int = 0,
    *,
    noise_std: float = 15.0,
    pancreas: bool = False,
) -> Phantom:
    """Generate a synthetic abdominal CT slab with organ masks.

    Air outside the body, a body ellipse of subcutaneous fat, an abdominal
    wall of muscle, visceral fat inside, a vertebra with paraspinal muscles,
    lung bases and the heart in the superior part, the liver on the patient's
    right, the spleen on the left, two enhanced kidneys posteriorly and the
    colon as a tube frame (air lumen, soft-tissue wall). Organ shapes and
    positions vary smoothly with the seed; Gaussian noise is added. Tissue
    means are in :data:`HU`.

    Everything is drawn from ``numpy.random.default_rng(seed)``; the global
    NumPy state is neither used nor changed. Coordinates scale with
    ``shape``, so small shapes (e.g. ``(24, 24, 24)``) keep every organ.

    Args:
        shape: Voxels along ``(I, J, K)`` = (right, anterior, superior).
        spacing: Voxel size in mm; only sets the affine.
        seed: Seed of the random generator.
        noise_std: Standard deviation of the Gaussian noise in HU.
        pancreas: Also draw a pancreas (AbdomenCT-1K has a pancreas label);
            the other organs are identical with and without it, except where
            the pancreas takes voxels from the liver.

    Returns:
        The phantom (``int16`` HU, RAS affine centred on the origin, masks).

    Example:
        >>> phantom = make_phantom(seed=3)
        >>> phantom.hu.shape, phantom.hu.dtype
        ((64, 64, 48), dtype('int16'))
        >>> sorted(phantom.masks)
        ['colon', 'heart', 'kidney_left', 'kidney_right', 'liver', 'spleen']
        >>> int(phantom.hu[0, 0, 0]) < -900  # air in the corner
        True
    """
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f'shape must be three sizes >= 8, got {shape!r}')
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f'spacing must be three positive sizes, got {spacing!r}')
    shape = tuple(int(n) for n in shape)
    rng = np.random.default_rng(seed)
    blobs = _Blobs(shape, rng)
    u, v, w = blobs.u, blobs.v, blobs.w

    # Body: an elliptic cylinder, flatter at the back.
    body_u = 0.9 * rng.uniform(0.95, 1.03)
    body_v = 0.75 * rng.uniform(0.93, 1.03)
    back = np.where(v < 0, 0.88, 1.0).astype(np.float32)
    radial = np.sqrt((u / body_u) ** 2 + (v / (body_v * back)) ** 2)
    body = radial < 1
    wall = radial < 1 - 0.1 * rng.uniform(0.8, 1.2)  # inside subcutaneous fat
    inside = radial < 1 - 0.17 * rng.uniform(0.9, 1.1)  # inside abdominal wall
    body = np.broadcast_to(body, shape)
    wall = np.broadcast_to(wall, shape)
    inside = np.broadcast_to(inside, shape)

    # Spine (vertebral body with cortical rim, canal, spinous process) and
    # the paraspinal muscles, in the posterior body wall.
    spine_v = -0.32 * body_v / 0.75
    vert = np.sqrt((u / 0.12) ** 2 + ((v - spine_v) / 0.1) ** 2)
    canal = np.sqrt((u / 0.045) ** 2 + ((v - spine_v + 0.16) / 0.04) ** 2) < 1
    process = (np.abs(u) < 0.03) & (v < spine_v - 0.2) & (v > spine_v - 0.3)
    bone = np.broadcast_to((vert < 1) | process, shape)
    canal = np.broadcast_to(canal, shape)
    paraspinal = np.broadcast_to(
        ((np.abs(u) - 0.17) / 0.12) ** 2 + ((v - spine_v + 0.19) / 0.09) ** 2 < 1,
        shape,
    )

    # Organs, centre/radii in normalised (u, v, w); u > 0 is patient's right.
    lungs = np.zeros(shape, bool)
    for side in (1, -1):
        c, r = blobs.jitter((0.45 * side, -0.08, 1.05), (0.4, 0.5, 0.5))
        lungs |= blobs.ellipsoid(c, r, rough=0.05)
    raw = {}
    raw['liver'] = blobs.ellipsoid(
        *blobs.jitter((0.42, -0.05, 0.32), (0.38, 0.42, 0.4))
    )
    raw['spleen'] = blobs.ellipsoid(
        *blobs.jitter((-0.55, -0.22, 0.3), (0.16, 0.22, 0.26))
    )
    raw['kidney_right'] = blobs.ellipsoid(
        *blobs.jitter((0.36, -0.28, -0.15), (0.15, 0.13, 0.3)), rough=0.08
    )
    raw['kidney_left'] = blobs.ellipsoid(
        *blobs.jitter((-0.36, -0.28, -0.12), (0.15, 0.13, 0.3)), rough=0.08
    )
    raw['heart'] = blobs.ellipsoid(
        *blobs.jitter((-0.12, 0.18, 0.9), (0.33, 0.3, 0.32)), rough=0.06
    )
    raw['pancreas'] = blobs.ellipsoid(
        *blobs.jitter((-0.05, -0.1, 0.0), (0.3, 0.075, 0.09)), rough=0.05
    )
    # Colon: an inverted U (ascending right, transverse, descending left).
    j = lambda: float(rng.normal(0, 0.03))  # noqa: E731
    flex = -0.22 + j()
    colon_v = 0.22 + j()
    points = [
        (0.62 + j(), colon_v - 0.1, -1.1),
        (0.64 + j(), colon_v - 0.05, -0.5 + j()),
        (0.6 + j(), colon_v, flex),
        (0.25 + j(), colon_v + 0.15, flex - 0.12 + j()),
        (-0.25 + j(), colon_v + 0.15, flex - 0.1 + j()),
        (-0.6 + j(), colon_v, flex + 0.02),
        (-0.64 + j(), colon_v - 0.05, -0.5 + j()),
        (-0.62 + j(), colon_v - 0.1, -1.1),
    ]
    colon_radius = 0.11 * rng.uniform(0.9, 1.1)
    colon_dist = blobs.tube(points, colon_radius)
    raw['colon'] = colon_dist < 1

    # Exclusive assignment: earlier organs keep contested voxels.
    free = inside & ~bone & ~canal & ~paraspinal
    masks: dict[str, np.ndarray] = {}
    order = ['kidney_left', 'kidney_right', 'spleen', 'colon', 'pancreas', 'heart']
    for name in [*order, 'liver']:
        region = raw[name] & free
        if name == 'pancreas' and not pancreas:
            continue
        masks[name] = region
        free = free & ~region

    hu = np.full(shape, HU['air'], np.float32)
    hu[body] = HU['fat']
    hu[wall] = HU['muscle']
    visceral = np.cos(2.5 * u + 1.7 * v + rng.uniform(0, 6)) * np.cos(
        1.9 * w + rng.uniform(0, 6)
    )
    hu[inside] = (HU['fat'] + 25 + 20 * visceral)[inside]
    hu[lungs & inside] = HU['lung']
    hu[paraspinal & wall] = HU['muscle'] + 5
    hu[bone & wall] = HU['bone']
    rim = np.broadcast_to((vert > 0.75) & (vert < 1), shape)
    hu[rim & wall] = HU['cortical_bone']
    hu[canal & wall] = HU['csf']
    for name in ('liver', 'spleen', 'heart', 'pancreas'):
        if name in masks:
            hu[masks[name]] = HU[name]
    for name in ('kidney_left', 'kidney_right'):
        hu[masks[name]] = HU['kidney']
    hu[masks['colon']] = HU['colon_wall']
    hu[masks['colon'] & (colon_dist < 0.55)] = HU['lumen']
    if noise_std > 0:
        hu += rng.standard_normal(shape, dtype=np.float32) * np.float32(noise_std)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)

    affine = np.diag([*map(float, spacing), 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(spacing, float)
    out = {name: masks[name].astype(np.uint8) for name in TOTALSEG_STRUCTURES}
    if pancreas:
        out['pancreas'] = masks['pancreas'].astype(np.uint8)
    return Phantom(hu=hu, affine=affine, masks=out, seed=seed)


def phantom_subject(
    shape: tuple[int, int, int] = (64, 64, 48),
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0),
    seed: int = 0,
    *,
    subject_id: str | None = None,
    noise_std: float = 15.0,
) -> tio.Subject:
    """Return a phantom as a TorchIO subject with the five-class label.

    The subject has the same keys and dtypes as those of :func:`load_split`:
    ``ct`` (``int16`` HU), ``label`` (``uint8``, 0..5), ``subject_id`` and
    ``dataset`` (``'synthetic-totalseg'``: phantoms are labelled synthetic).

    Args:
        shape: Voxels along ``(I, J, K)``.
        spacing: Voxel size in mm.
        seed: Seed of the phantom.
        subject_id: Defaults to ``f'phantom{seed:04d}'``.
        noise_std: Noise standard deviation in HU.

    Example:
        >>> subject = phantom_subject((24, 24, 24), seed=2)
        >>> subject.ct.shape, subject.label.data.dtype, subject.subject_id
        ((1, 24, 24, 24), torch.uint8, 'phantom0002')
    """
    phantom = make_phantom(shape, spacing, seed, noise_std=noise_std)
    return tio.Subject(
        ct=tio.ScalarImage(
            tensor=torch.from_numpy(phantom.hu[None]), affine=phantom.affine
        ),
        label=tio.LabelMap(
            tensor=torch.from_numpy(phantom.label()[None]), affine=phantom.affine
        ),
        subject_id=subject_id or f'phantom{seed:04d}',
        dataset='synthetic-totalseg',
    )
