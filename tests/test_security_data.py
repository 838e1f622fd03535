"""Crafted prepared datasets: no file outside the dataset is read, no row trusted.

Datasets are written by the real ``ramp-prep`` on tiny phantoms; the
manifest, splits and files are then edited as a careless or hostile sender
would. A Python audit hook records every file opened, so the tests can
assert that a file outside the dataset (even a CT whose hash the manifest
records correctly) is never opened, not merely that an error is raised.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from ramp_prep.cli import main as prep_main
from tests.prep_fixtures import invoke_cli as invoke
from torchio_ramp.datasets import data_fingerprint
from torchio_ramp.datasets import load_split
from torchio_ramp.datasets import read_splits
from torchio_ramp.datasets import subject_file
from torchio_ramp.datasets import verify_subject
from torchio_ramp.files import file_sha256
from torchio_ramp.integrity import IntegrityError
from torchio_ramp.stress.cli import main as stress_main

pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')

_OPENED: list[str] | None = None


def _audit(event: str, arguments: tuple) -> None:
    if _OPENED is not None and event == 'open' and isinstance(arguments[0], str):
        _OPENED.append(arguments[0])


sys.addaudithook(_audit)


@contextmanager
def opened() -> Iterator[list[str]]:
    """The paths Python opens inside the block (resolve them afterwards)."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def was_opened(paths: list[str], target: Path) -> bool:
    return any(Path(path).resolve() == target.resolve() for path in paths)


def prepare(root: Path, *options: str, fractions: str = '0.5,0,0.5') -> Path:
    source, out = root / 'source', root / 'prepared'
    invoke(prep_main, ['synth', source, '--layout', 'totalseg', '--subjects', 4,
                       '--shape', '16,16,16', '--no-progress'], 0)  # fmt: skip
    invoke(prep_main, ['totalseg', source, out, '--fractions', fractions,
                       '--no-progress', *options], 0)  # fmt: skip
    return out


@pytest.fixture(scope='module')
def pristine(tmp_path_factory) -> Path:
    return prepare(tmp_path_factory.mktemp('security-data'))


@pytest.fixture
def prepared(pristine, tmp_path) -> Path:
    out = tmp_path / 'dataset'
    shutil.copytree(pristine, out)
    return out


def rows(root: Path) -> list[dict[str, str]]:
    with (root / 'manifest.csv').open(newline='') as f:
        return list(csv.DictReader(f))


def write_rows(root: Path, table: list[dict[str, str]]) -> None:
    with (root / 'manifest.csv').open('w', newline='') as f:
        writer = csv.DictWriter(f, list(table[0]), lineterminator='\n')
        writer.writeheader()
        writer.writerows(table)


def first_test_id(root: Path) -> str:
    return json.loads((root / 'splits.json').read_text())['test'][0]


def edit_row(root: Path, subject_id: str, **values: str) -> dict[str, str]:
    table = rows(root)
    (row,) = [r for r in table if r['id'] == subject_id]
    row.update(values)
    write_rows(root, table)
    return row


@pytest.fixture
def outside(prepared, tmp_path) -> Path:
    """A copy of a real CT outside the dataset: its hash and size are valid."""
    row = next(r for r in rows(prepared) if r['id'] == first_test_id(prepared))
    folder = tmp_path / 'elsewhere'
    folder.mkdir()
    path = folder / 'ct.nii.gz'
    shutil.copyfile(prepared / row['image'], path)
    return path


def point_image_at(root: Path, text: str, target: Path) -> str:
    """Make the test subject's image column ``text``, with ``target``'s hash."""
    subject_id = first_test_id(root)
    edit_row(
        root,
        subject_id,
        image=text,
        image_sha256=file_sha256(target),
        image_bytes=str(target.stat().st_size),
    )
    return subject_id


@pytest.mark.parametrize('form', ['absolute', 'parent', 'nested parent'])
def test_a_ct_outside_the_dataset_is_refused_and_never_read(prepared, outside, form):
    text = {
        'absolute': str(outside),
        'parent': os.path.relpath(outside, prepared),
        'nested parent': f'images/../../{outside.parent.name}/{outside.name}',
    }[form]
    subject_id = point_image_at(prepared, text, outside)
    with opened() as paths, pytest.raises(ValueError) as caught:
        load_split(prepared, 'test')
    message = str(caught.value)
    assert message.startswith(f'{prepared / "manifest.csv"}, subject {subject_id!r}')
    assert repr(text) in message
    assert not was_opened(paths, outside)
    with opened() as paths, pytest.raises(ValueError, match=subject_id):
        data_fingerprint(prepared, [subject_id])
    assert not was_opened(paths, outside)


def test_the_stress_cli_refuses_it_and_scores_nothing(prepared, outside, tmp_path):
    point_image_at(prepared, str(outside), outside)
    model = tmp_path / 'model.pt'
    torch.jit.save(torch.jit.script(torch.nn.Conv3d(1, 6, 1)), str(model))
    model.with_suffix('.json').write_text('{"hu_range": [-200, 300], "patch_size": 16}')
    out = tmp_path / 'out'
    result = invoke(stress_main, ['run', '--model', model, '--data', prepared, '--out',
                                  out, '--families', 'blur', '--levels', 0.1,
                                  '--no-progress'], 1)  # fmt: skip
    assert 'is an absolute path' in result.output
    assert not (out / 'results.csv').exists()


@pytest.mark.parametrize(
    ('key', 'text', 'needle'),
    [
        ('image', '../../etc/passwd', 'leaves the dataset folder'),
        ('image', 'images/../labels/{id}.nii.gz', 'leaves the dataset folder'),
        ('image', 'labels/{id}.nii.gz', 'is not in an image folder'),
        ('label', 'images/{id}.nii.gz', 'is not in a label folder'),
        ('image', '{id}.nii.gz', 'is not in an image folder'),
        ('image', 'C:\\data\\{id}.nii.gz', 'is an absolute path'),
        ('label', '/etc/passwd', 'is an absolute path'),
    ],
)
def test_paths_that_leave_their_folder_are_refused(prepared, key, text, needle):
    subject_id = first_test_id(prepared)
    text = text.format(id=subject_id)
    edit_row(prepared, subject_id, **{key: text})
    with opened() as paths, pytest.raises(ValueError) as caught:
        load_split(prepared, 'test')
    assert f'subject {subject_id!r}: the {key} {text!r} {needle}' in str(caught.value)
    assert not was_opened(paths, Path('/etc/passwd'))


@pytest.mark.parametrize('target', ['outside', 'label'])
def test_links_leaving_their_folder_are_refused(prepared, outside, target):
    subject_id = first_test_id(prepared)
    row = next(r for r in rows(prepared) if r['id'] == subject_id)
    image = prepared / row['image']
    image.unlink()
    destination = outside if target == 'outside' else prepared / row['label']
    image.symlink_to(destination)
    point_image_at(prepared, row['image'], destination)
    with opened() as paths, pytest.raises(ValueError, match='is a link to'):
        load_split(prepared, 'test')
    assert not was_opened(paths, destination)
    edit_row(prepared, subject_id, linked='yes')  # only a CT ramp-prep linked
    with pytest.raises(ValueError, match=r'linked by ramp-prep --link\) is a link'):
        load_split(prepared, 'test')


def test_a_linked_dataset_still_loads(tmp_path):
    prepared = prepare(tmp_path, '--link')
    table = rows(prepared)
    assert all(r['linked'] == 'yes' for r in table)
    assert all((prepared / r['image']).is_symlink() for r in table)
    assert len(load_split(prepared, 'all')) == 4


def test_an_nnunet_dataset_goes_through_the_same_checks(tmp_path):
    nnunet = ('--format', 'nnunet', '--dataset-id', '7')
    out = prepare(tmp_path, *nnunet, fractions='0.5,0.25,0.25')
    (root,) = out.glob('Dataset007_*')
    assert len(load_split(root, 'all')) == 4
    subject_id = first_test_id(root)
    edit_row(root, subject_id, image=f'labelsTs/{subject_id}.nii.gz')
    with pytest.raises(ValueError, match=r'is not in an image folder \(images, image'):
        load_split(root, 'test')


def test_subject_file_is_the_file_inside_the_dataset(prepared):
    row = rows(prepared)[0]
    assert subject_file(prepared, row, 'label') == prepared / row['label']


# Manifest rows -------------------------------------------------------------------


def test_a_subject_listed_twice_is_refused(prepared):
    table = rows(prepared)
    write_rows(prepared, [*table, table[0]])
    with pytest.raises(
        ValueError, match=rf"lines 2 and 6 both list subject '{table[0]['id']}'"
    ):
        load_split(prepared, 'all')


def test_two_subjects_naming_one_label_are_refused(prepared):
    table = rows(prepared)
    table[1]['label'] = table[0]['label']
    table[1]['label_sha256'] = table[0]['label_sha256']
    table[1]['label_bytes'] = table[0]['label_bytes']
    write_rows(prepared, table)
    with pytest.raises(ValueError, match=r"lines 2 and 3 both list the label 'labels/"):
        load_split(prepared, 'all')


@pytest.mark.parametrize('value', ['', 'abc', 'z' * 64])
def test_a_blank_or_bad_hash_is_an_error_not_a_skipped_check(prepared, value):
    subject_id = first_test_id(prepared)
    edit_row(prepared, subject_id, label_sha256=value)
    with pytest.raises(IntegrityError) as caught:
        load_split(prepared, 'test')
    message = str(caught.value)
    assert f'subject {subject_id!r}: label_sha256 is blank or not valid' in message
    assert len(load_split(prepared, 'test', verify='size')) == 2  # size: no hashes


def test_size_verification_needs_the_sizes(prepared):
    subject_id = first_test_id(prepared)
    edit_row(prepared, subject_id, image_bytes='')
    with pytest.raises(IntegrityError, match='image_bytes is blank or not valid'):
        load_split(prepared, 'test', verify='size')
    assert len(load_split(prepared, 'test')) == 2  # sha256 compares the hash


def test_verify_subject_checks_the_row_it_is_given(prepared):
    row = dict(rows(prepared)[0], image='/etc/passwd')
    with pytest.raises(ValueError, match='is an absolute path'):
        verify_subject(prepared, row)


# Splits ----------------------------------------------------------------------------


def edit_splits(root: Path, **splits) -> None:
    path = root / 'splits.json'
    document = json.loads(path.read_text())
    document.update(splits)
    path.write_text(json.dumps(document))


def test_a_subject_in_two_splits_is_refused(prepared):
    splits = read_splits(prepared)
    edit_splits(prepared, train=[*splits['train'], splits['test'][0]])
    with pytest.raises(
        ValueError, match=rf"'{splits['test'][0]}' is in both 'train' and 'test'"
    ):
        load_split(prepared, 'train')


def test_a_subject_listed_twice_in_a_split_is_refused(prepared):
    splits = read_splits(prepared)
    edit_splits(prepared, test=[splits['test'][0], *splits['test']])
    with pytest.raises(ValueError, match=r"is listed twice in 'test'"):
        load_split(prepared, 'test')


def test_every_split_id_must_be_in_the_manifest(prepared):
    edit_splits(prepared, val=['nobody'])
    with pytest.raises(
        ValueError, match=r"lists 'nobody' but .*manifest\.csv does not"
    ):
        load_split(prepared, 'test')  # another split: the folder is inconsistent


@pytest.mark.parametrize('value', ['s1', [1, 2], [''], None])
def test_a_split_must_be_a_list_of_ids(prepared, value):
    edit_splits(prepared, val=value)
    with pytest.raises(ValueError, match=r"'val' must be a list of subject ids"):
        read_splits(prepared)
