"""A release's own split on request, and small cohorts that leave a split empty."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ramp_prep.cli import main
from ramp_prep.splits import compute_split
from ramp_prep.splits import filling_fractions
from ramp_prep.splits import split_sizes
from ramp_prep.synth import write_synthetic
from torchio_ramp.datasets import load_split
from torchio_ramp.training.cli import main as ramp_train

from .prep_fixtures import TOTALSEG_EXAMPLE
from .prep_fixtures import invoke_cli

SPLITS = ('train', 'val', 'test')


def prep(arguments, code=0):
    return invoke_cli(main, arguments, code)


def splits_of(root: Path) -> dict:
    return json.loads((root / 'splits.json').read_text())


def warnings(output: str) -> list[str]:
    prefix = 'WARNING: '
    return [x[len(prefix) :] for x in output.splitlines() if x.startswith(prefix)]


def fix_command(warning: str) -> list[str]:
    """The ``ramp-prep split ...`` arguments a warning recommends."""
    command = warning.split(' Fix: ramp-prep ', 1)[1].split(' (', 1)[0]
    return command.split()


def release(root: Path, assigned: dict[str, str]) -> Path:
    """A synthetic TotalSegmentator release whose meta.csv gives ``assigned``."""
    write_synthetic(root, 'totalseg', len(assigned), shape=(8, 8, 8), seed=0)
    rows = ['image_id;age;gender;institute;study_type;split']
    rows += [f'{i};;;;SYNTHETIC;{s}' for i, s in assigned.items()]
    (root / 'meta.csv').write_text('\n'.join(rows) + '\n')
    return root


IDS = [f'synth{i:04d}' for i in range(1, 7)]
ASSIGNED = dict(
    zip(IDS, ['test', 'train', 'val', 'train', 'test', 'train'], strict=True)
)


# The release's split -------------------------------------------------------------


@pytest.mark.parametrize('fmt', ['ramp', 'nnunet'])
def test_release_split_is_kept_exactly(tmp_path, fmt):
    source = release(tmp_path / 'source', ASSIGNED)
    out = tmp_path / 'out'
    extra = ['--format', 'nnunet', '--dataset-id', 9] if fmt == 'nnunet' else []
    result = prep(['totalseg', source, out, '--release-split', '--no-progress', *extra])
    root = out if fmt == 'ramp' else next(out.glob('Dataset009_*'))
    splits = splits_of(root)
    for name in SPLITS:
        assert splits[name] == sorted(i for i, s in ASSIGNED.items() if s == name)
    assert splits['method'] == 'release' and splits['seed'] is None
    assert splits['cohort']['split_sizes'] == {'train': 3, 'val': 1, 'test': 2}
    assert "the release's own split" in result.output
    assert warnings(result.output) == []
    report = (root / 'report.txt').read_text()
    assert "the release's own split from meta.csv" in report
    info = json.loads((root / 'dataset.json').read_text())
    assert info['split_rule'].startswith("the release's own split")
    for name in SPLITS:
        ids = [s['subject_id'] for s in load_split(root, name).dry_iter()]
        assert ids == splits[name]
    if fmt == 'nnunet':
        for subject_id in splits['test']:
            assert (root / 'imagesTs' / f'{subject_id}_0000.nii.gz').is_file()
    # Without the flag the seeded split comes back, moving nobody's files by hand.
    seeded = ['--fractions', '0.5,0.25,0.25']  # nnU-Net's fold 0 needs a val case
    prep(['totalseg', source, out, '--no-progress', *seeded, *extra])
    assert splits_of(root)['method'] == 'seeded' and splits_of(root)['seed'] == 42
    assert [len(splits_of(root)[name]) for name in SPLITS] == [3, 1, 2]


@pytest.mark.parametrize(
    ('change', 'needles'),
    [
        ({'synth0002': ''}, ['no split for 1 id(s): synth0002']),
        ({'synth0003': 'validation'}, ["synth0003 ('validation')"]),
    ],
)
def test_release_split_names_the_rows_it_cannot_use(tmp_path, change, needles):
    source = release(tmp_path / 'source', {**ASSIGNED, **change})
    result = prep(['totalseg', source, tmp_path / 'out', '--release-split'], 1)
    assert f'--release-split: {source / "meta.csv"} (column split) gives' in (
        result.output
    )
    for needle in needles:
        assert needle in result.output


def test_release_split_needs_a_meta_csv_and_a_release_that_has_one(tmp_path):
    source = release(tmp_path / 'source', ASSIGNED)
    (source / 'meta.csv').unlink()
    result = prep(['totalseg', source, tmp_path / 'out', '--release-split'], 1)
    assert f'{source / "meta.csv"} not found' in result.output
    abdomen = tmp_path / 'abdomen'
    write_synthetic(abdomen, 'abdomenct1k', 2, shape=(8, 8, 8), seed=0)
    result = prep(['abdomenct1k', abdomen, tmp_path / 'out2', '--release-split'], 2)
    assert '--release-split: abdomenct1k has no split of its own' in result.output


# Small cohorts -----------------------------------------------------------------


def test_filling_fractions_fill_every_split_of_small_cohorts():
    assert filling_fractions(0) is None and filling_fractions(1) is None
    assert split_sizes(2, filling_fractions(2)) == (1, 1, 0)
    for n in range(3, 60):
        fractions = filling_fractions(n)
        assert abs(sum(fractions) - 1) < 1e-9 and min(fractions) >= 0
        assert min(split_sizes(n, fractions)) >= 1, n
        assert all(round(f, 2) == f for f in fractions)  # typed as shown


@pytest.mark.parametrize('subjects', [3, 4, 6])
def test_a_small_cohort_warns_with_the_command_that_fills_every_split(
    tmp_path, subjects
):
    source, out = tmp_path / 'source', tmp_path / 'out'
    write_synthetic(source, 'totalseg', subjects, shape=(8, 8, 8), seed=0)
    result = prep(['totalseg', source, out, '--no-progress'])
    (warning,) = warnings(result.output)
    assert "split 'val' is empty" in warning
    assert 'ramp-train validates on it' in warning
    assert warning in (out / 'report.txt').read_text()
    command = fix_command(warning)
    assert command[:2] == ['split', str(out)]
    fixed = prep(command)
    assert warnings(fixed.output) == []
    assert all(splits_of(out)[name] for name in SPLITS)


def test_a_partly_prepared_cohort_is_split_on_what_is_prepared(tmp_path):
    source, out = tmp_path / 'source', tmp_path / 'out'
    ids = write_synthetic(source, 'totalseg', 20, shape=(8, 8, 8), seed=0)
    chosen = ','.join(compute_split(ids)['train'][:4])  # all four in train
    result = prep(['totalseg', source, out, '--subjects', chosen, '--no-progress'])
    (warning,) = warnings(result.output)
    assert "splits 'val' and 'test' are empty (train 4, val 0, test 0 of 4" in warning
    command = fix_command(warning)
    assert command[2:4] == ['--cohort', 'prepared']
    prep(command)
    assert [len(splits_of(out)[name]) for name in SPLITS] == [2, 1, 1]


def test_empty_splits_chosen_on_purpose_give_no_warning(tmp_path):
    source, out = tmp_path / 'source', tmp_path / 'out'
    write_synthetic(source, 'totalseg', 2, shape=(8, 8, 8), seed=0)
    result = prep(['totalseg', source, out, '--fractions', '0,0,1', '--no-progress'])
    assert warnings(result.output) == []
    result = prep(['split', out, '--fractions', '1,0,0'])
    assert warnings(result.output) == []
    result = prep(['split', out])
    (warning,) = warnings(result.output)
    assert 'Two subjects cannot fill three splits' in warning


def test_one_subject_cannot_be_split_and_says_what_it_can_do(tmp_path):
    source, out = tmp_path / 'source', tmp_path / 'out'
    write_synthetic(source, 'totalseg', 1, shape=(8, 8, 8), seed=0)
    result = prep(['totalseg', source, out, '--no-progress'])
    (warning,) = warnings(result.output)
    assert "splits 'train' and 'val' are empty (train 0, val 0, test 1" in warning
    assert f'ramp-prep split {out} --fractions 0,0,1' in warning


# The two real example CTs ------------------------------------------------------


@pytest.mark.skipif(
    not (TOTALSEG_EXAMPLE / 'meta.csv').exists(),
    reason=f'{TOTALSEG_EXAMPLE} is absent (it lives in ../shared beside the checkout)',
)
def test_real_example_release_split_warns_and_training_names_the_fix(tmp_path):
    out = tmp_path / 'real'
    result = prep(['totalseg', TOTALSEG_EXAMPLE, out, '--release-split'])
    splits = splits_of(out)
    assert (splits['train'], splits['val'], splits['test']) == (
        ['s0001'],
        [],
        ['s0002'],
    )  # meta.csv: s0001 train, s0002 test
    (warning,) = warnings(result.output)
    assert warning.startswith(
        "split 'val' is empty (train 1, val 0, test 1 of 2 prepared subjects)"
    )
    assert fix_command(warning) == ['split', str(out), '--fractions', '0.5,0.5,0']
    # Training on it stops before anything is written and names the fix.
    runs = tmp_path / 'runs'
    failed = invoke_cli(
        ramp_train, ['--data', out, '--out', runs, '--model', 'tiny'], 1
    )
    message = ' '.join(failed.output.split())
    assert f"Split 'val' of {out} is empty (train 1, val 0, test 1" in message
    assert f'ramp-prep split {out} --fractions TRAIN,VAL,TEST' in message
    assert not (runs / 'config.json').exists()
    shutil.rmtree(runs, ignore_errors=True)
    prep(fix_command(warning))
    assert [len(splits_of(out)[name]) for name in SPLITS] == [1, 1, 0]


def test_the_walkthrough_table_gives_the_fractions_ramp_prep_prints():
    page = (
        Path(__file__).resolve().parents[1] / 'docs' / 'first-real-ct.md'
    ).read_text()
    row = re.compile(r'^\| (\d) \| `([\d.,]+)`[^|]*\| ([\d, ]+) \|$', re.MULTILINE)
    rows = row.findall(page)
    assert [int(n) for n, _, _ in rows] == [2, 3, 4, 5, 6]
    for n, text, sizes in rows:
        fractions = filling_fractions(int(n))
        assert text == ','.join(f'{f:g}' for f in fractions)
        expected = split_sizes(int(n), fractions)
        assert tuple(int(s) for s in sizes.split(',')) == expected
    assert '| 7 or more | the default `0.7,0.15,0.15` |' in page
    assert filling_fractions(7) == (0.7, 0.15, 0.15)
