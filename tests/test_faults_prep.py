"""Fault injection for ramp-prep: killed runs, duplicate scans, bad arguments.

Worker hygiene is tested with a real ``ramp-prep`` process and a real
``kill -9``; duplicates with a symlinked subject folder, as users make them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ramp_prep.cli import main
from ramp_prep.convert import process_alive
from ramp_prep.splits import compute_split
from ramp_prep.splits import keep_together
from ramp_prep.synth import write_synthetic
from torchio_ramp.datasets import load_split

from .prep_fixtures import stalling_environment


def invoke(arguments, code: int):
    result = CliRunner().invoke(main, [str(a) for a in arguments])
    assert result.exit_code == code, result.output + repr(result.exception)
    assert 'Traceback' not in result.output
    if code:
        assert 'Error: ' in result.output or 'FAILED' in result.output
    return result


# Workers die with the run ------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out += children
        todo += children
    return out


@pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='needs /proc')
def test_workers_die_with_a_killed_run(tmp_path):
    source = tmp_path / 'source'
    write_synthetic(source, 'totalseg', 2, shape=(8, 8, 8), seed=0)
    # Reading a liver mask never returns (a stalled network mount), so both
    # workers are busy for ever and only the watchdog can end them.
    masks = [
        source / subject / 'segmentations' / 'liver.nii.gz'
        for subject in ('synth0001', 'synth0002')
    ]
    command = [sys.executable, '-m', 'ramp_prep', 'totalseg', str(source),
               str(tmp_path / 'out'), '--workers', '2', '--no-progress']  # fmt: skip
    run = subprocess.Popen(
        command,
        env=stalling_environment(tmp_path, opens=masks),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None:
            workers = _descendants(run.pid)
            if len(workers) >= 3:  # fork server + two workers (+ tracker)
                break
            time.sleep(0.2)
        assert run.poll() is None, 'the run ended before it could be killed'
        assert len(workers) >= 3, workers
        time.sleep(1.0)  # let both workers block on their mask
        workers = _descendants(run.pid)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(map(process_alive, workers)):
            time.sleep(0.2)
        left = [pid for pid in workers if process_alive(pid)]
        assert not left, f'processes left after kill -9 of the run: {left}'
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in workers:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_process_alive():
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    assert not process_alive(child.pid)  # reaped
    zombie = subprocess.Popen([sys.executable, '-c', 'pass'])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stat = Path(f'/proc/{zombie.pid}/stat')
        if stat.exists() and stat.read_text().rsplit(')', 1)[1].split()[0] == 'Z':
            break
        time.sleep(0.05)
    assert not process_alive(zombie.pid)  # exited, not yet reaped
    zombie.wait()


# Duplicate scans -----------------------------------------------------------------


def _cross_split_pairs(ids: list[str], seed: int = 42) -> list[tuple[str, str]]:
    """Pairs (alias, target) whose ids the plain split puts in different splits."""
    split = compute_split(ids, seed, (0.5, 0.25, 0.25))
    train, val, test = split['train'], split['val'], split['test']
    return [(train[-1], test[0]), (val[0], train[0])]


@pytest.mark.parametrize('fmt', ['ramp', 'nnunet'])
def test_duplicate_scans_are_reported_and_kept_in_one_split(tmp_path, fmt):
    source = tmp_path / 'source'
    ids = [f'synth{i:04d}' for i in range(1, 9)]
    write_synthetic(source, 'totalseg', 8, shape=(8, 8, 8), seed=0)
    pairs = _cross_split_pairs(ids)
    for alias, target in pairs:  # the alias folder becomes a link to another
        folder = source / alias
        for path in sorted(folder.rglob('*'), reverse=True):
            path.unlink() if not path.is_dir() else path.rmdir()
        folder.rmdir()
        folder.symlink_to(target)
    out = tmp_path / 'out'
    extra = ['--format', 'nnunet', '--dataset-id', 7] if fmt == 'nnunet' else []
    result = invoke(['totalseg', source, out, '--fractions', '0.5,0.25,0.25',
                     '--no-progress', *extra], 0)  # fmt: skip
    root = out if fmt == 'ramp' else next(out.glob('Dataset007_*'))
    splits = json.loads((root / 'splits.json').read_text())
    where = {i: name for name in ('train', 'val', 'test') for i in splits[name]}
    groups = [sorted(pair) for pair in pairs]
    assert splits['duplicates'] == sorted(groups)
    for first, second in groups:
        assert where[first] == where[second]  # never split across
        assert f'{first}, {second}' in result.output
    report = (root / 'report.txt').read_text()
    assert 'Duplicate scans (same CT SHA-256 under several ids; kept in one split)' in (
        report
    )
    assert sorted(where) == ids  # nobody dropped
    if fmt == 'nnunet':
        for name, folder in (('test', 'imagesTs'), ('train', 'imagesTr')):
            for subject_id in splits[name]:
                assert (root / folder / f'{subject_id}_0000.nii.gz').exists()
    for name in ('train', 'val', 'test'):
        if splits[name]:
            load_split(root, name)  # files verify where the split says
    invoke(['split', root, '--seed', 3, '--fractions', '0.5,0.25,0.25'], 0)
    again = json.loads((root / 'splits.json').read_text())
    where = {i: name for name in ('train', 'val', 'test') for i in again[name]}
    assert all(where[a] == where[b] for a, b in groups)


def test_keep_together_moves_to_the_first_ids_split():
    split = {'train': ['a', 'c'], 'val': ['b'], 'test': ['d', 'e']}
    assert keep_together(split, [['e', 'b'], ['x', 'c']]) == {
        'train': ['a', 'c'],
        'val': ['b', 'e'],
        'test': ['d'],
    }


# Command-line errors -----------------------------------------------------------------


@pytest.fixture(scope='module')
def release(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp('faults-prep') / 'source'
    write_synthetic(source, 'totalseg', 2, shape=(8, 8, 8), seed=0)
    return source


@pytest.mark.parametrize(
    ('arguments', 'code', 'needles'),
    [
        (['totalseg', '{src}', ''], 2, ["'OUT'", 'not a folder name']),
        (['abdomenct1k', '{src}', ' '], 2, ["'OUT'", 'not a folder name']),
        (['synth', '', '--layout', 'totalseg'], 2, ["'OUT'"]),
        (['totalseg', '{src}', '{out}', '--seed', '-1'], 2, ["'--seed'", '-1']),
        (['split', '{src}', '--seed', '-5'], 2, ["'--seed'"]),
        (['synth', '{out}', '--layout', 'totalseg', '--seed', '-1'], 2, ["'--seed'"]),
        (['totalseg', '{src}', '{out}', '--workers', '0'], 2, ["'-j' / '--workers'"]),
        (['totalseg', '{src}', '{out}', '--fractions', '0.9,0.9,0'], 2,
         ["'--fractions'"]),
        (['totalseg', '{src}/missing', '{out}'], 2, ["'SRC'", 'missing']),
        (['totalseg', '{src}', '{src}/inside'], 1, ['must not be SRC or inside it']),
        (['totalseg', '{src}', '{out}', '--subjects', '@{src}/no-such-file'], 1,
         ['no-such-file']),
        (['totalseg', '{src}', '{out}', '--subjects', 'nobody'], 1,
         ['--subjects', 'nobody']),
        (['split', '{out}/never-prepared'], 2, ["'OUT'"]),
    ],
)  # fmt: skip
def test_user_errors_end_in_error_naming_the_option(
    release, tmp_path, arguments, code, needles
):
    filled = [
        a.format(src=release, out=tmp_path / 'out') if isinstance(a, str) else a
        for a in arguments
    ]
    result = invoke(filled, code)
    for needle in needles:
        assert needle in result.output, result.output
    assert not (Path.cwd() / 'report.txt').exists()  # nothing written to cwd


def test_synth_progress_can_be_switched_off(tmp_path):
    common = ['--layout', 'totalseg', '--subjects', 2, '--shape', '8,8,8']
    quiet = invoke(['synth', tmp_path / 'quiet', *common, '--no-progress'], 0)
    assert 'it/s' not in quiet.output and 'Wrote 2 SYNTHETIC' in quiet.output
    loud = invoke(['synth', tmp_path / 'loud', *common, '--progress'], 0)
    assert 'Wrote 2 SYNTHETIC' in loud.output


# Files that are not regular files ----------------------------------------------------


def _invoke_with_deadline(arguments, fifos: list[Path], code: int, seconds=120):
    """:func:`invoke` in a thread: a run blocked on a FIFO fails instead of hanging.

    After ``seconds`` the FIFOs get writers that close at once, again and
    again, so that every blocked read sees the end of the file and the run ends.
    """
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(result=invoke(arguments, code)), daemon=True
    )
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        deadline = time.monotonic() + 60
        while thread.is_alive() and time.monotonic() < deadline:
            for fifo in fifos:
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(0.1)
        pytest.fail(f'ramp-prep was still blocked after {seconds} s: it opened a FIFO')
    assert 'result' in outcome, 'ramp-prep raised inside the test thread'
    return outcome['result']


def _nobody_reads(fifo: Path) -> bool:
    """Whether no process holds ``fifo`` open for reading (ENXIO for a writer)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as error:
        return error.errno == errno.ENXIO
    return False


@pytest.mark.parametrize(
    ('layout', 'relative'),
    [
        ('totalseg', 'synth0001/ct.nii.gz'),
        ('totalseg', 'synth0001/segmentations/liver.nii.gz'),
        ('abdomenct1k', 'masks/SynthCase_00001.nii.gz'),
    ],
)
def test_a_fifo_in_the_source_fails_its_subject_unopened(tmp_path, layout, relative):
    source, out = tmp_path / 'source', tmp_path / 'out'
    write_synthetic(source, layout, 2, shape=(8, 8, 8), seed=0)
    fifo = source / relative
    fifo.unlink()
    os.mkfifo(fifo)
    result = _invoke_with_deadline([layout, source, out, '--no-progress'], [fifo], 1)
    subject = 'synth0001' if layout == 'totalseg' else 'SynthCase_00001'
    failed = [x for x in result.output.splitlines() if x.startswith('FAILED')]
    assert len(failed) == 1 and subject in failed[0], result.output
    assert f'{fifo}: not a regular file (a named pipe, FIFO)' in failed[0]
    assert str(fifo) in (out / 'report.txt').read_text()
    other = 'synth0002' if layout == 'totalseg' else 'SynthCase_00002'
    assert (out / 'labels' / f'{other}.nii.gz').is_file()  # the other one converted
    assert _nobody_reads(fifo)


def test_a_fifo_meta_csv_is_refused_unopened(tmp_path):
    source, out = tmp_path / 'source', tmp_path / 'out'
    write_synthetic(source, 'totalseg', 2, shape=(8, 8, 8), seed=0)
    meta = source / 'meta.csv'
    meta.unlink()
    os.mkfifo(meta)
    result = _invoke_with_deadline(['totalseg', source, out], [meta], 1)
    assert f'Error: {meta}: not a regular file (a named pipe, FIFO)' in result.output
    assert _nobody_reads(meta)


# Temporary files of a killed run -----------------------------------------------------


def _run_until(command, env, ready, seconds=120):
    """Start ``command``; once ``ready()`` holds, kill -9 it (the test fails if not)."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + seconds
        while not ready():
            assert process.poll() is None, 'ramp-prep exited before it was killed'
            assert time.monotonic() < deadline, 'ramp-prep never reached the point'
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()


def test_a_run_killed_while_recording_a_subject_is_cleaned_up_and_said(tmp_path):
    source, out = tmp_path / 'source', tmp_path / 'out'
    write_synthetic(source, 'totalseg', 3, shape=(8, 8, 8), seed=0)
    records = out / '.ramp-prep' / 'records'
    env = stalling_environment(tmp_path, rename='.synth0002.json.ramp-tmp-')
    command = [sys.executable, '-m', 'ramp_prep', 'totalseg', str(source), str(out),
               '--no-progress']  # fmt: skip
    _run_until(command, env, lambda: list(records.glob('.synth0002.json.ramp-tmp-*')))
    (leftover,) = records.glob('.synth0002.json.ramp-tmp-*')
    assert [p.name for p in records.glob('synth*.json')] == ['synth0001.json']

    result = invoke(['totalseg', source, out, '--no-progress'], 0)
    relative = leftover.relative_to(out)
    assert (
        f'Removed 1 temporary file left by an interrupted run: {relative}'
        in result.output
    )
    assert 'This run: 2 converted, 1 already done' in result.output
    assert not [p for p in out.rglob('*') if '.ramp-tmp-' in p.name]
    again = invoke(['totalseg', source, out, '--no-progress'], 0)
    assert 'temporary' not in again.output  # nothing left to say


def test_temporaries_anywhere_in_out_are_removed_and_listed(tmp_path):
    source, out = tmp_path / 'source', tmp_path / 'out'
    write_synthetic(source, 'totalseg', 2, shape=(8, 8, 8), seed=0)
    invoke(['totalseg', source, out, '--no-progress'], 0)
    stale = [
        out / '.splits.json.ramp-tmp-1-aaaa.json',
        out / '.ramp-prep' / '.state.json.ramp-tmp-1-bbbb.json',
        out / '.ramp-prep' / 'records' / '.synth0001.json.ramp-tmp-1-cccc.json',
        out / 'images' / '.synth0002.nii.gz.ramp-tmp-1-dddd.nii.gz',
    ]
    for path in stale:
        path.write_text('{"id": "half')
    result = invoke(['split', out, '--fractions', '0.5,0.5,0'], 0)
    assert 'Removed 4 temporary files left by an interrupted run' in result.output
    for path in stale:
        assert str(path.relative_to(out)) in result.output
        assert not path.exists()
