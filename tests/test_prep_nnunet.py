"""``--format nnunet``: nnU-Net v2 raw dataset structure and re-splitting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ramp_prep.convert import prepare
from ramp_prep.convert import resplit
from ramp_prep.errors import PrepError
from ramp_prep.splits import compute_split
from torchio_ramp.datasets import load_split
from torchio_ramp.datasets import read_dataset_info

from .prep_fixtures import make_totalseg
from .prep_fixtures import read_array


def names(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def exported(tmp_path):
    src = tmp_path / 'src'
    ids = make_totalseg(src, n=7)
    summary = prepare(
        'totalseg', src, tmp_path / 'out', fmt='nnunet', dataset_id=42, progress=False
    )
    return src, tmp_path / 'out' / 'Dataset042_RampTotalSegSynth', ids, summary


def test_nnunet_folder_structure(exported):
    src, root, ids, summary = exported
    assert summary.root == root
    split = compute_split(ids, 42)
    trval = sorted(split['train'] + split['val'])
    assert names(root / 'imagesTr') == [f'{i}_0000.nii.gz' for i in trval]
    assert names(root / 'labelsTr') == [f'{i}.nii.gz' for i in trval]
    assert names(root / 'imagesTs') == [f'{i}_0000.nii.gz' for i in split['test']]
    assert names(root / 'labelsTs') == [f'{i}.nii.gz' for i in split['test']]
    case = split['test'][0]
    assert (root / 'imagesTs' / f'{case}_0000.nii.gz').read_bytes() == (
        src / case / 'ct.nii.gz'
    ).read_bytes()
    label = read_array(root / 'labelsTs' / f'{case}.nii.gz')
    assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1, 2, 3, 4, 5}


def test_nnunet_dataset_json_and_splits_final(exported):
    _, root, ids, _ = exported
    info = json.loads((root / 'dataset.json').read_text())
    assert info['channel_names'] == {'0': 'CT'}
    assert info['labels'] == {
        'background': 0,
        'liver': 1,
        'spleen': 2,
        'kidney': 3,
        'heart': 4,
        'colon': 5,
    }
    assert info['numTraining'] == 5  # train 4 + val 1
    assert info['file_ending'] == '.nii.gz'
    assert info['layout'] == 'nnunet' and info['annotated_classes'] == [1, 2, 3, 4, 5]
    # nnU-Net reads "dataset" as a case -> files mapping: our name is elsewhere
    assert 'dataset' not in info and info['ramp_dataset'] == 'synthetic-totalseg'
    split = compute_split(ids, 42)
    final = json.loads((root / 'splits_final.json').read_text())
    assert final == [{'train': split['train'], 'val': split['val']}]
    splits = json.loads((root / 'splits.json').read_text())
    assert {n: splits[n] for n in split} == split
    assert read_dataset_info(root)['dataset'] == 'synthetic-totalseg'
    with pytest.raises(FileNotFoundError, match='an nnU-Net export is inside'):
        read_dataset_info(root.parent)


def test_load_split_reads_the_nnunet_export(exported):
    _, root, ids, _ = exported
    split = compute_split(ids, 42)
    test = load_split(root, 'test')
    assert [s['subject_id'] for s in test.dry_iter()] == split['test']
    subject = test[0]
    assert subject.ct.shape == subject.label.shape == (1, 24, 24, 24)


def test_resplit_moves_cases_between_tr_and_ts(exported):
    _, root, ids, _ = exported
    splits = resplit(root, 7, (0.4, 0.3, 0.3))
    expected = compute_split(ids, 7, (0.4, 0.3, 0.3))
    assert {n: splits[n] for n in expected} == expected
    trval = sorted(expected['train'] + expected['val'])
    assert names(root / 'imagesTr') == [f'{i}_0000.nii.gz' for i in trval]
    assert names(root / 'labelsTs') == [f'{i}.nii.gz' for i in expected['test']]
    assert json.loads((root / 'splits_final.json').read_text()) == [
        {'train': expected['train'], 'val': expected['val']}
    ]
    info = json.loads((root / 'dataset.json').read_text())
    assert info['seed'] == 7 and info['numTraining'] == len(trval)
    manifest = (root / 'manifest.csv').read_text()
    assert (
        f'{expected["test"][0]},test,imagesTs/{expected["test"][0]}_0000.nii.gz'
        in manifest
    )
    # A later conversion run with the default seed moves them back and redoes nothing.
    summary = prepare(
        'totalseg',
        root.parent.parent / 'src',
        root.parent,
        fmt='nnunet',
        dataset_id=42,
        progress=False,
    )
    assert summary.converted == [] and sorted(summary.skipped) == ids
    default = compute_split(ids, 42)
    assert names(root / 'imagesTs') == [f'{i}_0000.nii.gz' for i in default['test']]


def test_cli_nnunet_usage_errors(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ramp_prep.cli import main

    make_totalseg(tmp_path / 'src', n=1)
    runner = CliRunner()
    result = runner.invoke(
        main, ['totalseg', str(tmp_path / 'src'), 'out', '--format', 'nnunet']
    )
    assert result.exit_code == 2 and '--dataset-id' in result.output
    # `ramp-prep totalseg SRC "$nnUNet_raw"` with the variable unset
    here = tmp_path / 'here'
    here.mkdir()
    monkeypatch.chdir(here)
    args = ['totalseg', str(tmp_path / 'src'), '', '--format', 'nnunet']
    result = runner.invoke(main, [*args, '--dataset-id', '5'])
    assert result.exit_code == 2 and 'is not a folder name' in result.output
    assert list(here.iterdir()) == []


def test_nnunet_needs_a_dataset_id(tmp_path):
    make_totalseg(tmp_path / 'src', n=1)
    with pytest.raises(PrepError, match='--format nnunet needs --dataset-id'):
        prepare(
            'totalseg', tmp_path / 'src', tmp_path / 'out', fmt='nnunet', progress=False
        )
    with pytest.raises(PrepError, match='--dataset-name must be letters'):
        prepare(
            'totalseg',
            tmp_path / 'src',
            tmp_path / 'out',
            fmt='nnunet',
            dataset_id=3,
            dataset_name='bad name',
            progress=False,
        )


def test_an_export_without_a_validation_case_is_refused(tmp_path):
    # nnU-Net's data loader fails on an empty validation list ('a' cannot be
    # empty); 5 subjects with the default fractions have none
    src = tmp_path / 'src'
    make_totalseg(src, n=5)
    with pytest.raises(PrepError, match='the val split of these 5 subjects is empty'):
        prepare('totalseg', src, tmp_path / 'out', fmt='nnunet', dataset_id=42,
                progress=False)  # fmt: skip
    assert not list((tmp_path / 'out').rglob('*.nii.gz'))  # nothing converted
    # the fix the message names works
    prepare('totalseg', src, tmp_path / 'out', fmt='nnunet', dataset_id=42,
            fractions=(0.6, 0.2, 0.2), progress=False)  # fmt: skip
    root = tmp_path / 'out' / 'Dataset042_RampTotalSegSynth'
    (fold,) = json.loads((root / 'splits_final.json').read_text())
    assert len(fold['train']) == 3 and len(fold['val']) == 1
    # a re-split of the export that would empty it is refused too, unchanged
    with pytest.raises(PrepError, match=r'--fractions 0\.6,0\.2,0\.2'):
        resplit(root, 7, (0.7, 0.15, 0.15))
    assert json.loads((root / 'splits_final.json').read_text()) == [fold]
    # the ramp layout has no such constraint
    prepare('totalseg', src, tmp_path / 'plain', progress=False)


@pytest.mark.parametrize('total', [2, 3, 4, 5, 6])
def test_the_suggested_fractions_fill_nnunets_fold(total):
    """The --fractions an export refusal suggests give train and val a case each."""
    from ramp_prep.errors import PrepError
    from ramp_prep.nnunet import check_nnunet_fold
    from ramp_prep.splits import split_sizes

    split = {'train': [f's{i}' for i in range(total - 1)], 'val': [], 'test': ['t']}
    with pytest.raises(PrepError, match='--fractions') as raised:
        check_nnunet_fold(split)
    suggested = str(raised.value).split('--fractions ')[-1].split(')')[0]
    fractions = tuple(float(f) for f in suggested.split(','))
    train, val, _ = split_sizes(total, fractions)
    assert train >= 1 and val >= 1, (suggested, train, val)
