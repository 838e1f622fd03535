"""The ``ramp-prep`` command line: help, exit codes and error messages."""

from __future__ import annotations

import errno
import json

import pytest
from click.testing import CliRunner

from ramp_prep import images
from ramp_prep.cli import main
from ramp_prep.errors import describe_os_error
from torchio_ramp.datasets import load_split

from .prep_fixtures import make_totalseg
from .prep_fixtures import mask_path
from .prep_fixtures import truncate_gzip


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_main_help_lists_commands_head_layout_and_split_rule():
    result = run('--help')
    assert result.exit_code == 0
    text = result.output
    for phrase in (
        'totalseg',
        'abdomenct1k',
        'synth',
        'split',
        '1 liver, 2 spleen, 3 kidney, 4 heart, 5 colon',
        'labels/<id>.nii.gz',
        'splits.json',
        'default_rng(seed)',
        '1228 -> 859/184/185',
    ):
        assert phrase in text, phrase
    assert run('--version').output.startswith('ramp-prep, version ')
    # Each command once, in the order of the work (click's own list only)
    commands = text.split('Commands:', 1)[1].splitlines()
    listed = [line.split()[0] for line in commands if line.startswith('  ')]
    assert listed == ['totalseg', 'abdomenct1k', 'synth', 'split', 'nnunet-splits']
    assert text.count('Commands:') == 1


@pytest.mark.parametrize(
    ('command', 'phrases'),
    [
        (
            'totalseg',
            [
                'kidney_left | kidney_right',
                'kidney > spleen > colon > heart > liver',
                'v1',
                '--format [ramp|nnunet]',
                '--dataset-id',
                '--seed',
                '--fractions',
                '--subjects',
                '--release-split',
                '--workers',
                '--link',
                '--resample-masks',
                '--overwrite',
                '--keep-going',
            ],
        ),
        (
            'abdomenct1k',
            [
                '2 kidney -> 3, 3 spleen -> 2',
                '4 pancreas -> 0',
                'NOT ANNOTATED',
                'AbdomenCT-1K-ImagePart*/ + Mask/',
                'non-orthonormal',
                '--fractions',
            ],
        ),
        ('synth', ['--layout [totalseg|abdomenct1k]', '--subjects', 'SYNTHETIC']),
        ('split', ['--seed', '--fractions', '--cohort [source|prepared]', 'imagesTs']),
    ],
)
def test_subcommand_help_is_complete(command, phrases):
    result = run(command, '--help')
    assert result.exit_code == 0
    flat = ' '.join(result.output.split())
    for phrase in phrases:
        assert phrase in flat, phrase


def test_synth_convert_split_roundtrip(tmp_path):
    src, out = tmp_path / 'src', tmp_path / 'out'
    result = run(
        'synth', src, '--layout', 'totalseg', '--subjects', 3, '--shape', '24,24,24'
    )
    assert result.exit_code == 0, result.output
    assert 'Wrote 3 SYNTHETIC phantom subjects' in result.output
    assert (src / 'SYNTHETIC.txt').exists()
    result = run('totalseg', src, out, '--no-progress')
    assert result.exit_code == 0, result.output
    assert f'Prepared SYNTHETIC 3 of 3 cohort subjects in {out}' in result.output
    assert 'train 2, val 0, test 1' in result.output
    assert len(load_split(out, 'train')) == 2
    with pytest.raises(ValueError, match=r"Split 'val' of .*out is empty"):
        load_split(out, 'val')
    result = run('split', out, '--seed', 1, '--fractions', '0.34,0.33,0.33')
    assert result.exit_code == 0, result.output
    splits = json.loads((out / 'splits.json').read_text())
    assert splits['seed'] == 1 and len(splits['train']) == 1
    assert 'train 1, val 0, test 2 (cohort 3)' in result.output


def test_failed_subject_sets_exit_code_unless_keep_going(tmp_path):
    src = tmp_path / 'src'
    make_totalseg(src, n=2)
    liver = mask_path(src, 'synth0002', 'liver')
    truncate_gzip(liver)
    result = run('totalseg', src, tmp_path / 'out', '--no-progress')
    assert result.exit_code == 1
    assert f'FAILED synth0002: {liver}: truncated gzip file' in result.output
    assert '1 subject(s) failed' in result.output
    assert (tmp_path / 'out' / 'labels' / 'synth0001.nii.gz').exists()
    result = run('totalseg', src, tmp_path / 'out', '--no-progress', '--keep-going')
    assert result.exit_code == 0
    assert (
        '1 converted' not in result.output
        and '1 already done, 1 failed' in result.output
    )


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        (
            ('totalseg', '{tmp}/missing', '{tmp}/out'),
            "Directory '{tmp}/missing' does not exist",
        ),
        (
            ('totalseg', '{tmp}/src', '{tmp}/out', '--fractions', '0.5,0.6,0'),
            'must sum to 1',
        ),
        (
            ('totalseg', '{tmp}/src', '{tmp}/out', '--format', 'nnunet'),
            'needs --dataset-id',
        ),
        (
            ('totalseg', '{tmp}/src', '{tmp}/file/out'),
            'OUT {tmp}/file/out cannot be created',
        ),
        (
            ('totalseg', '{tmp}/src', '{tmp}/file'),
            'OUT {tmp}/file exists and is not a folder',
        ),
        (('abdomenct1k', '{tmp}/src', '{tmp}/out'), 'is not an AbdomenCT-1K folder'),
        (
            ('synth', '{tmp}/other', '--layout', 'totalseg'),
            'is not empty and has no SYNTHETIC.txt',
        ),
        (
            ('synth', '{tmp}/src', '--layout', 'totalseg'),
            'holds earlier synthetic data; delete it first',
        ),
        (('synth', '{tmp}/x', '--layout', 'kits'), "'kits' is not one of"),
        (('split', '{tmp}/src'), 'is not a dataset prepared by ramp-prep'),
        (
            ('totalseg', '{tmp}/src', '{tmp}/out', '--subjects', '@{tmp}/nofile'),
            'nofile',
        ),
        (
            ('totalseg', '{tmp}/src', '{tmp}/out', '--workers', '0'),
            '0 is not in the range x>=1',
        ),
    ],
)
def test_errors_name_the_path_or_argument(tmp_path, args, message):
    src = tmp_path / 'src'
    make_totalseg(src, n=1)
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'notes.txt').write_text('other data')
    (tmp_path / 'file').write_text('a file, not a folder')
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code != 0
    flat = ' '.join(result.output.split())
    assert message.format(tmp=tmp_path) in flat, flat


def test_out_not_writable(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip('root can write anywhere')
    src = tmp_path / 'src'
    make_totalseg(src, n=1)
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    result = run('totalseg', src, locked / 'out')
    assert result.exit_code == 1
    assert f'OUT {locked / "out"} cannot be created' in result.output


def test_disk_full_stops_the_run_naming_the_file(tmp_path, monkeypatch):
    src = tmp_path / 'src'
    make_totalseg(src, n=2)
    original = images._stream

    def full_disk(path, sink=None):
        if sink is not None:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return original(path, sink)

    monkeypatch.setattr(images, '_stream', full_disk)
    out = tmp_path / 'out'
    result = run('totalseg', src, out, '--no-progress')
    assert result.exit_code == 1
    target = out / 'images' / 'synth0001.nii.gz'
    assert f'Error: Disk full while writing {target}' in result.output
    assert not [p for p in out.rglob('*') if '.ramp-tmp-' in p.name]
    assert not (out / 'labels' / 'synth0001.nii.gz').exists()


def test_out_not_writable_is_reported_before_any_work(tmp_path, monkeypatch):
    # Root ignores permission bits, so the denial is simulated at the probe write.
    from ramp_prep import convert

    src = tmp_path / 'src'
    make_totalseg(src, n=1)

    def denied(path, text):
        raise describe_os_error(
            PermissionError(errno.EACCES, 'Permission denied'), path, 'writing'
        )

    monkeypatch.setattr(convert.imio, 'write_text', denied)
    out = tmp_path / 'out'
    result = run('totalseg', src, out, '--no-progress')
    assert result.exit_code == 1
    assert f'Error: OUT {out} is not writable: Permission denied while writing' in (
        result.output
    )
    assert not (out / 'images').exists()
