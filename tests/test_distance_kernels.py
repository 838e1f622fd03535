"""The distance transform, boundaries and connected components against SciPy.

SciPy's ``ndimage`` is the independent reference: ``distance_transform_edt``
with ``sampling`` for the exact anisotropic transform, ``binary_erosion`` for
the boundary and ``label`` with a full structuring element for the
components. Random masks of every density, odd shapes, 2-D and 3-D.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from scipy.spatial import cKDTree

from torchio_ramp.kernels.components import component_roots
from torchio_ramp.kernels.components import connected_components
from torchio_ramp.kernels.distance import check_spacing
from torchio_ramp.kernels.distance import distance_transform
from torchio_ramp.kernels.distance import inner_boundary
from torchio_ramp.kernels.distance import nearest_distances
from torchio_ramp.kernels.distance import squared_distance_transform

SHAPES = [(9, 11, 7), (1, 6, 5), (5, 1, 1), (13, 4), (17, 15, 12)]
DENSITIES = [0.002, 0.05, 0.3, 0.9]


def _masks(seed: int = 0):
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        for density in DENSITIES:
            mask = rng.random(shape) < density
            spacing = tuple(rng.uniform(0.4, 3.5, len(shape)))
            yield mask, spacing


@pytest.mark.parametrize('seed', [0, 1])
def test_distance_transform_equals_scipy(seed):
    for mask, spacing in _masks(seed):
        if not mask.any():
            continue
        expected = ndi.distance_transform_edt(~mask, sampling=spacing)
        result = distance_transform(torch.from_numpy(mask), spacing)
        assert result.dtype == torch.float64
        np.testing.assert_allclose(result.numpy(), expected, rtol=0, atol=1e-12)


def test_squared_distances_are_exact_sums_of_grid_offsets():
    # one rounding of (k s)**2 sums: index differences are exact integers
    mask = torch.zeros(6, 5, 4, dtype=torch.bool)
    mask[1, 2, 3] = True
    spacing = (0.8, 0.7, 3.0)
    result = squared_distance_transform(mask, spacing)
    grid = torch.stack(
        torch.meshgrid(*(torch.arange(n) for n in mask.shape), indexing='ij')
    )
    offsets = (grid - torch.tensor([1, 2, 3]).view(3, 1, 1, 1)).double()
    expected = sum((offsets[i] * spacing[i]) ** 2 for i in range(3))
    assert torch.equal(result, expected)


def test_batched_masks_are_independent_and_empty_ones_are_infinite():
    rng = np.random.default_rng(3)
    masks = rng.random((3, 8, 9, 6)) < 0.05
    masks[1] = False
    spacing = (0.8, 0.8, 3.0)
    batch = squared_distance_transform(torch.from_numpy(masks), spacing)
    assert torch.isinf(batch[1]).all()
    for i in (0, 2):
        single = squared_distance_transform(torch.from_numpy(masks[i]), spacing)
        assert torch.equal(batch[i], single)


def test_nearest_distances_skip_empty_planes_exactly():
    # sparse clusters far apart: most planes of each axis hold no voxel and
    # are left out of the transform; distances equal a KD-tree's
    rng = np.random.default_rng(4)
    shape, spacing = (60, 50, 20), (0.8, 0.7, 3.0)
    queries = np.zeros((2, *shape), dtype=bool)
    features = np.zeros_like(queries)
    queries[0, 2:6, 3:9, 1:4] = rng.random((4, 6, 3)) < 0.5
    queries[0, 50:55, 40:44, 15:18] = True
    features[0, 20:30, 10:14, 8:10] = rng.random((10, 4, 2)) < 0.3
    queries[1], features[1] = features[0], queries[0]
    result = nearest_distances(
        torch.from_numpy(queries), torch.from_numpy(features), spacing
    )
    for item in range(2):
        points = np.argwhere(features[item]) * spacing
        expected = cKDTree(points).query(np.argwhere(queries[item]) * spacing)[0]
        np.testing.assert_allclose(result[item].numpy(), expected, rtol=0, atol=1e-12)


def test_nearest_distances_without_features_are_infinite():
    queries = torch.ones(2, 3, 4, dtype=torch.bool)
    features = torch.zeros(2, 3, 4, dtype=torch.bool)
    features[1, 0, 0] = True
    empty, one = nearest_distances(queries, features, (2.0, 1.0))
    assert torch.isinf(empty).all() and empty.numel() == 12
    assert one.tolist()[:2] == [0.0, 1.0]
    nothing = torch.zeros(2, 3, 4, dtype=torch.bool)
    assert [d.numel() for d in nearest_distances(nothing, nothing, (1.0, 1.0))] == [
        0,
        0,
    ]
    with pytest.raises(ValueError, match='a batch dimension and 2 spatial'):
        nearest_distances(queries[0], features[0], (2.0, 1.0))


def test_inner_boundary_equals_scipy_erosion():
    for mask, _ in _masks(2):
        expected = mask & ~ndi.binary_erosion(mask)
        result = inner_boundary(torch.from_numpy(mask), mask.ndim)
        assert np.array_equal(result.numpy(), expected)


def test_inner_boundary_of_a_batch_keeps_the_items_apart():
    masks = torch.ones(2, 4, 4, 4, dtype=torch.bool)
    boundary = inner_boundary(masks, 3)
    assert int(boundary[0].sum()) == 4**3 - 2**3
    assert torch.equal(boundary[0], boundary[1])


@pytest.mark.parametrize('seed', [0, 1])
def test_connected_components_equal_scipy_label(seed):
    for mask, _ in _masks(seed):
        structure = np.ones((3,) * mask.ndim)
        expected, count = ndi.label(mask, structure=structure)
        labels, n = connected_components(torch.from_numpy(mask))
        assert n == count
        assert np.array_equal(labels.numpy(), expected)


def test_a_long_winding_component_is_one_component():
    # a serpentine 1-voxel path through a 3-D volume: the worst case for
    # label propagation, and diagonal steps only (26-connectivity)
    mask = np.zeros((12, 12, 6), dtype=bool)
    for z in range(6):
        for x in range(12):
            y = x if (z % 2 == 0) else 11 - x
            mask[x, y, z] = True
    labels, count = connected_components(torch.from_numpy(mask))
    assert count == 1
    assert set(np.unique(labels.numpy())) == {0, 1}
    assert ndi.label(mask, structure=np.ones((3, 3, 3)))[1] == 1
    assert ndi.label(mask)[1] > 1  # face connectivity would split it


def test_component_roots_are_the_smallest_index_of_each_component():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [0, 1, 1]], dtype=torch.bool)
    roots = component_roots(mask)
    assert roots.tolist() == [[0, 0, 9], [9, 9, 9], [9, 7, 7]]


def test_components_of_empty_and_full_masks():
    empty = torch.zeros(3, 4, 5, dtype=torch.bool)
    labels, count = connected_components(empty)
    assert count == 0 and not labels.any()
    full = torch.ones(3, 4, 5, dtype=torch.bool)
    labels, count = connected_components(full)
    assert count == 1 and bool((labels == 1).all())


def test_masks_must_be_boolean():
    with pytest.raises(TypeError, match='bool'):
        squared_distance_transform(torch.zeros(3, 3), (1.0, 1.0))
    with pytest.raises(TypeError, match='bool'):
        connected_components(torch.zeros(3, 3))


@pytest.mark.parametrize(
    'spacing',
    [(0.0, 1.0, 1.0), (1.0, -2.0, 1.0), (1.0, float('nan'), 1.0), (1.0, 1.0)],
)
def test_bad_spacing_is_refused_with_its_value(spacing):
    with pytest.raises(ValueError, match='spacing'):
        check_spacing(spacing, 3)


def test_too_few_dimensions_for_the_spacing():
    with pytest.raises(ValueError, match='spatial'):
        squared_distance_transform(torch.zeros(4, dtype=torch.bool), (1.0, 1.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_equals_cpu():
    rng = np.random.default_rng(5)
    mask = torch.from_numpy(rng.random((20, 18, 9)) < 0.05)
    spacing = (0.8, 0.8, 3.0)
    cpu = squared_distance_transform(mask, spacing)
    cuda = squared_distance_transform(mask.cuda(), spacing)
    assert torch.equal(cuda.cpu(), cpu)
    labels, count = connected_components(mask)
    cuda_labels, cuda_count = connected_components(mask.cuda())
    assert cuda_count == count and torch.equal(cuda_labels.cpu(), labels)
