"""The scan a CT-physics kernel sees: axial slices, their grid and attenuation.

A CT in Hounsfield units ``(C, I, J, K)`` is cut into axial slices along the
voxel axis closest to the patient's superior-inferior axis
(:func:`axial_axis`, read from the image's affine; TorchIO's last axis ``K``
for a canonical RAS image), and the slices become the columns of a matrix
``(H, W, S)`` (:class:`AxialSlices`) that the projector
(:mod:`~torchio_ramp.kernels.projector`) takes without a copy when the slice
axis is the last one.

Projections are made on a grid of at most :data:`PROJECTION_SIZE` pixels a
side (:class:`Simulation`): a 512 x 512 slice is averaged over 2 x 2 pixels
first, so its sinogram costs an eighth of the full one. Artifacts are
reconstructed on that grid (their detector, 1.4 mm at a 0.7 mm pixel, limits
their resolution anyway) and interpolated onto the full one; noise is drawn on
the full detector and reconstructed on the full grid, so it keeps its texture.
The image itself keeps its resolution: only the artifact is added.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .projector import ParallelBeam

MU_WATER = 0.0194
"""Linear attenuation coefficient of water at 70 keV, in 1/mm.

Water's mass attenuation coefficient is 0.2059 cm^2/g at 60 keV and 0.1837
cm^2/g at 80 keV (NIST XCOM, Hubbell and Seltzer); log-log interpolation gives
0.194 cm^2/g at 70 keV, the effective energy of a 120 kVp beam, times
1 g/cm^3."""

HU_FLOOR = -1024.0
"""Smallest value written (the lowest value a 12-bit scanner stores)."""

HU_CEILING = 3071.0
"""Largest value a 12-bit scanner stores: inserted metal is clipped to it."""

SOFT_TISSUE_MTF50 = 0.35
"""50% frequency (line pairs per mm) of the soft-tissue reconstruction kernel.

Every simulated artifact and noise is reconstructed with a Gaussian modulation
transfer function of this 50% frequency (Gaussian point-spread functions
describe CT scanners well: Nickoloff and Riley 1985, Med. Phys. 12(4)), a
representative value for the standard body kernels abdominal CTs are read
with (sharp bone and lung kernels reach about twice as high)."""

PROJECTION_SIZE = 256
"""Largest side (pixels) of the grid projections are made on."""

AXIAL_TOLERANCE = 40.0
"""Largest angle (degrees) between the slice axis and the superior-inferior axis."""


def hu_to_mu(hu: torch.Tensor) -> torch.Tensor:
    """Linear attenuation (1/mm) of Hounsfield units; air and below give 0.

    Example:
        >>> hu_to_mu(torch.tensor([-1000.0, 0.0, 1000.0]))
        tensor([0.0000, 0.0194, 0.0388])
    """
    return (hu.to(torch.float32) / 1000 + 1).clamp_(min=0).mul_(MU_WATER)


def mu_to_hu(mu: torch.Tensor) -> torch.Tensor:
    """Hounsfield units of a linear attenuation (1/mm).

    Example:
        >>> mu_to_hu(torch.tensor([0.0194]))
        tensor([0.])
    """
    return mu / MU_WATER * 1000 - 1000


def axial_axis(affine) -> int:
    """The voxel axis (0, 1 or 2) along which the slices are axial.

    The axis whose direction is closest to the patient's superior-inferior
    axis (the world ``z`` of RAS and LPS alike), within
    :data:`AXIAL_TOLERANCE` degrees (gantry tilts stay below 30).

    Raises:
        ValueError: The affine is not a 4 x 4 (or 3 x 3) finite matrix with
            independent columns, or no voxel axis is within the tolerance
            (a sagittal or coronal acquisition, or an oblique one).

    Example:
        >>> import numpy as np
        >>> axial_axis(np.diag([0.7, 0.7, 3.0, 1.0]))  # canonical: the last
        2
        >>> axial_axis(np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]))
        1
    """  # noqa: E501
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape not in ((4, 4), (3, 3)) or not np.isfinite(matrix).all():
        raise ValueError(f'affine must be a finite 4 x 4 matrix, not {matrix.tolist()}')
    directions = matrix[:3, :3]
    norms = np.linalg.norm(directions, axis=0)
    if not (norms > 0).all() or abs(np.linalg.det(directions)) < 1e-12 * norms.prod():
        raise ValueError(f'affine has dependent or zero axes: {matrix.tolist()}')
    cosines = np.abs(directions[2]) / norms
    axis = int(np.argmax(cosines))
    if cosines[axis] < math.cos(math.radians(AXIAL_TOLERANCE)):
        angles = ', '.join(
            f'{name} {math.degrees(math.acos(min(c, 1.0))):.0f} deg'
            for name, c in zip('ijk', cosines, strict=True)
        )
        message = (
            'the image is not axial: no voxel axis lies within'
            f' {AXIAL_TOLERANCE:g} degrees of the superior-inferior axis'
            f' ({angles}); CT-physics families simulate axial slices: resample'
            ' the CT to an axial orientation first'
        )
        raise ValueError(message)
    return axis


@dataclass(frozen=True)
class AxialSlices:
    """The axial slices of a volume ``(C, I, J, K)`` as columns ``(H, W, S)``.

    Attributes:
        shape: The volume's shape.
        axis: Its slice axis (0, 1 or 2 for ``I``, ``J``, ``K``).
        spacing: In-plane spacing ``(dy, dx)`` in mm (rows, columns of a slice).
        thickness: Spacing along the slice axis in mm.
    """

    shape: tuple[int, ...]
    axis: int
    spacing: tuple[float, float]
    thickness: float

    @classmethod
    def of(
        cls,
        x: torch.Tensor,
        spacing: Sequence[float],
        slice_axis: int = 2,
    ) -> AxialSlices:
        """The slicing of ``x`` with voxel ``spacing`` (mm) along ``slice_axis``."""
        values = tuple(float(s) for s in spacing)
        if len(values) == 2:
            values = (*values, 1.0)
        if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
            message = f'spacing must be 2 or 3 positive numbers (mm), not {spacing}'
            raise ValueError(message)
        if slice_axis not in (0, 1, 2):
            raise ValueError(f'slice_axis must be 0, 1 or 2, not {slice_axis!r}')
        plane = [a for a in range(3) if a != slice_axis]
        in_plane = (values[plane[0]], values[plane[1]])
        return cls(tuple(x.shape), slice_axis, in_plane, values[slice_axis])

    @property
    def plane(self) -> tuple[int, int]:
        """The two in-plane voxel axes, in order."""
        first, second = (a for a in range(3) if a != self.axis)
        return first, second

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of a slice."""
        return self.shape[1 + self.plane[0]], self.shape[1 + self.plane[1]]

    @property
    def count(self) -> int:
        """Number of columns: slices times channels."""
        return self.shape[0] * self.shape[1 + self.axis]

    def columns(self, x: torch.Tensor) -> torch.Tensor:
        """``(C, I, J, K) -> (H, W, C S)``: a view when the slices are last."""
        first, second = self.plane
        moved = x.permute(1 + first, 1 + second, 0, 1 + self.axis)
        return moved.reshape(*self.size, self.count)

    def volume(self, columns: torch.Tensor) -> torch.Tensor:
        """``(H, W, C S) -> (C, I, J, K)``: the inverse of :meth:`columns`."""
        channels = self.shape[0]
        grid = columns.reshape(*self.size, channels, -1)  # (H, W, C, S)
        order = [0] * 4
        first, second = self.plane
        order[1 + first], order[1 + second] = 0, 1
        order[0], order[1 + self.axis] = 2, 3
        return grid.permute(*order)


@dataclass(frozen=True)
class Simulation:
    """The projection geometries of slices of one shape and spacing.

    Attributes:
        fine: The full slice grid with its default views and detector (noise is
            drawn on it).
        factor: Pixels averaged per side before projecting (1 up to
            :data:`PROJECTION_SIZE` pixels a side).
        coarse: The averaged grid, its views and detector (projections and
            the artifacts' reconstruction).
    """

    fine: ParallelBeam
    factor: int
    coarse: ParallelBeam

    def coarsen(self, columns: torch.Tensor) -> torch.Tensor:
        """Average ``(H, W, S)`` over ``factor x factor`` pixels."""
        if self.factor == 1:
            return columns
        pooled = torch.nn.functional.avg_pool2d(
            columns.permute(2, 0, 1)[None],
            self.factor,
            ceil_mode=True,
        )
        return pooled[0].permute(1, 2, 0)

    def project(self, columns: torch.Tensor) -> torch.Tensor:
        """Line integrals ``(A, L, S)`` of slices on the coarse grid."""
        return self.coarse.project_columns(self.coarsen(columns))

    def reconstruct(self, sinogram: torch.Tensor) -> torch.Tensor:
        """FBP (soft-tissue kernel) of a coarse sinogram, on the full grid.

        Reconstructed on the coarse grid and interpolated (bilinear, pixel
        centres as the averaging placed them) onto the full one.
        """
        image = self.coarse.fbp_columns(sinogram, mtf50=SOFT_TISSUE_MTF50)
        if self.factor == 1:
            return image
        height, width = self.fine.shape
        upsampled = torch.nn.functional.interpolate(
            image.permute(2, 0, 1)[None],
            scale_factor=self.factor,
            mode='bilinear',
            align_corners=False,
        )
        return upsampled[0, :, :height, :width].permute(1, 2, 0)

    def to_fine_detector(self, sinogram: torch.Tensor) -> torch.Tensor:
        """A coarse sinogram ``(A, L, S)`` sampled at the fine views and bins.

        Nearest coarse view below each fine one, linear along the detector:
        for smooth functions of the attenuation (noise variance).
        """
        if self.factor == 1:
            return sinogram
        coarse, fine = self.coarse, self.fine
        view = (fine.angles / math.pi * coarse.views).floor().long()
        view = view.clamp_(0, coarse.views - 1).to(sinogram.device)
        t = torch.arange(fine.bins, dtype=torch.float64) - (fine.bins - 1) / 2
        position = (t * fine.dt / coarse.dt + (coarse.bins - 1) / 2).clamp_(
            0, coarse.bins - 1
        )
        lower = position.floor().clamp_(max=coarse.bins - 2)
        frac = (position - lower).to(torch.float32).to(sinogram.device)[:, None]
        lower = lower.long().to(sinogram.device)
        rows = sinogram.index_select(0, view)
        low = rows.index_select(1, lower)
        high = rows.index_select(1, lower + 1)
        return low.lerp_(high, frac)


@functools.lru_cache(maxsize=16)
def simulation(
    size: tuple[int, int],
    spacing: tuple[float, float],
    device: str = 'cpu',
) -> Simulation:
    """The :class:`Simulation` of slices of ``size`` pixels and ``spacing`` mm.

    Example:
        >>> plan = simulation((512, 512), (0.7, 0.7))
        >>> plan.factor, plan.coarse.shape, plan.fine.views, plan.coarse.views
        (2, (256, 256), 805, 403)
    """
    fine = ParallelBeam(size, spacing, device=device)
    factor = max(1, math.ceil(max(size) / PROJECTION_SIZE))
    if factor == 1:
        return Simulation(fine, 1, fine)
    coarse_size = tuple(math.ceil(n / factor) for n in size)
    coarse_spacing = tuple(s * factor for s in spacing)
    coarse = ParallelBeam(coarse_size, coarse_spacing, device=device)
    return Simulation(fine, factor, coarse)


def add_artifact(
    x: torch.Tensor,
    slices: AxialSlices,
    artifact_mu: torch.Tensor,
) -> torch.Tensor:
    """``x`` (HU) plus an attenuation artifact (1/mm, columns), clipped below."""
    artifact = slices.volume(artifact_mu.mul_(1000 / MU_WATER)).to(x.dtype)
    return (x + artifact).clamp_(min=HU_FLOOR)
