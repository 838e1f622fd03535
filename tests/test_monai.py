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
from torchio_ramp.monai import ApplyTorchIOd  # noqa: E402
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
        corrupt.set_random_state(seed=0)({'image': torch.rand(8, 8, 8), 'pet': 0})
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
