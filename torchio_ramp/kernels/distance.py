"""Exact Euclidean distance transform of binary masks, in physical units.

The transform is separable (Felzenszwalb & Huttenlocher, 2012, "Distance
transforms of sampled functions"): the squared distance to the nearest feature
voxel is computed one axis at a time, each pass taking the lower envelope of
parabolas ``g(y) + (s (x - y))**2`` along every line of the volume, with ``s``
the voxel spacing of that axis, so anisotropic voxels (0.8 x 0.8 x 3 mm) are
exact. The first pass only needs the nearest feature along each line, found
with two cumulative scans; the later passes build the envelopes of all lines
at once: the loop runs over the positions along the axis, and every step is a
handful of whole-line tensor operations (a parabola is popped only on the few
lines that need it). Rows are addressed by voxel index, so a pass may skip
planes that hold nothing (:func:`nearest_distances`); index differences are
exact integers and every value is a float64 sum of ``(k s)**2`` terms, each
rounded once.

Unlike the intensity kernels of this package, these functions take masks
(``bool`` tensors) and return distances; they work on any device and batch over
leading dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

INF = math.inf


def check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """Voxel sizes as floats: ``ndim`` of them, each finite and positive.

    Raises:
        ValueError: naming ``spacing`` if a size is zero, negative, NaN or
            infinite, or if there are not ``ndim`` of them.

    Example:
        >>> check_spacing((0.8, 0.8, 3), 3)
        (0.8, 0.8, 3.0)
    """
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        message = f'spacing must be {ndim} positive voxel sizes in mm, not {spacing!r}'
        raise ValueError(message) from None
    if len(values) != ndim:
        message = (
            f'spacing must have one voxel size per spatial axis ({ndim}),'
            f' not {len(values)}: {spacing!r}'
        )
        raise ValueError(message)
    if not all(math.isfinite(s) and s > 0 for s in values):
        message = f'spacing must be finite and positive (mm), not {spacing!r}'
        raise ValueError(message)
    return values


def _nearest_along(
    features: torch.Tensor, position: torch.Tensor, step: float
) -> torch.Tensor:
    """Squared distance to the nearest feature along dim 0 of ``(n, L)``.

    ``position`` holds the voxel indices of the rows (increasing, not
    necessarily consecutive) and ``step`` the voxel size in mm.
    """
    position = position.view(-1, 1)
    before = torch.where(features, position, -INF).cummax(0).values
    after = torch.where(features, position, INF).flip(0).cummin(0).values.flip(0)
    distance = torch.minimum(position - before, after - position)
    return distance.mul_(step).square_()


def _lower_envelope(
    g: torch.Tensor, position: torch.Tensor, step: float
) -> torch.Tensor:
    """``min_y g[y] + (step (position[x] - position[y]))**2`` along dim 0.

    Felzenszwalb-Huttenlocher on all ``L`` lines of ``g`` ``(n, L)`` at once;
    ``position`` holds the voxel indices of the rows (increasing, not
    necessarily consecutive: the rows may skip empty planes). Index
    differences are exact integers, so each value is one rounding of
    ``(k step)**2`` sums. Each line's
    stack of envelope parabolas is a linked list through the rows: the
    parabola of row ``q`` is written at row ``q`` (the left end of its piece,
    and the row below it on the stack), so a step writes two whole rows and
    no scatter is needed; the top of every stack is held in whole-line
    vectors, so the usual step (intersect with the top, push) is elementwise,
    and pops read the rows only for the lines that pop. At the end the rows
    still on a stack are those never popped, and each position finds its
    parabola by a sorted search of their left ends.
    """
    n, lines = g.shape
    device, dtype = g.device, g.dtype
    a = step * step
    coordinates = position.tolist()
    start = torch.empty(n, lines, dtype=dtype, device=device)
    below = torch.empty(n, lines, dtype=torch.int32, device=device)  # rows < 2**31
    alive = torch.isfinite(g)
    top = torch.full((lines,), -1, dtype=torch.int32, device=device)
    # of each line's top parabola: g + a x**2, 2 a x and the left end of its piece
    # (-inf while the stack is empty, so that nothing pops)
    peak = torch.zeros(3, lines, dtype=dtype, device=device)
    peak[2] = -INF
    for q, x in enumerate(coordinates):
        g_q = g[q]
        finite = alive[q]
        lifted = g_q + a * x * x
        # where the parabola of q crosses the top parabola of each line
        cross = (lifted - peak[0]) / (2 * a * x - peak[1])
        pops = finite & (cross <= peak[2])
        if bool(pops.any()):
            index = pops.nonzero().squeeze(1)
            while index.numel():
                row = top[index].long()
                alive[row, index] = False
                top[index] = below[row, index]
                row = top[index].long()
                v = position[row]
                w, z = g[row, index], start[row, index]
                peak[:, index] = torch.stack((w + a * v * v, 2 * a * v, z))
                c = (lifted[index] - w - a * v * v) / (2 * a * (x - v))
                cross[index] = c
                index = index[c <= z]
        left = start[q]
        left.copy_(cross).masked_fill_(top < 0, -INF)
        below[q] = top
        # push where g[q] is finite (elementwise, in place)
        top.masked_fill_(finite, q)
        torch.where(finite, lifted, peak[0], out=peak[0])
        peak[1].masked_fill_(finite, 2 * a * x)
        torch.where(finite, left, peak[2], out=peak[2])
    # left ends of the parabolas left on the stacks, made nondecreasing over
    # all rows (a popped row takes the left end of the next live row)
    ends = torch.where(alive, start, INF).flip(0).cummin(0).values.flip(0)
    at = position.expand(lines, n).contiguous()
    piece = torch.searchsorted(ends.T.contiguous(), at, right=True)
    piece = piece.sub_(1).clamp_(min=0)
    result = (at - position[piece]).square_().mul_(a).add_(g.T.gather(1, piece))
    result.masked_fill_((top < 0).view(lines, 1), INF)
    return result.T


def _squared_distances(
    features: torch.Tensor,
    coordinates: Sequence[torch.Tensor],
    spacing: Sequence[float],
    queries: torch.Tensor | None = None,
) -> torch.Tensor:
    """Squared distances on the grid of the given voxel indices of each axis.

    With ``queries`` (a mask shaped like ``features``), the last pass runs
    only on the lines that hold a query: elsewhere the result is ``inf``.
    """
    ndim = len(coordinates)
    first = features.ndim - ndim
    # pass 1 along the longest axis (no loop), the envelopes along the others
    order = sorted(range(ndim), key=lambda i: -features.shape[first + i])
    axis = first + order[0]
    moved = features.movedim(axis, 0)
    shape = moved.shape
    g = _nearest_along(
        moved.reshape(shape[0], -1), coordinates[order[0]], spacing[order[0]]
    )
    g = g.reshape(shape).movedim(0, axis)
    for i in order[1:]:
        axis = first + i
        moved = g.movedim(axis, 0)
        shape = moved.shape
        lines = moved.reshape(shape[0], -1)
        if queries is not None and i == order[-1]:
            asked = queries.movedim(axis, 0).reshape(shape[0], -1).any(0)
            asked = asked.nonzero().squeeze(1)
            result = torch.full_like(lines, INF)
            envelope = _lower_envelope(lines[:, asked], coordinates[i], spacing[i])
            result[:, asked] = envelope
        else:
            result = _lower_envelope(lines, coordinates[i], spacing[i])
        g = result.reshape(shape).movedim(0, axis)
    return g.contiguous()


def _check_masks(
    features: torch.Tensor, ndim: int, name: str, batch: bool = False
) -> None:
    if features.dtype != torch.bool:
        raise TypeError(f'{name} must be a bool mask, not {features.dtype}')
    if features.ndim < ndim + batch:
        needed = f'a batch dimension and {ndim}' if batch else f'{ndim}'
        message = (
            f'{name} has {features.ndim} dimensions; it needs {needed} spatial'
            f' dimensions (one per voxel size of the spacing)'
        )
        raise ValueError(message)


def squared_distance_transform(
    features: torch.Tensor,
    spacing: Sequence[float],
) -> torch.Tensor:
    """Squared Euclidean distance (mm²) from every voxel to the nearest feature.

    Args:
        features: Boolean mask ``(..., *spatial)``; the last ``len(spacing)``
            dimensions are spatial, leading dimensions are independent masks.
        spacing: Voxel size of each spatial axis in mm.

    Returns:
        float64 tensor shaped like ``features``: 0 on features, ``inf``
        throughout a mask that has no feature.

    Example:
        >>> line = torch.tensor([[False, True, False, False]])
        >>> squared_distance_transform(line, (2.0, 0.5)).tolist()
        [[0.25, 0.0, 0.25, 1.0]]
    """
    ndim = len(spacing)
    spacing = check_spacing(spacing, ndim)
    _check_masks(features, ndim, 'features')
    first = features.ndim - ndim
    coordinates = [
        torch.arange(
            features.shape[first + i], dtype=torch.float64, device=features.device
        )
        for i in range(ndim)
    ]
    return _squared_distances(features, coordinates, spacing)


def nearest_distances(
    queries: torch.Tensor,
    features: torch.Tensor,
    spacing: Sequence[float],
) -> list[torch.Tensor]:
    """Distance (mm) from each query voxel to the nearest feature voxel.

    Only the grid planes that hold a query or a feature voxel enter the
    transform: the distance at a query is a minimum over feature voxels, and
    the separable passes stay exact on any rectilinear grid that contains
    them all, so the empty gap between an organ and a far-away island costs
    nothing.

    Args:
        queries: Boolean ``(B, *spatial)``.
        features: Boolean ``(B, *spatial)``, the same shape.
        spacing: Voxel size of each spatial axis in mm.

    Returns:
        For each of the ``B`` items, the float64 distances of its query voxels
        in C order (``inf`` where the item has no feature).

    Example:
        >>> queries = torch.tensor([[[True, False, False, False, True]]])
        >>> features = torch.tensor([[[False, False, True, False, False]]])
        >>> nearest_distances(queries, features, (1.0, 1.5))[0].tolist()
        [3.0, 3.0]
    """
    ndim = len(spacing)
    spacing = check_spacing(spacing, ndim)
    _check_masks(queries, ndim, 'queries', batch=True)
    _check_masks(features, ndim, 'features', batch=True)
    if queries.shape != features.shape:
        raise ValueError(
            f'queries and features differ in shape: {tuple(queries.shape)}'
            f' and {tuple(features.shape)}'
        )
    either = (queries | features).any(0)
    if not bool(either.any()):  # no voxel at all: no distance to give
        empty = torch.empty(0, dtype=torch.float64, device=queries.device)
        return [empty] * queries.shape[0]
    keep = []
    for axis in range(ndim):
        others = [d for d in range(ndim) if d != axis]
        keep.append(
            either.any(others).nonzero().squeeze(1)
            if others
            else either.nonzero().squeeze(1)
        )
    grid_features, grid_queries = features, queries
    for axis, index in enumerate(keep):
        grid_features = grid_features.index_select(axis + 1, index)
        grid_queries = grid_queries.index_select(axis + 1, index)
    coordinates = [index.to(torch.float64) for index in keep]
    squared = _squared_distances(grid_features, coordinates, spacing, grid_queries)
    return [
        item[mask].sqrt_() for item, mask in zip(squared, grid_queries, strict=True)
    ]


def distance_transform(
    features: torch.Tensor, spacing: Sequence[float]
) -> torch.Tensor:
    """Euclidean distance (mm) from every voxel to the nearest feature voxel.

    The square root of :func:`squared_distance_transform`; equals
    ``scipy.ndimage.distance_transform_edt(~features, sampling=spacing)`` for
    one mask.

    Example:
        >>> mask = torch.zeros(3, 3, dtype=torch.bool)
        >>> mask[0, 0] = True
        >>> distance_transform(mask, (3.0, 4.0))[2, 2].item()
        10.0
    """
    return squared_distance_transform(features, spacing).sqrt_()


def inner_boundary(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    """Voxels of ``mask`` with a face neighbour outside it (or outside the array).

    The boundary of ``scipy.ndimage.binary_erosion``'s default: ``mask`` minus
    its erosion by the cross (face connectivity) with a background border.

    Args:
        mask: Boolean ``(..., *spatial)``.
        ndim: Number of trailing spatial dimensions.

    Example:
        >>> mask = torch.ones(1, 3, 3, dtype=torch.bool)
        >>> inner_boundary(mask, 2).int().tolist()
        [[[1, 1, 1], [1, 0, 1], [1, 1, 1]]]
    """
    interior = mask.clone()
    for axis in range(mask.ndim - ndim, mask.ndim):
        n = mask.shape[axis]
        interior.narrow(axis, 0, 1).zero_()
        interior.narrow(axis, n - 1, 1).zero_()
        if n > 2:
            inner = interior.narrow(axis, 1, n - 2)
            inner &= mask.narrow(axis, 0, n - 2)
            inner &= mask.narrow(axis, 2, n - 2)
    return mask & ~interior
