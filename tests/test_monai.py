"""MONAI dictionary transforms, with the real monai package."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torchio as tio

monai = pytest.importorskip('monai')

from monai.data import DataLoader  # noqa: E402
from monai.data import Dataset  # noqa: E402
from monai.data import MetaTensor  # noqa: E402
from monai.transforms import Compose  # noqa: E402

from torchio_ramp import CTNormalize  # noqa: E402
from torchio_ramp import Ramp  # noqa: E402
from torchio_ramp import RampCorrupt  # noqa: E402
from torchio_ramp import RampSpatial  # noqa: E402
from torchio_ramp.monai import ApplyTorchIOd  # noqa: E402
from torchio_ramp.monai import BatchRampCorruptd  # noqa: E402
from torchio_ramp.monai import CTNormalized  # noqa: E402
from torchio_ramp.monai import RampCorruptd  # noqa: E402
from torchio_ramp.monai import Rampd  # noqa: E402
from torchio_ramp.monai import RandApplyTorchIOd  # noqa: E402

AFFINE = torch.tensor(
    [
        [-0.8, 0.0, 0.0, 10.0],
        [0.0, -0.8, 0.0, 20.0],
        [0.0, 0.0, 2.5, -30.0],
        [0.0, 0.0, 0.0, 1.0],
    ],
    dtype=torch.float64,
)


def _sample(seed: int = 0, shape=(20, 18, 12), affine=AFFINE) -> dict:
    """A normalised CT-like image tied to its label, as MONAI loads them."""
    generator = torch.Generator().manual_seed(seed)
    label = torch.zeros(1, *shape, dtype=torch.uint8)
    label[0, : shape[0] // 2, : shape[1] // 2] = 1
    label[0, shape[0] // 2 :, shape[1] // 3 :, shape[2] // 4 :] = 3
    image = label.float() / 8 + 0.2 + 0.05 * torch.rand(1, *shape, generator=generator)
    name = f'case{seed}.nii.gz'
    return {
        'image': MetaTensor(image, affine=affine, meta={'filename_or_obj': name}),
        'label': MetaTensor(label, affine=affine, meta={'filename_or_obj': name}),
    }


def _torchio(transform: tio.Transform, data: dict, seed: int, labels=()) -> dict:
    """The TorchIO transform on the same arrays, torch seeded with ``seed``."""
    affine = data['image'].affine.numpy()
    subject = tio.Subject(
        image=tio.ScalarImage(tensor=data['image'].as_tensor(), affine=affine),
        **{
            key: tio.LabelMap(tensor=data[key].as_tensor(), affine=affine)
            for key in labels
        },
    )
    torch.manual_seed(seed)
    return transform(subject)


def test_ramp_corrupt_equals_the_torchio_transform_for_the_same_seed():
    data = _sample()
    corrupt = RampCorruptd('image', p=1, num_corruptions=3).set_random_state(seed=7)
    out = corrupt(data)
    expected = _torchio(RampCorrupt(p=1, num_corruptions=3), data, corrupt.seed)
    assert len(expected.history) == 3
    assert torch.equal(out['image'].as_tensor(), expected['image'].data)
    assert not torch.equal(out['image'].as_tensor(), data['image'].as_tensor())


def test_ramp_equals_the_torchio_transform_and_moves_labels_alike():
    for state in range(4):  # several draws: flips and corruptions vary
        data = _sample(state)
        augment = Rampd('image', label_keys='label').set_random_state(seed=state)
        out = augment(data)
        expected = _torchio(Ramp(), data, augment.seed, labels=['label'])
        assert torch.equal(out['image'].as_tensor(), expected['image'].data)
        assert torch.equal(out['label'].as_tensor(), expected['label'].data)
        assert out['label'].dtype == torch.uint8
        assert set(out['label'].unique().tolist()) <= {0, 1, 3}


def test_ct_normalize_equals_the_torchio_transform():
    hu = torch.linspace(-1200, 1500, 8 * 6 * 4).reshape(1, 8, 6, 4).to(torch.int16)
    out = CTNormalized('ct', hu_range=(-150, 250))({'ct': MetaTensor(hu)})
    expected = CTNormalize(hu_range=(-150, 250))(tio.ScalarImage(tensor=hu)).data
    assert out['ct'].dtype == torch.float32
    assert torch.equal(out['ct'].as_tensor(), expected)


def test_set_random_state_makes_it_deterministic_and_leaves_torch_alone():
    data = _sample()
    corrupt = RampCorruptd('image', p=1)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = corrupt.set_random_state(seed=1)(data)['image']
    again = corrupt.set_random_state(seed=1)(data)['image']
    other = corrupt.set_random_state(seed=2)(data)['image']
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    # successive calls draw new seeds from the same stream
    corrupt.set_random_state(seed=1)
    assert not torch.equal(corrupt(data)['image'], corrupt(data)['image'])


def test_labels_and_other_entries_are_untouched():
    data = {**_sample(), 'spacing': (0.8, 0.8, 2.5)}
    out = RampCorruptd('image', p=1).set_random_state(seed=0)(data)
    assert out['label'] is data['label']
    assert out['spacing'] is data['spacing']
    assert out is not data and set(out) == set(data)


def test_metatensor_affine_and_metadata_kept_numpy_stays_numpy():
    data = _sample()
    out = RampCorruptd('image', p=1).set_random_state(seed=0)(data)
    assert isinstance(out['image'], MetaTensor)
    assert torch.equal(out['image'].affine, AFFINE)
    assert out['image'].meta['filename_or_obj'] == 'case0.nii.gz'
    assert out['image'].dtype == torch.float32
    assert out['image'].min() >= 0 and out['image'].max() <= 1
    array = data['image'].numpy()
    out = RampCorruptd('image', p=1).set_random_state(seed=0)({'image': array})
    assert isinstance(out['image'], np.ndarray)
    assert out['image'].shape == array.shape


def test_laterality_flip_reads_the_metatensor_affine():
    # With label_pairs, a flip of the patient's left-right axis swaps the paired
    # labels; that axis comes from the affine (here the third array axis).
    permuted = torch.tensor(
        [[0, 0, 2.5, 0], [0, -0.8, 0, 0], [-0.8, 0, 0, 0], [0, 0, 0, 1]],
        dtype=torch.float64,
    )
    options = {'intensity': False, 'corruption': False, 'label_pairs': {1: 3}}
    differs_from_identity = []
    for state in range(10):
        data = _sample(state, affine=permuted)
        flip = Rampd('image', label_keys='label', **options)
        out = flip.set_random_state(seed=state)(data)
        expected = _torchio(Ramp(**options), data, flip.seed, labels=['label'])
        assert torch.equal(out['label'].as_tensor(), expected['label'].data)
        identity = _sample(state, affine=torch.eye(4, dtype=torch.float64))
        unaware = _torchio(Ramp(**options), identity, flip.seed, labels=['label'])
        differs_from_identity.append(
            not torch.equal(out['label'].as_tensor(), unaware['label'].data)
        )
    assert any(differs_from_identity)


def test_missing_keys_and_bad_entries_give_clear_errors():
    corrupt = RampCorruptd(['image', 'pet'], p=1)
    with pytest.raises(KeyError, match='pet'):
        corrupt(_sample())
    tolerant = RampCorruptd(['image', 'pet'], p=1, allow_missing_keys=True)
    assert set(tolerant(_sample())) == {'image', 'label'}
    nothing = {'label': torch.zeros(1, 4, 4, 4)}
    assert tolerant(nothing)['label'] is nothing['label']
    with pytest.raises(ValueError, match=r"entry 'image' must be channel-first"):
        corrupt.set_random_state(seed=0)({'image': torch.rand(8, 8), 'pet': 0})
    with pytest.raises(TypeError, match=r"entry 'image' must be a numpy array"):
        RampCorruptd('image')({'image': [[0.5]]})
    with pytest.raises(ValueError, match='share'):
        Rampd('image', label_keys='image')
    with pytest.raises(TypeError, match='torchio Transform'):
        ApplyTorchIOd('image', lambda x: x)


def test_any_ramp_transform_through_the_generic_wrappers():
    data = _sample()
    families = RandApplyTorchIOd(
        'image', RampCorrupt(p=1, families=['stripe'], num_corruptions=1)
    )
    out = families.set_random_state(seed=3)(data)
    expected = _torchio(
        RampCorrupt(p=1, families=['stripe'], num_corruptions=1), data, families.seed
    )
    assert torch.equal(out['image'].as_tensor(), expected['image'].data)


def _loader_values(seed: int) -> list[torch.Tensor]:
    pipeline = Compose(
        [CTNormalized('image', hu_range=(-200, 300)), RampCorruptd('image', p=1)]
    )
    items = []
    for _ in range(4):
        hu = torch.randint(-1000, 1000, (1, 12, 12, 8), dtype=torch.int16)
        items.append({'image': MetaTensor(hu, affine=AFFINE), 'label': hu > 0})
    dataset = Dataset(items, transform=pipeline)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, generator=generator)
    batches = list(loader)
    for batch, first in zip(batches, (0, 2), strict=True):
        assert isinstance(batch['image'], MetaTensor)
        assert batch['image'].shape == (2, 1, 12, 12, 8)
        assert batch['image'].min() >= 0 and batch['image'].max() <= 1
        labels = torch.stack([items[first]['label'], items[first + 1]['label']])
        assert torch.equal(batch['label'], labels)
        assert torch.equal(batch['image'].affine[0], AFFINE)
    return [batch['image'].as_tensor() for batch in batches]


def test_dataset_and_dataloader_with_two_workers_are_reproducible():
    torch.manual_seed(0)
    first = _loader_values(seed=11)
    torch.manual_seed(0)
    again = _loader_values(seed=11)
    torch.manual_seed(0)
    other = _loader_values(seed=12)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_monai_rand_torchio_cannot_find_ramp_transforms_by_name():
    # Documented in docs/monai.md: MONAI looks names up in torchio.transforms
    from monai.transforms import RandTorchIO

    with pytest.raises(Exception, match=r"torchio\.transforms' has no attribute"):
        RandTorchIO('RampCorrupt')


def test_import_error_names_the_extra():
    code = (
        'import sys; sys.modules["monai"] = None\n'
        'try:\n    import torchio_ramp.monai\n'
        'except ImportError as error:\n    print(error)\n'
    )
    completed = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, check=True
    )
    assert 'torchio-ramp' in completed.stdout
    assert "'.[monai]'" in completed.stdout


def _flipping_state(transform, data, keep=lambda record: True):
    """A random state whose draw flips at least one axis (and passes ``keep``)."""
    for state in range(50):
        out = transform.set_random_state(seed=state)(dict(data))
        record = out['image'].applied_operations[-1]['extra_info']
        if any(flip['axes'] for flip in record['flips']) and keep(record):
            return state, out, record
    raise AssertionError('no flip in 50 draws')


def test_flips_update_the_affine_as_monai_flipd_and_invertd_restores_them():
    from monai.transforms import Flipd
    from monai.transforms import Invertd

    data = _sample()
    pipeline = Compose(
        [Rampd('image', label_keys='label', intensity=False, corruption=False)]
    )
    _, out, record = _flipping_state(
        pipeline, data, keep=lambda r: not r['not_invertible']
    )
    axes = [axis for flip in record['flips'] for axis in flip['axes']]
    # MONAI's own flip of the same axes: same arrays, same affine
    monai_flip = Flipd(['image', 'label'], spatial_axis=axes)(_sample())
    for key in ('image', 'label'):
        assert torch.equal(out[key].as_tensor(), monai_flip[key].as_tensor())
        assert torch.allclose(out[key].affine, monai_flip[key].affine)
        assert not torch.allclose(out[key].affine, AFFINE)
    # Invertd maps the image, the label and a prediction back
    out['pred'] = out['label'].clone()
    inverter = Invertd(
        keys=['pred', 'image', 'label'],  # each inverted entry replaces its own
        transform=pipeline,
        orig_keys=['label', 'image', 'label'],
    )
    restored = inverter(out)
    for key, original in (('image', 'image'), ('label', 'label'), ('pred', 'label')):
        assert torch.equal(restored[key].as_tensor(), data[original].as_tensor())
        assert torch.allclose(restored[key].affine, AFFINE)


def test_invertd_undoes_the_flip_of_corrupted_images_and_refuses_elastic():
    from monai.transforms import Invertd

    data = _sample()
    pipeline = Compose([Rampd('image', label_keys='label', corruption=False)])
    _, out, _ = _flipping_state(pipeline, data, keep=lambda r: not r['not_invertible'])
    restored = Invertd(keys='label', transform=pipeline, orig_keys='label')(out)
    assert torch.equal(restored['label'].as_tensor(), data['label'].as_tensor())

    elastic = Compose(
        [
            RandApplyTorchIOd(
                'image', RampSpatial(flip_probability=0, elastic_probability=1)
            )
        ]
    )
    deformed = elastic.set_random_state(seed=0)(_sample())
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the error
        Invertd(keys='image', transform=elastic, orig_keys='image')(deformed)
    cause = str(raised.value.__cause__)
    assert "cannot invert entry 'image': the sample was resampled by" in cause


def test_laterality_swap_is_undone_by_the_inverse():
    from monai.transforms import Invertd

    # the patient's left-right axis is the first array axis here
    data = _sample()
    options = {'intensity': False, 'corruption': False, 'label_pairs': {1: 3}}
    pipeline = Compose([Rampd('image', label_keys='label', **options)])

    def lateral(record):
        return not record['not_invertible'] and any(
            0 in flip['axes'] for flip in record['flips']
        )

    _, out, record = _flipping_state(pipeline, data, keep=lateral)
    axes = [1 + axis for flip in record['flips'] for axis in flip['axes']]
    plain = data['label'].as_tensor().flip(axes)
    assert not torch.equal(out['label'].as_tensor(), plain)  # 1 and 3 swapped
    assert torch.equal(out['label'].as_tensor(), 4 * (plain > 0) - plain)
    restored = Invertd(keys='label', transform=pipeline, orig_keys='label')(out)
    assert torch.equal(restored['label'].as_tensor(), data['label'].as_tensor())


def test_2d_images_are_transformed_as_torchio_does_with_a_unit_depth():
    data = {key: value[..., 5] for key, value in _sample().items()}
    assert data['image'].shape == (1, 20, 18)
    for state in range(4):
        augment = Rampd('image', label_keys='label').set_random_state(seed=state)
        out = augment(dict(data))
        as_3d = {key: value[..., None] for key, value in data.items()}
        expected = _torchio(Ramp(), as_3d, augment.seed, labels=['label'])
        assert out['image'].shape == (1, 20, 18) and out['label'].shape == (1, 20, 18)
        assert torch.equal(out['image'].as_tensor(), expected['image'].data[..., 0])
        assert torch.equal(out['label'].as_tensor(), expected['label'].data[..., 0])
    corrupted = RampCorruptd('image', p=1).set_random_state(seed=0)(dict(data))
    assert corrupted['image'].shape == (1, 20, 18)
    with pytest.raises(ValueError, match='2-D and 3-D entries cannot be mixed'):
        Rampd('image', label_keys='label')({**data, 'label': _sample()['label']})


def test_a_label_key_that_is_not_in_the_data_is_refused():
    data = _sample()
    typo = Rampd('image', label_keys='lable').set_random_state(seed=0)
    with pytest.raises(KeyError, match=r"label_keys \['lable'\] of Rampd are not in"):
        typo(data)
    unlabelled = Rampd('image', label_keys='label', allow_missing_label_keys=True)
    out = unlabelled.set_random_state(seed=0)({'image': data['image']})
    assert set(out) == {'image'}


def test_batch_ramp_corruptd_after_a_dataloader_equals_ramp_corrupt_per_sample():
    from monai.data import list_data_collate

    items = [_sample(seed) for seed in range(3)]
    loader = DataLoader(
        Dataset(items), batch_size=3, num_workers=0, collate_fn=list_data_collate
    )
    batch = next(iter(loader))
    assert isinstance(batch['image'], MetaTensor) and batch['image'].shape[0] == 3
    corrupt = BatchRampCorruptd('image', p=1, num_corruptions=2)
    out = corrupt.set_random_state(seed=5)(batch)
    assert isinstance(out['image'], MetaTensor)
    assert out['label'] is batch['label']
    assert len(set(corrupt.seeds)) == 3
    for index, seed in enumerate(corrupt.seeds):
        torch.manual_seed(seed)
        expected = RampCorrupt(p=1, num_corruptions=2)(
            tio.ScalarImage(tensor=items[index]['image'].as_tensor())
        )
        assert torch.equal(out['image'][index].as_tensor(), expected.data)
    again = corrupt.set_random_state(seed=5)(batch)
    assert torch.equal(again['image'].as_tensor(), out['image'].as_tensor())
    # a batch of 2-D images (B, C, H, W)
    flat = corrupt({'image': batch['image'][..., 0]})
    assert flat['image'].shape == (3, 1, 20, 18)
    with pytest.raises(ValueError, match=r"entry 'image' must be a batch"):
        corrupt({'image': torch.rand(8, 8)})
