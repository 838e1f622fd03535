"""The file-safety module shared by ramp-prep, ramp-stress and training."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ramp_prep.errors import PrepError
from ramp_prep.images import atomic_output
from ramp_prep.images import write_text
from torchio_ramp import files as files_module
from torchio_ramp.files import TMP_MARKER
from torchio_ramp.files import FileLock
from torchio_ramp.files import LockHeld
from torchio_ramp.files import append_synced
from torchio_ramp.files import atomic_path
from torchio_ramp.files import file_sha256
from torchio_ramp.files import remove_stale_temporaries
from torchio_ramp.files import write_atomic
from torchio_ramp.files import write_json
from torchio_ramp.stress import store
from torchio_ramp.training import RunFolder


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'summary.json'
    path.write_text('old')
    with pytest.raises(RuntimeError, match='boom'), atomic_path(path) as tmp:
        tmp.write_text('half of the new')
        raise RuntimeError('boom')
    assert path.read_text() == 'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['summary.json']


def test_atomic_write_replaces_with_usual_permissions(tmp_path):
    path = tmp_path / 'deep' / 'folder' / 'results.csv'
    write_atomic(path, 'a,b\r\n1,2\n')
    assert path.read_bytes() == b'a,b\r\n1,2\n'  # newlines as given
    write_atomic(path, b'\x00\x01')
    assert path.read_bytes() == b'\x00\x01'
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ['results.csv']


def test_write_json_writes_strict_json(tmp_path):
    path = tmp_path / 'a.json'
    write_json(path, {'gap': float('nan'), 'worst': float('-inf'), 1: (0.5, 2)})
    text = path.read_text()
    assert 'NaN' not in text and 'Infinity' not in text
    assert json.loads(text) == {'gap': None, 'worst': None, '1': [0.5, 2]}
    assert text.endswith('}\n')


def test_sha256_of_a_file_larger_than_one_block(tmp_path):
    data = os.urandom((1 << 20) + 12345)
    path = tmp_path / 'model.pt'
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_append_synced_appends_whole_text(tmp_path):
    path = tmp_path / 'metrics.csv'
    append_synced(path, 'epoch\r\n')
    append_synced(path, '1\r\n')
    assert path.read_bytes() == b'epoch\r\n1\r\n'


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    stale = tmp_path / f'.s1.nii.gz{TMP_MARKER}123-abcd.nii.gz'
    stale.write_bytes(b'partial')
    (tmp_path / 's1.nii.gz').write_bytes(b'kept')
    (tmp_path / '.hidden').write_bytes(b'kept')
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.hidden', 's1.nii.gz']


LOCKER = """
import importlib.util, sys
# load the module file alone: the package's import of torch is not needed here
spec = importlib.util.spec_from_file_location('files', sys.argv[2])
files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files)
try:
    files.FileLock(sys.argv[1]).acquire()
except files.LockHeld as error:
    print('held:', error)
    sys.exit(3)
print('acquired')
"""


def test_lock_refuses_a_second_process_until_released(tmp_path):
    path = tmp_path / 'lock'
    module = Path(files_module.__file__)
    command = [sys.executable, '-c', LOCKER, str(path), str(module)]
    with FileLock(path) as lock:
        assert lock.held
        refused = subprocess.run(command, capture_output=True, text=True)
        assert refused.returncode == 3, refused.stderr
        assert f'{path} is locked by another process' in refused.stdout
        with pytest.raises(LockHeld):
            FileLock(path).acquire()
    assert not lock.held
    allowed = subprocess.run(command, capture_output=True, text=True)
    assert allowed.returncode == 0 and 'acquired' in allowed.stdout


def test_prep_atomic_output_names_the_file_on_os_errors(tmp_path):
    destination = tmp_path / 'missing-folder' / 'splits.json'
    with pytest.raises(PrepError, match=r'missing-folder/splits\.json'):
        write_text(destination, '{}')
    destination = tmp_path / 'report.txt'
    destination.write_text('old')
    with pytest.raises(KeyError), atomic_output(destination) as tmp:
        tmp.write_text('new')
        raise KeyError('interrupted')
    assert destination.read_text() == 'old'
    assert [p.name for p in tmp_path.iterdir()] == ['report.txt']


def test_the_tools_share_one_implementation():
    import ramp_prep.images
    import ramp_prep.outputs
    from torchio_ramp import files

    assert store.write_atomic is files.write_atomic
    assert store.write_json is files.write_json
    assert store.file_sha256 is files.file_sha256
    assert ramp_prep.images.sha256_file is files.file_sha256
    assert ramp_prep.images.temp_path is files.temp_path
    assert ramp_prep.outputs.FileLock is files.FileLock


def test_run_folder_checkpoints_are_atomic(tmp_path):
    run = RunFolder(tmp_path / 'run')
    run.path.mkdir()
    run.save_last({'epoch': 1, 'weights': torch.ones(3)})
    before = run.file(RunFolder.LAST).read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('cannot save')

    with pytest.raises(RuntimeError, match='cannot save'):
        run.save_last({'epoch': 2, 'bad': Unpicklable()})
    assert run.file(RunFolder.LAST).read_bytes() == before
    assert run.load_last()['epoch'] == 1
    assert sorted(p.name for p in run.path.iterdir()) == [RunFolder.LAST]
