"""Atomic writes, resuming after a kill, skipping finished work, workers, --subjects."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ramp_prep.convert import Options
from ramp_prep.convert import prepare
from ramp_prep.errors import PrepError
from ramp_prep.splits import compute_split

from .prep_fixtures import make_totalseg
from .prep_fixtures import mask_path
from .prep_fixtures import read_array
from .prep_fixtures import rewrite
from .prep_fixtures import stalling_environment


def outputs(out):
    return {
        p.relative_to(out).as_posix(): p.stat().st_mtime_ns
        for folder in ('images', 'labels')
        for p in sorted((out / folder).iterdir())
    }


@pytest.fixture
def converted(tmp_path):
    src, out = tmp_path / 'src', tmp_path / 'out'
    ids = make_totalseg(src, n=4)
    prepare('totalseg', src, out, progress=False)
    return src, out, ids


def test_rerun_skips_finished_subjects_without_touching_them(converted):
    src, out, ids = converted
    before = outputs(out)
    summary = prepare('totalseg', src, out, progress=False)
    assert summary.converted == [] and summary.skipped == ids
    assert outputs(out) == before
    assert len(json.loads((out / 'splits.json').read_text())['train']) == 2


def test_changed_source_or_deleted_output_is_redone(converted):
    src, out, _ = converted
    before = outputs(out)
    spleen = mask_path(src, 'synth0002', 'spleen')
    rewrite(spleen, read_array(spleen))  # same voxels, new file: size/mtime differ
    (out / 'labels' / 'synth0004.nii.gz').unlink()
    summary = prepare('totalseg', src, out, progress=False)
    assert summary.converted == ['synth0002', 'synth0004']
    after = outputs(out)
    assert after['images/synth0001.nii.gz'] == before['images/synth0001.nii.gz']
    assert after['labels/synth0002.nii.gz'] != before['labels/synth0002.nii.gz']
    assert (out / 'labels' / 'synth0004.nii.gz').exists()


def test_overwrite_and_changed_options_redo_everything(converted):
    src, out, ids = converted
    assert (
        prepare('totalseg', src, out, progress=False, overwrite=True).converted == ids
    )
    summary = prepare('totalseg', src, out, progress=False, options=Options(link=True))
    assert summary.converted == ids
    for subject_id in ids:
        image = out / 'images' / f'{subject_id}.nii.gz'
        assert image.is_symlink()
        assert image.resolve() == (src / subject_id / 'ct.nii.gz').resolve()
    assert 'yes' in (out / 'manifest.csv').read_text().splitlines()[1].split(',')


def test_stale_temporary_files_are_removed(converted):
    src, out, _ = converted
    stale = out / 'labels' / '.synth0001.nii.gz.ramp-tmp-123-abcd.nii.gz'
    stale.write_bytes(b'half a file')
    prepare('totalseg', src, out, progress=False)
    assert not stale.exists()


def test_killed_run_leaves_no_half_written_output_and_rerun_finishes(tmp_path):
    src, out = tmp_path / 'src', tmp_path / 'out'
    ids = make_totalseg(src, n=4)
    liver = mask_path(src, 'synth0003', 'liver')
    # Reading it never returns (a stalled network mount): the run hangs
    # inside synth0003, after its CT copy
    process = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'ramp_prep',
            'totalseg',
            str(src),
            str(out),
            '--no-progress',
        ],
        env=stalling_environment(tmp_path, opens=[liver]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    records = out / '.ramp-prep' / 'records'
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            done = (
                sorted(p.stem for p in records.glob('synth*.json'))  # no .tmp files
                if records.exists()
                else []
            )
            temporary = list((out / 'images').glob('.synth0003*')) if done else []
            if len(done) == 2 and temporary:
                break
            assert process.poll() is None, 'ramp-prep exited before it was killed'
            time.sleep(0.05)
        else:
            pytest.fail('ramp-prep did not reach synth0003')
    finally:
        process.kill()
        process.wait()
    assert done == ['synth0001', 'synth0002']
    # The CT copy of synth0003 finished under a temporary name only.
    assert not (out / 'images' / 'synth0003.nii.gz').exists()
    assert not (out / 'labels' / 'synth0003.nii.gz').exists()
    assert not (out / 'dataset.json').exists()

    summary = prepare('totalseg', src, out, progress=False)
    assert summary.skipped == ['synth0001', 'synth0002']
    assert summary.converted == ['synth0003', 'synth0004']
    assert not [p for p in out.rglob('*') if '.ramp-tmp-' in p.name]
    assert sorted(p.name for p in (out / 'labels').iterdir()) == [
        f'{i}.nii.gz' for i in ids
    ]
    assert json.loads((out / 'dataset.json').read_text())['num_subjects'] == 4


def test_worker_count_does_not_change_any_output(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=5)
    prepare('totalseg', src, tmp_path / 'one', progress=False, workers=1)
    summary = prepare('totalseg', src, tmp_path / 'two', progress=False, workers=2)
    assert sorted(summary.converted) == [f'synth000{i}' for i in range(1, 6)]
    for name in ('splits.json', 'manifest.csv'):
        assert (tmp_path / 'one' / name).read_text() == (
            tmp_path / 'two' / name
        ).read_text()
    one = json.loads((tmp_path / 'one' / 'dataset.json').read_text())
    two = json.loads((tmp_path / 'two' / 'dataset.json').read_text())
    assert one == two


def test_subjects_filter_never_moves_a_subject_between_splits(tmp_path):
    src, out = tmp_path / 'src', tmp_path / 'out'
    ids = make_totalseg(src, n=5)
    full = compute_split(ids, 42)
    where = {i: n for n, members in full.items() for i in members}
    summary = prepare(
        'totalseg', src, out, progress=False, subjects=['synth0004', 'synth0001']
    )
    assert summary.converted == ['synth0001', 'synth0004']
    splits = json.loads((out / 'splits.json').read_text())
    for name in ('train', 'val', 'test'):
        assert splits[name] == [
            i for i in full[name] if i in ('synth0001', 'synth0004')
        ]
    assert splits['cohort']['size'] == 5
    assert splits['not_prepared']['synth0002'] == {
        'split': where['synth0002'],
        'reason': 'not selected (--subjects)',
    }
    summary = prepare('totalseg', src, out, progress=False)
    assert summary.skipped == ['synth0001', 'synth0004']
    splits = json.loads((out / 'splits.json').read_text())
    assert {n: splits[n] for n in full} == full
    assert splits['not_prepared'] == {}
    with pytest.raises(PrepError, match=r'--subjects: not in the cohort of .*: s9999'):
        prepare('totalseg', src, out, progress=False, subjects=['s9999'])


def test_out_holding_another_dataset_is_refused(converted, tmp_path):
    _, out, _ = converted
    from .prep_fixtures import make_abdomenct1k

    make_abdomenct1k(tmp_path / 'abd', n=1)
    with pytest.raises(PrepError, match='already holds synthetic totalseg data'):
        prepare('abdomenct1k', tmp_path / 'abd', out, progress=False)


def test_damaged_record_means_the_subject_is_redone(converted):
    src, out, _ = converted
    record = out / '.ramp-prep' / 'records' / 'synth0003.json'
    record.write_text('{"id": "synth0003", "image": "images/synth0003.nii.gz"}')
    (out / '.ramp-prep' / 'records' / 'synth0001.json').write_text('{trunc')
    summary = prepare('totalseg', src, out, progress=False)
    assert summary.converted == ['synth0001', 'synth0003']
    assert json.loads(record.read_text())['voxels']['liver'] > 0
