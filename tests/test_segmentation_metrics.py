"""NSD, HD95, relative volume error and false-positive components of one volume.

Three references: closed forms where the geometry gives one (plates at a
known distance, a translated shape), a float64 brute force written from the
definitions (boundary by SciPy's erosion, nearest boundary voxel by a KD-tree,
NumPy's linear percentile), and MONAI's ``compute_surface_dice`` /
``compute_hausdorff_distance(percentile=95)``. MONAI returns float32, so
agreement with it is within 1e-6 relative; the brute force agrees to 1e-9 mm.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from scipy.spatial import cKDTree

from tests.conftest import TOTALSEG_EXAMPLE
from torchio_ramp.labels import TOTALSEG_MAPPING
from torchio_ramp.segmentation_metrics import DEFAULT_TOLERANCE_MM
from torchio_ramp.segmentation_metrics import EMPTY_MASK_CONVENTIONS
from torchio_ramp.segmentation_metrics import false_positive_components
from torchio_ramp.segmentation_metrics import image_diagonal
from torchio_ramp.segmentation_metrics import relative_volume_error
from torchio_ramp.segmentation_metrics import resolve_tolerances
from torchio_ramp.segmentation_metrics import surface_scores

monai_metrics = pytest.importorskip('monai.metrics')

ANISOTROPIC = (0.8, 0.8, 3.0)


def brute_force(prediction, target, label, spacing, tolerance):
    """NSD and HD95 of one class from the definitions, in float64."""
    predicted = np.asarray(prediction) == label
    reference = np.asarray(target) == label
    if not predicted.any() and not reference.any():
        return math.nan, math.nan
    edges = [m & ~ndi.binary_erosion(m) for m in (predicted, reference)]
    points = [np.argwhere(e) * np.asarray(spacing) for e in edges]
    to_reference = cKDTree(points[1]).query(points[0])[0]
    to_prediction = cKDTree(points[0]).query(points[1])[0]
    within = (to_reference <= tolerance).sum() + (to_prediction <= tolerance).sum()
    nsd = within / (len(to_reference) + len(to_prediction))
    hd95 = max(np.percentile(to_reference, 95), np.percentile(to_prediction, 95))
    return nsd, hd95


def monai_scores(prediction, target, classes, spacing, tolerances):
    """MONAI's NSD and HD95 of each class (one-hot inputs, float32 results)."""
    size = max(max(classes), int(np.max(prediction)), int(np.max(target))) + 1

    def one_hot(labels):
        labels = torch.as_tensor(np.asarray(labels)).long()
        hot = torch.nn.functional.one_hot(labels, size).movedim(-1, 0)
        return hot[list(classes)][None].float()

    y_pred, y = one_hot(prediction), one_hot(target)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # MONAI warns about empty masks
        nsd = monai_metrics.compute_surface_dice(
            y_pred, y, list(tolerances), include_background=True, spacing=spacing
        )
        hd95 = monai_metrics.compute_hausdorff_distance(
            y_pred, y, include_background=True, percentile=95, spacing=spacing
        )
    return nsd[0].double().numpy(), hd95[0].double().numpy()


def assert_matches_references(prediction, target, classes, spacing, tolerance=None):
    scores = surface_scores(prediction, target, classes, spacing, tolerance)
    nsd, hd95 = monai_scores(prediction, target, classes, spacing, scores.tolerance)
    np.testing.assert_allclose(scores.nsd, nsd, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scores.hd95, hd95, rtol=1e-6, atol=1e-6)
    for i, label in enumerate(classes):
        expected = brute_force(prediction, target, label, spacing, scores.tolerance[i])
        assert scores.nsd[i] == pytest.approx(expected[0], abs=1e-12, nan_ok=True)
        assert scores.hd95[i] == pytest.approx(expected[1], abs=1e-9, nan_ok=True)
    return scores


def ball(shape, centre_mm, radius_mm, spacing):
    grid = np.meshgrid(
        *(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing='ij'
    )
    distance = sum((g - c) ** 2 for g, c in zip(grid, centre_mm, strict=True))
    return distance <= radius_mm**2


# Closed forms -------------------------------------------------------------------


@pytest.mark.parametrize('gap', [1, 3])
def test_plates_at_a_known_distance(gap):
    # every voxel of a one-voxel plate is boundary and sits exactly gap x 3 mm
    # from the other plate: all distances are equal
    target = np.zeros((10, 9, 8), dtype=np.int64)
    target[:, :, 2] = 1
    prediction = np.zeros_like(target)
    prediction[:, :, 2 + gap] = 1
    distance = gap * ANISOTROPIC[2]
    scores = assert_matches_references(prediction, target, [1], ANISOTROPIC, distance)
    assert scores.hd95.tolist() == [distance]
    assert scores.nsd.tolist() == [1.0]
    below = surface_scores(prediction, target, [1], ANISOTROPIC, distance - 0.01)
    assert below.nsd.tolist() == [0.0]


def test_two_spheres_at_a_known_distance():
    shape, spacing, radius = (40, 30, 14), (1.0, 1.5, 3.0), 9.0
    target = ball(shape, (12.0, 22.0, 20.0), radius, spacing).astype(np.int64)
    centre = (34.0, 22.0, 20.0)  # 22 mm apart: a gap of 22 - 2 x 9 = 4 mm
    prediction = ball(shape, centre, radius, spacing).astype(np.int64)
    scores = assert_matches_references(prediction, target, [1], spacing, 3.0)
    # boundary voxels lie within one voxel inside the sphere: distances span
    # the gap (22 - 2 x 9 = 4 mm) to the far side (22 + 2 x 9 = 40 mm)
    assert 4.0 <= scores.hd95[0] <= 40.0
    assert scores.nsd[0] < 0.05  # almost no boundary within 3 mm
    at_gap = surface_scores(prediction, target, [1], spacing, 3.9)
    assert at_gap.nsd[0] == 0.0


def test_a_translated_cube_at_anisotropic_spacing():
    target = np.zeros((24, 22, 12), dtype=np.int64)
    target[5:15, 6:16, 3:8] = 2
    shift = (2, 1, 1)
    prediction = np.roll(target, shift, axis=(0, 1, 2))
    length = math.sqrt(
        sum((k * s) ** 2 for k, s in zip(shift, ANISOTROPIC, strict=True))
    )
    scores = assert_matches_references(prediction, target, [2], ANISOTROPIC, 2.0)
    # each boundary voxel has its translate on the other boundary, `length`
    # away: nothing is farther, so NSD at that tolerance is 1
    assert scores.hd95[0] <= length
    exact = surface_scores(prediction, target, [2], ANISOTROPIC, length)
    assert exact.nsd.tolist() == [1.0]


def test_a_distance_equal_to_the_tolerance_counts_as_within():
    # 2 x 0.8 mm is 1.6000000000000003 in float64 after the square root
    target = np.zeros((12, 12, 6), dtype=np.int64)
    target[3:8, 3:8, 1:4] = 1
    prediction = np.roll(target, 2, axis=0)
    scores = assert_matches_references(prediction, target, [1], ANISOTROPIC, 1.6)
    assert scores.nsd.tolist() == [1.0]


def test_several_classes_in_one_call_equal_one_call_each():
    target = np.zeros((30, 26, 10), dtype=np.int64)
    target[3:12, 4:14, 2:7] = 1
    target[16:27, 5:20, 3:9] = 3
    target[5:9, 18:24, 1:5] = 5
    prediction = np.roll(target, (1, -2, 1), axis=(0, 1, 2))
    prediction[20:24, 2:5, 0:3] = 1  # an island of class 1
    classes = [1, 2, 3, 5]
    tolerance = {'liver': 1.0, 3: 2.5, 'colon': 4.0}
    scores = assert_matches_references(
        prediction, target, classes, ANISOTROPIC, tolerance
    )
    assert scores.tolerance.tolist() == [1.0, DEFAULT_TOLERANCE_MM, 2.5, 4.0]
    assert math.isnan(scores.nsd[1]) and math.isnan(scores.hd95[1])  # class 2 absent
    for i, label in enumerate(classes):
        alone = surface_scores(
            prediction, target, [label], ANISOTROPIC, scores.tolerance[i]
        )
        np.testing.assert_array_equal(alone.nsd, scores.nsd[i : i + 1])
        np.testing.assert_array_equal(alone.hd95, scores.hd95[i : i + 1])


def test_two_dimensional_images():
    target = np.zeros((20, 17), dtype=np.int64)
    target[4:12, 3:11] = 1
    prediction = np.roll(target, (3, 1), axis=(0, 1))
    assert_matches_references(prediction, target, [1], (0.7, 1.3), 1.0)


def test_channel_of_one_numpy_and_torch_inputs_agree():
    target = np.zeros((14, 12, 6), dtype=np.uint8)
    target[2:9, 3:9, 1:5] = 4
    prediction = np.roll(target, 1, axis=1)
    expected = surface_scores(prediction, target, [4], ANISOTROPIC)
    wide = surface_scores(
        prediction.astype(np.uint16), target.astype(np.uint16), [4], ANISOTROPIC
    )
    assert wide.nsd.tolist() == expected.nsd.tolist()
    channel = surface_scores(
        torch.from_numpy(prediction)[None],
        torch.from_numpy(target)[None],
        [4],
        ANISOTROPIC,
    )
    assert channel.nsd.tolist() == expected.nsd.tolist()
    assert channel.hd95.tolist() == expected.hd95.tolist()


def test_label_values_beyond_a_bitset_take_the_per_class_path():
    target = np.zeros((16, 14, 6), dtype=np.int64)
    target[2:9, 3:10, 1:5] = 200
    target[10:14, 2:6, 2:4] = 3
    prediction = np.roll(target, 1, axis=0)
    prediction[14, 12, 5] = 200
    wide = surface_scores(prediction, target, [3, 200], ANISOTROPIC)
    islands = false_positive_components(prediction, target, [3, 200], ANISOTROPIC)
    assert islands.count.tolist() == [0, 1]
    small = (
        np.where(target == 200, 1, target),
        np.where(prediction == 200, 1, prediction),
    )
    narrow = surface_scores(small[1], small[0], [3, 1], ANISOTROPIC)
    assert wide.nsd.tolist() == narrow.nsd.tolist()
    assert wide.hd95.tolist() == narrow.hd95.tolist()


# Real CT masks -------------------------------------------------------------------


def _example_label_map(subject: str) -> tuple[np.ndarray, tuple[float, ...]]:
    import nibabel as nib

    folder = TOTALSEG_EXAMPLE / subject / 'segmentations'
    label_map = None
    for structure, value in TOTALSEG_MAPPING.items():
        image = nib.load(folder / f'{structure}.nii.gz')
        mask = np.asarray(image.dataobj) > 0
        if label_map is None:
            label_map = np.zeros(mask.shape, dtype=np.int64)
            spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
        label_map[mask] = value
    return label_map, spacing


@pytest.mark.skipif(not TOTALSEG_EXAMPLE.is_dir(), reason='needs ../shared')
@pytest.mark.parametrize(
    ('subject', 'change', 'voxel'),
    [('s0001', 'eroded', None), ('s0002', 'shifted', (0.8, 0.8, 3.0))],
)
def test_real_ct_masks_eroded_or_shifted(subject, change, voxel):
    target, spacing = _example_label_map(subject)
    target = target[10:110, 5:95, :40]  # crop: the organs, fewer voxels
    classes = [c for c in (1, 2, 3, 5) if (target == c).any()]
    if change == 'eroded':
        prediction = np.zeros_like(target)
        for c in classes:
            prediction[ndi.binary_erosion(target == c)] = c
    else:  # two voxels along one axis, one along the others (no wrap-around)
        prediction = np.zeros_like(target)
        prediction[2:, :-1, 1:] = target[:-2, 1:, :-1]
    scores = assert_matches_references(prediction, target, classes, voxel or spacing)
    assert np.isfinite(scores.nsd).all() and np.isfinite(scores.hd95).all()
    assert (scores.nsd < 1).all() and (scores.hd95 > 0).all()


# Empty masks -----------------------------------------------------------------------


def _empty_cases():
    target = np.zeros((10, 12, 6), dtype=np.int64)
    target[2:6, 3:8, 1:4] = 1  # class 1 in the reference only
    prediction = np.zeros_like(target)
    prediction[5:9, 1:5, 2:5] = 2  # class 2 in the prediction only
    return prediction, target


def test_empty_mask_conventions():
    prediction, target = _empty_cases()
    spacing = ANISOTROPIC
    diagonal = image_diagonal(target.shape, spacing)
    assert diagonal == pytest.approx(
        math.sqrt((9 * 0.8) ** 2 + (11 * 0.8) ** 2 + 15**2)
    )
    classes = [1, 2, 3]  # prediction empty / reference empty / both empty
    scores = surface_scores(prediction, target, classes, spacing)
    assert scores.nsd[:2].tolist() == [0.0, 0.0]
    assert scores.hd95[:2].tolist() == [diagonal, diagonal]
    assert math.isnan(scores.nsd[2]) and math.isnan(scores.hd95[2])
    counts = [int((prediction == c).sum()) for c in classes]
    references = [int((target == c).sum()) for c in classes]
    errors = relative_volume_error(counts, references)
    assert errors[0] == 100.0 and math.isnan(errors[1]) and math.isnan(errors[2])
    components = false_positive_components(prediction, target, classes, spacing)
    assert components.count.tolist() == [0, 1, 0]
    assert components.volume_ml[1] == pytest.approx(counts[1] * 0.8 * 0.8 * 3.0 / 1000)


def test_the_documented_conventions_table_is_the_code_s():
    page = Path(__file__).resolve().parents[1] / 'docs' / 'segmentation-metrics.md'
    if not page.is_file():
        pytest.skip('the documentation sources are not here')
    text = page.read_text(encoding='utf-8').split('<!-- conventions table', 1)[1]
    lines = [line for line in text.splitlines()[1:] if line.startswith('|')]
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    assert header[0] == 'case'
    columns = [column.split('`')[1] for column in header[1:]]
    documented = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        documented[cells[0]] = dict(zip(columns, cells[1:], strict=True))
    assert documented == EMPTY_MASK_CONVENTIONS


def test_monai_agrees_on_nsd_and_differs_on_hd95_for_empty_masks():
    # MONAI: NSD 0 with one mask empty and NaN with both (as ours); HD95 NaN
    # whenever a mask is empty, so a missed or hallucinated organ would drop
    # out of the means: we give the image diagonal, the worst value
    prediction, target = _empty_cases()
    classes = [1, 2, 3]
    scores = surface_scores(prediction, target, classes, ANISOTROPIC)
    nsd, hd95 = monai_scores(prediction, target, classes, ANISOTROPIC, scores.tolerance)
    np.testing.assert_array_equal(nsd, scores.nsd)
    assert np.isnan(hd95).all()
    assert np.isfinite(scores.hd95[:2]).all()


# A far-away island -------------------------------------------------------------


def test_a_far_island_keeps_dice_high_and_fails_the_other_metrics():
    # a spleen-sized organ (radius 36 mm, 195 mL) predicted perfectly, plus a
    # 3 cm island 6 cm away: Dice stays above 0.9, the other metrics fail
    spacing = (1.5, 1.5, 3.0)
    shape = (96, 80, 40)
    target = ball(shape, (50.0, 60.0, 60.0), 36.0, spacing).astype(np.int64)
    prediction = target.copy()
    island = (slice(70, 90), slice(50, 70), slice(2, 12))  # 30 x 30 x 30 mm
    prediction[island] = 1
    assert not (target[island] == 1).any()
    counts = [(prediction == 1).sum(), (target == 1).sum()]
    intersection = ((prediction == 1) & (target == 1)).sum()
    dice = 2 * intersection / sum(counts)
    scores = surface_scores(prediction, target, [1], spacing)
    components = false_positive_components(prediction, target, [1], spacing)
    assert dice > 0.9
    assert scores.nsd[0] < 0.9  # fails nsd >= 0.9
    assert scores.hd95[0] > 40.0  # fails hd95 <= 10
    assert components.count.tolist() == [1]  # fails false_positive_components == 0
    assert components.volume_ml[0] == pytest.approx(20 * 20 * 10 * 6.75 / 1000)
    clean = false_positive_components(target, target, [1], spacing)
    assert clean.count.tolist() == [0] and clean.volume_ml.tolist() == [0.0]


def test_components_touching_the_reference_are_not_false_positives():
    target = np.zeros((12, 12, 12), dtype=np.int64)
    target[2:6, 2:6, 2:6] = 3
    prediction = np.zeros_like(target)
    prediction[5:9, 5:9, 5:9] = 3  # overlaps the reference by one voxel
    prediction[10, 0, 0] = 3  # a single voxel far away
    prediction[0, 10, 10] = 3
    prediction[1, 11, 11] = 3  # diagonal neighbour: the same component
    scores = false_positive_components(prediction, target, [3, 4], (1.0, 2.0, 0.5))
    assert scores.count.tolist() == [2, 0]
    assert scores.volume_ml.tolist() == pytest.approx([3 * 1e-3, 0.0])


def test_false_positive_components_equal_a_scipy_count():
    # random masks with empty slabs, so that components sit on both sides of
    # gaps of several planes (which the computation shrinks to one)
    rng = np.random.default_rng(7)
    spacing = (0.8, 1.1, 2.5)
    for _ in range(5):
        target = np.where(rng.random((22, 18, 12)) < 0.1, 2, 0)
        prediction = np.where(rng.random((22, 18, 12)) < 0.1, 2, 0)
        prediction[5:9] = 0
        prediction[:, 10:15] = 0
        labels, count = ndi.label(prediction == 2, structure=np.ones((3, 3, 3)))
        hit = set(np.unique(labels[(target == 2) & (labels > 0)]).tolist())
        missed = [k for k in range(1, count + 1) if k not in hit]
        voxels = sum(int((labels == k).sum()) for k in missed)
        scores = false_positive_components(prediction, target, [2], spacing)
        assert scores.count.tolist() == [len(missed)]
        assert scores.volume_ml[0] == pytest.approx(voxels * math.prod(spacing) / 1000)


# Volume error and tolerances ----------------------------------------------------


def test_relative_volume_error_values_and_errors():
    assert relative_volume_error([110, 90], [100, 100]).tolist() == [10.0, 10.0]
    assert relative_volume_error(np.array([0.5]), np.array([2.0])).tolist() == [75.0]
    with pytest.raises(ValueError, match='shape'):
        relative_volume_error([1, 2], [1])
    with pytest.raises(ValueError, match='negative'):
        relative_volume_error([-1], [1])


def test_tolerances_by_name_label_or_one_number():
    assert resolve_tolerances(None, [1, 2]).tolist() == [3.0, 3.0]
    assert resolve_tolerances(2, [1, 2]).tolist() == [2.0, 2.0]
    assert resolve_tolerances({'spleen': 0}, [1, 2]).tolist() == [3.0, 0.0]
    names = {7: 'lesion'}
    assert resolve_tolerances({'lesion': 1.5}, [7], names).tolist() == [1.5]


@pytest.mark.parametrize(
    ('tolerance', 'message'),
    [
        (-1.0, 'tolerance must be a finite number of mm >= 0'),
        (float('nan'), 'tolerance must be a finite number'),
        ({'liver': -0.5}, "tolerance of class 'liver' must be"),
        ({'pancreas': 2.0}, "names class 'pancreas'.*1 \\(liver\\), 2 \\(spleen\\)"),
        ({4: 2.0}, 'names class 4, which is not among the scored classes'),
        ({1: 'wide'}, "tolerance of class 1 must be a number of mm, not 'wide'"),
        (True, 'tolerance must be a finite number'),
    ],
)
def test_bad_tolerances_are_refused(tolerance, message):
    target = np.zeros((4, 4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match=message):
        surface_scores(target, target, [1, 2], ANISOTROPIC, tolerance)


# Bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    'spacing',
    [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0, float('nan')), (1.0, math.inf, 1.0)],
)
@pytest.mark.parametrize('metric', [surface_scores, false_positive_components])
def test_bad_spacing_is_refused(metric, spacing):
    target = np.ones((4, 4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match='spacing must be finite and positive'):
        metric(target, target, [1], spacing)


@pytest.mark.parametrize('metric', [surface_scores, false_positive_components])
def test_bad_label_maps_are_refused(metric):
    target = np.zeros((4, 5, 6), dtype=np.int64)
    with pytest.raises(ValueError, match=r'shape \(4, 5, 5\)'):
        metric(target[:, :, :5], target, [1], ANISOTROPIC)
    with pytest.raises(TypeError, match='integer labels'):
        metric(target.astype(np.float32), target, [1], ANISOTROPIC)
    with pytest.raises(ValueError, match='3-D'):
        metric(target[None].repeat(2, 0), target[None].repeat(2, 0), [1], ANISOTROPIC)
    with pytest.raises(ValueError, match=r'2-D .* to match spacing'):
        metric(target, target, [1], (1.0, 1.0))
    with pytest.raises(ValueError, match='negative'):
        metric(target - 1, target, [1], ANISOTROPIC)
    with pytest.raises(ValueError, match='classes must be non-negative'):
        metric(target, target, [-1], ANISOTROPIC)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_label_maps_give_the_cpu_values():
    prediction, target = _empty_cases()
    prediction = prediction.copy()
    prediction[2:5, 3:7, 1:3] = 1
    cpu = surface_scores(prediction, target, [1, 2], ANISOTROPIC)
    cuda = surface_scores(
        torch.from_numpy(prediction).cuda(),
        torch.from_numpy(target).cuda(),
        [1, 2],
        ANISOTROPIC,
    )
    assert cuda.nsd.tolist() == cpu.nsd.tolist()
    assert cuda.hd95.tolist() == cpu.hd95.tolist()
