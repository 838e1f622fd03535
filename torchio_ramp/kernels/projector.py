"""Parallel-beam projector: Radon transform and filtered back-projection in torch.

Axial slices ``(S, H, W)`` are projected along parallel rays at angles
``theta`` in ``[0, pi)`` onto a detector of ``L`` bins, and reconstructed by
filtered back-projection (FBP). All slices and all angles are processed by one
sparse matrix product, so the cost is that of a matrix-vector product per
slice, on CPU or CUDA alike (float32).

Geometry (physical units, the voxel spacing respected):

* pixel ``(i, j)`` of a slice sits at ``x = (j - (W - 1) / 2) dx``,
  ``y = (i - (H - 1) / 2) dy`` (millimetres; ``dy, dx`` = row and column
  spacing);
* the ray at angle ``theta`` and detector position ``t`` is the line
  ``x cos(theta) + y sin(theta) = t``; bins are ``dt = min(dx, dy)`` apart and
  centred on the rotation axis; ``L`` covers the slice's diagonal;
* forward projection is Joseph's method: along each ray, one linear
  interpolation per row (or column, whichever the ray crosses more steeply),
  weighted by the path length through it, so a sinogram holds line integrals
  in millimetres times the image unit (``mu`` in 1/mm gives dimensionless
  attenuation ``p = -ln(I / I0)``);
* back-projection is pixel driven (linear interpolation on the detector), as in
  scikit-image's ``iradon``; FBP filters each projection with the ramp
  (Ram-Lak) or Shepp-Logan filter, zero-padded to avoid circular convolution.

Why a torch implementation: ``astra-toolbox`` 2.5 installs from PyPI but
pulls CUDA runtime wheels, and its fast paths are CUDA-only; ``diffct`` 2.5
needs ``numba-cuda`` (GPU kernels only); ODL 1.0 is pure Python and delegates
tomography to ASTRA or to scikit-image (slow, NumPy only). None takes torch
tensors on both devices. The sparse-matrix formulation needs no compiled
extension, runs on CPU and CUDA alike, and is differentiable; the matrices are
built once per geometry (vectorised, in blocks of angles) and cached.

Example:
    >>> import torch
    >>> image = torch.zeros(1, 32, 32)
    >>> image[0, 12:20, 10:22] = 1.0
    >>> geometry = ParallelBeam((32, 32), spacing=(1.0, 1.0), views=64)
    >>> sinogram = geometry.project(image)
    >>> sinogram.shape
    torch.Size([1, 64, 47])
    >>> round(float(sinogram[0, 0].sum()), 3)  # total mass x dt at every angle
    96.0
    >>> error = (geometry.fbp(sinogram) - image).abs().mean()
    >>> bool(error < 0.05)
    True
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import torch

MAX_NONZEROS = 1 << 23
"""Non-zeros per sparse block (about 100 MB): blocks split the angles."""

FILTERS = ('ramp', 'shepp-logan')
"""Reconstruction filters of :meth:`ParallelBeam.fbp`."""


def default_views(shape: Sequence[int]) -> int:
    """Views for an aliasing-free parallel-beam scan: ``ceil(pi / 2 * max(H, W))``.

    Example:
        >>> default_views((128, 128))
        202
    """
    return math.ceil(math.pi / 2 * max(shape))


def detector_bins(shape: Sequence[int], spacing: Sequence[float]) -> int:
    """Number of bins (``dt = min(spacing)``) covering the slice's diagonal, odd.

    Example:
        >>> detector_bins((32, 32), (1.0, 1.0))
        47
    """
    height, width = shape
    dy, dx = spacing
    diagonal = math.hypot(height * dy, width * dx)
    bins = math.ceil(diagonal / min(dy, dx))
    return bins + (1 - bins % 2)


class ParallelBeam:
    """A parallel-beam geometry for slices of one shape and spacing.

    Args:
        shape: ``(H, W)`` of a slice.
        spacing: ``(dy, dx)`` in mm (row spacing, column spacing).
        views: Number of equally spaced angles in ``[0, pi)`` (default:
            :func:`default_views`); or give ``angles``.
        angles: Explicit angles in radians (overrides ``views``).
        arc: Angular range the views cover (radians; default ``pi``): each
            view is weighted by ``arc / views`` in the back-projection (a
            limited-angle scan covers less than ``pi``).
        device: Where the matrices live (and the sinograms are made).
        cache: Keep the matrices in a small process-wide cache shared by
            every geometry with the same shape, spacing and angles (default);
            ``False`` for one-off geometries (random angles), which would
            otherwise push the reusable ones out of it.

    Attributes:
        angles: ``(A,)`` float64 tensor of angles (radians, CPU).
        bins: Number of detector bins ``L``; ``dt`` their spacing in mm.
    """

    def __init__(
        self,
        shape: Sequence[int],
        spacing: Sequence[float] = (1.0, 1.0),
        views: int | None = None,
        angles: Sequence[float] | torch.Tensor | None = None,
        arc: float = math.pi,
        device: torch.device | str = 'cpu',
        cache: bool = True,
    ):
        height, width = (int(n) for n in shape)
        if height < 1 or width < 1:
            raise ValueError(f'shape must be two positive sizes, not {tuple(shape)}')
        dy, dx = (float(s) for s in spacing)
        if not (math.isfinite(dy) and math.isfinite(dx) and dy > 0 and dx > 0):
            raise ValueError(f'spacing must be two positive numbers, not {spacing}')
        if angles is None:
            views = default_views((height, width)) if views is None else int(views)
            if views < 1:
                raise ValueError(f'views must be a positive integer, not {views}')
            angles = torch.arange(views, dtype=torch.float64) * (math.pi / views)
        angles = torch.as_tensor(angles, dtype=torch.float64).flatten().cpu()
        if angles.numel() == 0:
            raise ValueError('angles: give at least one angle')
        self.shape = (height, width)
        self.spacing = (dy, dx)
        self.angles = angles
        self.arc = float(arc)
        self.bins = detector_bins(self.shape, self.spacing)
        self.dt = min(dy, dx)
        self.device = torch.device(device)
        self._key = (self.shape, self.spacing, tuple(angles.tolist()), str(device))
        self._cache = cache
        self._blocks: dict[str, tuple[torch.Tensor, ...]] = {}

    def _matrices(self, kind: str) -> tuple[torch.Tensor, ...]:
        build = {'forward': _projection_blocks, 'back': _backprojection_blocks}[kind]
        if self._cache:
            return build(*self._key)
        if kind not in self._blocks:
            self._blocks[kind] = build.__wrapped__(*self._key)
        return self._blocks[kind]

    @property
    def views(self) -> int:
        return self.angles.numel()

    def project(self, image: torch.Tensor) -> torch.Tensor:
        """Line integrals of ``image`` ``(S, H, W)``: a sinogram ``(S, A, L)``.

        Units: image unit x mm.
        """
        slices = self._check(image, self.shape, 'image')
        columns = image.reshape(slices, -1).T.to(torch.float32)
        blocks = self._matrices('forward')
        out = torch.cat([torch.sparse.mm(block, columns) for block in blocks])
        return out.T.reshape(slices, self.views, self.bins).to(image.dtype)

    def backproject(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Pixel-driven back-projection ``(S, A, L) -> (S, H, W)``, x ``arc / A``."""
        slices = self._check(sinogram, (self.views, self.bins), 'sinogram')
        rows = sinogram.to(torch.float32).permute(1, 2, 0)
        blocks = self._matrices('back')
        out = None
        start = 0
        for block in blocks:
            count = block.shape[1] // self.bins
            chunk = rows[start : start + count].reshape(-1, slices)
            part = torch.sparse.mm(block, chunk)
            out = part if out is None else out.add_(part)
            start += count
        out = out.mul_(self.arc / self.views)
        return out.T.reshape(slices, *self.shape).to(sinogram.dtype)

    def filter(self, sinogram: torch.Tensor, name: str = 'ramp') -> torch.Tensor:
        """Convolve every projection with the ramp or Shepp-Logan filter (1/mm)."""
        if name not in FILTERS:
            raise ValueError(f'filter must be one of {FILTERS}, not {name!r}')
        bins = sinogram.shape[-1]
        size = max(64, 1 << math.ceil(math.log2(2 * bins)))
        response = _filter_response(size, name, self.dt, str(sinogram.device))
        spectrum = torch.fft.rfft(sinogram.to(torch.float32), n=size, dim=-1)
        filtered = torch.fft.irfft(spectrum * response, n=size, dim=-1)
        return filtered[..., :bins].to(sinogram.dtype)

    def fbp(self, sinogram: torch.Tensor, filter: str = 'ramp') -> torch.Tensor:
        """Filtered back-projection ``(S, A, L) -> (S, H, W)`` in the image unit."""
        return self.backproject(self.filter(sinogram, filter))

    @staticmethod
    def _check(tensor: torch.Tensor, shape: tuple[int, int], name: str) -> int:
        if tensor.ndim != 3 or tuple(tensor.shape[1:]) != shape:
            message = (
                f'{name} must have shape (S, {shape[0]}, {shape[1]}), not'
                f' {tuple(tensor.shape)}'
            )
            raise ValueError(message)
        return tensor.shape[0]


def _pixel_centres(
    shape: tuple[int, int], spacing: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres of the rows and columns in mm (float64), the slice centred at 0."""
    (height, width), (dy, dx) = shape, spacing
    y = (torch.arange(height, dtype=torch.float64) - (height - 1) / 2) * dy
    x = (torch.arange(width, dtype=torch.float64) - (width - 1) / 2) * dx
    return y, x


def _angle_chunks(views: int, per_view: int) -> list[tuple[int, int]]:
    step = max(1, MAX_NONZEROS // max(per_view, 1))
    return [(start, min(start + step, views)) for start in range(0, views, step)]


@functools.lru_cache(maxsize=8)
def _projection_blocks(
    shape: tuple[int, int],
    spacing: tuple[float, float],
    angles: tuple[float, ...],
    device: str,
) -> tuple[torch.Tensor, ...]:
    """Joseph's projection matrix, as CSR blocks of consecutive angles."""
    height, width = shape
    dy, dx = spacing
    bins = detector_bins(shape, spacing)
    dt = min(dy, dx)
    theta_all = torch.tensor(angles, dtype=torch.float64)
    t = (torch.arange(bins, dtype=torch.float64) - (bins - 1) / 2) * dt
    y, x = _pixel_centres(shape, spacing)
    per_view = bins * max(height, width) * 2
    blocks = []
    for start, stop in _angle_chunks(len(angles), per_view):
        theta = theta_all[start:stop]
        cos, sin = torch.cos(theta), torch.sin(theta)
        views = torch.arange(stop - start)
        # rays crossing rows more steeply step over rows: x = (t - y sin) / cos
        steep = cos.abs() * dy >= sin.abs() * dx
        c, s, v = cos[steep, None, None], sin[steep, None, None], views[steep]
        column = (t[:, None] - y[None, :] * s) / c / dx + (width - 1) / 2
        row = torch.arange(height).expand_as(column)
        parts = [_interp(v, column, row, (dy / c.abs()).expand_as(column), width, bins)]
        c, s, v = cos[~steep, None, None], sin[~steep, None, None], views[~steep]
        row = (t[:, None] - x[None, :] * c) / s / dy + (height - 1) / 2
        column = torch.arange(width).expand_as(row)
        weight = (dx / s.abs()).expand_as(row)
        parts.append(_interp(v, row, column, weight, height, bins, transpose=True))
        row = torch.cat([p[0] for p in parts])
        col = torch.cat([p[1] for p in parts])
        val = torch.cat([p[2] for p in parts])
        size = ((stop - start) * bins, height * width)
        blocks.append(_csr(torch.stack([row, col]), val, size, device))
    return tuple(blocks)


def _interp(views, position, other, weight, extent, bins, *, transpose=False):
    """Triplets (row, column, value) of linear interpolation along one axis.

    ``position`` ``(a, L, n)`` is the fractional index along the interpolated
    axis (of size ``extent``) for view ``views[a]``, bin ``L`` and step ``n``
    along the other axis (index ``other``); ``transpose`` means the
    interpolated axis is the rows.
    """
    lower = torch.floor(position)
    frac = position - lower
    lower = lower.long()
    ray = views[:, None, None] * bins + torch.arange(bins)[None, :, None]
    ray = ray.expand_as(lower)
    rows, columns, values = [], [], []
    for neighbour, w in ((lower, 1 - frac), (lower + 1, frac)):
        keep = (neighbour >= 0) & (neighbour < extent) & (w > 0)
        if transpose:  # neighbour is a row, other a column
            width = other.shape[-1]
            pixel = neighbour[keep] * width + other[keep]
        else:  # neighbour is a column, other a row
            pixel = other[keep] * extent + neighbour[keep]
        rows.append(ray[keep])
        columns.append(pixel)
        values.append((w * weight)[keep])
    return torch.cat(rows), torch.cat(columns), torch.cat(values)


@functools.lru_cache(maxsize=8)
def _backprojection_blocks(
    shape: tuple[int, int],
    spacing: tuple[float, float],
    angles: tuple[float, ...],
    device: str,
) -> tuple[torch.Tensor, ...]:
    """Pixel-driven back-projection matrix, as CSR blocks of consecutive angles."""
    height, width = shape
    dy, dx = spacing
    bins = detector_bins(shape, spacing)
    dt = min(dy, dx)
    theta_all = torch.tensor(angles, dtype=torch.float64)
    y, x = _pixel_centres(shape, spacing)
    yy, xx = (g.flatten() for g in torch.meshgrid(y, x, indexing='ij'))
    pixels = torch.arange(height * width)
    blocks = []
    for start, stop in _angle_chunks(len(angles), height * width * 2):
        theta = theta_all[start:stop]
        t = (
            xx[None, :] * torch.cos(theta)[:, None]
            + yy[None, :] * torch.sin(theta)[:, None]
        )
        u = t / dt + (bins - 1) / 2  # (a, P)
        lower = torch.floor(u)
        frac = u - lower
        lower = lower.long()
        view = torch.arange(stop - start)[:, None].expand_as(lower)
        rows, cols, vals = [], [], []
        for neighbour, w in ((lower, 1 - frac), (lower + 1, frac)):
            keep = (neighbour >= 0) & (neighbour < bins) & (w > 0)
            rows.append(pixels[None, :].expand_as(lower)[keep])
            cols.append(view[keep] * bins + neighbour[keep])
            vals.append(w[keep])
        size = (height * width, (stop - start) * bins)
        indices = torch.stack([torch.cat(rows), torch.cat(cols)])
        blocks.append(_csr(indices, torch.cat(vals), size, device))
    return tuple(blocks)


def _csr(indices, values, size, device) -> torch.Tensor:
    """A float32 CSR matrix (duplicates summed) on ``device``."""
    matrix = torch.sparse_coo_tensor(
        indices, values.to(torch.float32), size, check_invariants=False
    ).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter('ignore', UserWarning)
        return matrix.to_sparse_csr().to(device)


@functools.lru_cache(maxsize=16)
def _filter_response(size: int, name: str, dt: float, device: str) -> torch.Tensor:
    """Real frequency response (``rfft`` bins) of the discrete ramp filter.

    The spatial Ram-Lak kernel of Kak and Slaney (h[0] = 1/(4 dt^2),
    h[n odd] = -1/(pi n dt)^2), times ``dt`` for the convolution integral,
    which avoids the DC offset of a sampled ``|f|``.
    """
    n = torch.cat(
        [torch.arange(1, size // 2 + 1), torch.arange(size // 2 - 1, 0, -1)]
    ).to(torch.float64)
    kernel = torch.zeros(size, dtype=torch.float64)
    kernel[0] = 0.25
    odd = n % 2 == 1
    values = torch.zeros_like(n)
    values[odd] = -1.0 / (math.pi * n[odd]) ** 2
    kernel[1:] = values
    response = torch.fft.rfft(kernel).real / dt
    if name == 'shepp-logan':
        frequency = torch.fft.rfftfreq(size, dtype=torch.float64)
        omega = math.pi * frequency[1:]
        response[1:] *= torch.sin(omega) / omega
    return response.to(torch.float32).to(device)
