"""The five-class head, the source mappings and the overlap precedence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from torchio_ramp import labels


def test_head_and_mappings_are_the_papers_table_4():
    assert labels.CLASS_NAMES == {
        1: 'liver',
        2: 'spleen',
        3: 'kidney',
        4: 'heart',
        5: 'colon',
    }
    assert labels.BACKGROUND == 0
    assert labels.NUM_CLASSES == 6
    assert labels.CLASS_IDS['kidney'] == 3
    assert labels.TOTALSEG_MAPPING == {
        'liver': 1,
        'spleen': 2,
        'kidney_left': 3,
        'kidney_right': 3,
        'heart': 4,
        'colon': 5,
    }
    assert set(labels.TOTALSEG_STRUCTURES) == set(labels.TOTALSEG_MAPPING)
    assert labels.ABDOMENCT1K_MAPPING == {0: 0, 1: 1, 2: 3, 3: 2, 4: 0}
    assert labels.ANNOTATED_CLASSES == {
        'totalseg': (1, 2, 3, 4, 5),
        'abdomenct1k': (1, 2, 3),
    }
    assert labels.TOTALSEG_LATERAL_PAIRS == {'kidney_left': 'kidney_right'}
    assert sorted(labels.OVERLAP_PRECEDENCE) == [1, 2, 3, 4, 5]


def test_annotated_classes_accepts_synthetic_prefix_and_rejects_unknown():
    assert labels.annotated_classes('synthetic-abdomenct1k') == (1, 2, 3)
    assert labels.annotated_classes('totalseg') == (1, 2, 3, 4, 5)
    with pytest.raises(ValueError, match="Unknown dataset 'kits'"):
        labels.annotated_classes('kits')


def _masks(shape=(4, 4, 4)):
    return {s: np.zeros(shape, np.uint8) for s in labels.TOTALSEG_STRUCTURES}


def test_merge_maps_each_structure_and_unions_kidneys():
    masks = _masks()
    masks['liver'][0] = 1  # 16 voxels
    masks['spleen'][1, :2] = 1  # 8
    masks['kidney_left'][2, 0] = 1  # 4
    masks['kidney_right'][2, 1] = 1  # 4
    masks['heart'][3, 0, 0] = 1  # 1
    masks['colon'][3, 3] = 1  # 4
    result = labels.merge_totalseg_masks(masks.__getitem__)
    assert result.label.dtype == np.uint8
    counts = np.bincount(result.label.ravel(), minlength=6).tolist()
    assert counts == [64 - 37, 16, 8, 8, 1, 4]
    assert (result.label[2, :2] == 3).all()
    assert result.conflict_voxels == 0
    assert result.conflict_pairs == {}


def test_left_right_kidney_overlap_is_not_a_conflict():
    masks = _masks()
    masks['kidney_left'][1, 1, :3] = 1
    masks['kidney_right'][1, 1, 1:] = 1
    result = labels.merge_totalseg_masks(masks.__getitem__)
    assert np.count_nonzero(result.label == 3) == 4
    assert result.conflict_voxels == 0


@pytest.mark.parametrize(
    ('first', 'second'),
    list(
        itertools.combinations(['liver', 'spleen', 'kidney_left', 'heart', 'colon'], 2)
    ),
)
def test_overlap_winner_follows_documented_precedence(first, second):
    masks = _masks()
    masks[first][0, 0, :2] = 1
    masks[second][0, 0, 1:3] = 1  # voxel (0, 0, 1) is claimed twice
    result = labels.merge_totalseg_masks(masks.__getitem__)
    a, b = labels.TOTALSEG_MAPPING[first], labels.TOTALSEG_MAPPING[second]
    order = labels.OVERLAP_PRECEDENCE
    winner, loser = (a, b) if order.index(a) < order.index(b) else (b, a)
    assert result.label[0, 0, 1] == winner
    assert result.label[0, 0, 0] == a and result.label[0, 0, 2] == b
    assert result.conflict_voxels == 1
    key = (labels.CLASS_NAMES[winner], labels.CLASS_NAMES[loser])
    assert result.conflict_pairs == {key: 1}


def test_kidney_beats_liver_and_conflicts_count_each_voxel_once():
    masks = _masks()
    masks['liver'][:2] = 1  # 32 voxels
    masks['colon'][1:3] = 1  # overlaps liver on 16
    masks['kidney_right'][1, :2] = 1  # 8 voxels claimed by all three
    result = labels.merge_totalseg_masks(masks.__getitem__)
    assert np.count_nonzero(result.label == 3) == 8
    assert np.count_nonzero(result.label == 5) == 16 + 8  # colon beats liver
    assert np.count_nonzero(result.label == 1) == 16
    assert result.conflict_voxels == 16
    assert result.conflict_pairs == {('colon', 'liver'): 16, ('kidney', 'colon'): 8}


def test_merge_reads_masks_one_at_a_time_lowest_priority_first():
    requested = []
    masks = _masks()

    def load(name):
        requested.append(name)
        return masks[name]

    labels.merge_totalseg_masks(load)
    assert requested[0] == 'liver'
    assert set(requested[-2:]) == {'kidney_left', 'kidney_right'}
    assert sorted(requested) == sorted(labels.TOTALSEG_STRUCTURES)


def test_merge_rejects_shape_mismatch_and_unknown_structures():
    masks = _masks()
    masks['spleen'] = np.zeros((4, 4, 5), np.uint8)
    with pytest.raises(ValueError, match="'spleen' has shape"):
        labels.merge_totalseg_masks(masks.__getitem__)
    with pytest.raises(ValueError, match='aorta'):
        labels.merge_totalseg_masks(masks.__getitem__, ('liver', 'aorta'))


def test_abdomenct1k_remap_swaps_kidney_and_spleen_and_drops_pancreas():
    source = np.array([[[0, 1, 2, 3, 4, 4, 4, 2]]], np.uint8)
    label, dropped = labels.remap_abdomenct1k(source)
    assert label.dtype == np.uint8
    assert label.ravel().tolist() == [0, 1, 3, 2, 0, 0, 0, 3]
    assert dropped == {4: 3}


def test_abdomenct1k_remap_rejects_values_outside_0_to_4():
    with pytest.raises(ValueError, match=r'values \[5, 9\]'):
        labels.remap_abdomenct1k(np.array([0, 5, 9, 1], np.int16))
    with pytest.raises(ValueError, match=r'values \[-1\]'):
        labels.remap_abdomenct1k(np.array([0, -1], np.int16))


def test_class_counts_in_chunks_equal_a_plain_count():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 6, (30, 20, 10)).astype(np.uint8)
    expected = {v: int(np.count_nonzero(label == v)) for v in range(6)}
    assert labels.class_counts(label, chunk=777) == expected
    assert sum(labels.class_counts(label).values()) == label.size
    with pytest.raises(ValueError, match=r'Label values \[6\] are outside 0\.\.5'):
        labels.class_counts(np.array([0, 6, 1], np.uint8))


def test_merge_accepts_bool_and_integer_masks_alike():
    masks = _masks()
    masks['spleen'][1:3, 1:3, 1:3] = 1
    masks['colon'][2:, 2:, 2:] = 1
    as_bool = {k: v.astype(bool) for k, v in masks.items()}
    a = labels.merge_totalseg_masks(masks.__getitem__)
    b = labels.merge_totalseg_masks(as_bool.__getitem__)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.conflict_voxels == b.conflict_voxels == 1
    assert a.conflict_pairs == {('spleen', 'colon'): 1}
