"""Connected components of a binary mask, vectorised (26-connectivity in 3-D).

Label equivalence with pointer jumping (Kalentev et al., 2011, "Connected
component labeling on a 2D grid using CUDA"): every foreground voxel starts
with its own flat index as its label; each round takes the smallest label in
the voxel's 3 x 3 x 3 neighbourhood (three separable minimum passes; background
holds a label larger than any index), hooks the voxel's current root onto that
smaller label, then follows the labels to their roots (``L = L[L]``) until no
label moves. A round changes nothing only when every component carries the
smallest index among its voxels. Rounds are few (3-4 on organ masks of a
256 x 256 x 160 CT) because hooking merges whole trees, not single voxels.

Works on any device; the result's labels are numbered ``1..n`` in the order of
each component's first voxel (C order), as ``scipy.ndimage.label`` numbers them.
"""

from __future__ import annotations

import torch


def _neighbourhood_minimum(labels: torch.Tensor) -> torch.Tensor:
    """Minimum over each voxel and its full (3 x 3 x ...) neighbourhood."""
    result = labels.clone()
    for axis in range(labels.ndim):
        n = labels.shape[axis]
        if n == 1:
            continue
        source = result.clone()
        upper = result.narrow(axis, 1, n - 1)
        torch.minimum(upper, source.narrow(axis, 0, n - 1), out=upper)
        lower = result.narrow(axis, 0, n - 1)
        torch.minimum(lower, source.narrow(axis, 1, n - 1), out=lower)
    return result


def component_roots(mask: torch.Tensor) -> torch.Tensor:
    """For each voxel of ``mask``, the smallest flat index of its component.

    Components use full connectivity (26 neighbours in 3-D, 8 in 2-D). The
    result is an integer tensor (int32 when the indices fit) shaped like
    ``mask``; background voxels hold ``mask.numel()``.

    Example:
        >>> mask = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]]).bool()
        >>> component_roots(mask).tolist()
        [[0, 12, 12], [12, 0, 12], [12, 12, 12], [9, 9, 12]]
    """
    if mask.dtype != torch.bool:
        raise TypeError(f'mask must be a bool tensor, not {mask.dtype}')
    size = mask.numel()
    dtype = torch.int32 if size < torch.iinfo(torch.int32).max else torch.int64
    index = torch.arange(size, dtype=dtype, device=mask.device).view(mask.shape)
    labels = torch.where(mask, index, size)
    flat = labels.view(-1)
    foreground = mask.reshape(-1).nonzero().squeeze(1)
    while True:
        smallest = _neighbourhood_minimum(labels).view(-1).index_select(0, foreground)
        current = flat.index_select(0, foreground)
        lower = smallest < current
        if not bool(lower.any()):
            return labels
        # every voxel takes the smallest label around it, and hooks its root
        # onto that label (the roots keep the smallest label offered)
        flat.index_copy_(0, foreground, torch.minimum(current, smallest))
        flat.scatter_reduce_(0, current[lower].long(), smallest[lower], 'amin')
        while True:  # pointer jumping to the roots
            current = flat.index_select(0, foreground)
            parent = flat.index_select(0, current)
            if bool((parent == current).all()):
                break
            flat.index_copy_(0, foreground, parent)


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Label the connected components of ``mask`` with ``1..n`` (0: background).

    Full connectivity (26 neighbours in 3-D). Equals
    ``scipy.ndimage.label(mask, structure=np.ones((3,) * mask.ndim))``.

    Returns:
        The int64 label tensor shaped like ``mask`` and the number ``n`` of
        components.

    Example:
        >>> mask = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]]).bool()
        >>> labels, count = connected_components(mask)
        >>> labels.tolist(), count
        ([[1, 1, 0, 2], [0, 0, 0, 2], [3, 0, 0, 0]], 3)
    """
    roots = component_roots(mask)
    values, inverse = torch.unique(roots, return_inverse=True)
    count = int(values.numel()) - int(bool((~mask).any()))
    if bool((~mask).any()):
        labels = inverse.add_(1).remainder_(values.numel())
    else:
        labels = inverse.add_(1)
    return labels, count
