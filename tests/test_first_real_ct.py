"""examples/first_real_ct.py prepares a handful of real CTs and says what they allow."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ramp_prep.synth import write_synthetic

from .prep_fixtures import TOTALSEG_EXAMPLE
from .prep_fixtures import invoke_cli

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


def load_example():
    spec = importlib.util.spec_from_file_location(
        'first_real_ct', EXAMPLES / 'first_real_ct.py'
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_two_subject_run(output: str, out: Path) -> None:
    """What the script prints and writes for a release split of train 1, test 1."""
    assert '$ ramp-prep totalseg ' in output and ' --release-split' in output
    splits = json.loads((out / 'prepared' / 'splits.json').read_text())
    assert (len(splits['train']), len(splits['val']), len(splits['test'])) == (1, 0, 1)
    assert splits['method'] == 'release'
    assert "WARNING: split 'val' is empty (train 1, val 0, test 1" in output
    assert f'ramp-prep split {out / "prepared"} --fractions 0.5,0.5,0' in output
    assert 'Train: not yet: it needs a train and a val subject' in output
    assert (
        'Stress-test a trained model: ramp-stress run --model MODEL.pt2 --data '
        f'{out / "prepared"}'
    ) in output


@pytest.mark.skipif(
    not (TOTALSEG_EXAMPLE / 'meta.csv').exists(),
    reason=f'{TOTALSEG_EXAMPLE} is absent (it lives in ../shared beside the checkout)',
)
def test_first_real_ct_on_the_two_real_example_ct(tmp_path):
    out = tmp_path / 'first-real-ct'
    result = invoke_cli(load_example().main, [TOTALSEG_EXAMPLE, '--out', out], 0)
    check_two_subject_run(result.output, out)
    lines = result.output.splitlines()
    (s0001,) = [x.strip() for x in lines if x.strip().startswith('s0001 (train)')]
    assert s0001.startswith('s0001 (train): 122x101x30 voxels of 3x3x3 mm, HU ')
    assert 'liver 39350, spleen 9630, kidney 7672' in s0001  # the shipped masks
    assert s0001.endswith('none of: heart')  # outside the field of view
    (s0002,) = [x.strip() for x in lines if x.strip().startswith('s0002 (test)')]
    assert s0002.startswith('s0002 (test): 122x101x112 voxels of 3x3x3 mm')
    again = invoke_cli(load_example().main, [TOTALSEG_EXAMPLE, '--out', out], 0)
    assert 'This run: 0 converted, 2 already done' in again.output


def test_first_real_ct_on_a_synthetic_stand_in(tmp_path):
    source, out = tmp_path / 'source', tmp_path / 'out'
    write_synthetic(source, 'totalseg', 2, shape=(16, 16, 16), seed=0)
    meta = source / 'meta.csv'
    rows = meta.read_text().splitlines()
    meta.write_text('\n'.join([rows[0], rows[1] + 'train', rows[2] + 'test']) + '\n')
    result = invoke_cli(load_example().main, [source, '--out', out], 0)
    check_two_subject_run(result.output, out)
    assert 'synth0001 (train): 16x16x16 voxels of 3x3x3 mm' in result.output
