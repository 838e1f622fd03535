"""Runs on prepared phantom datasets: store, resume, shards, merge, CLI, report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ramp_prep.cli import main as prep_main
from torchio_ramp.stress.cli import main
from torchio_ramp.stress.protocol import StressProtocol
from torchio_ramp.stress.results import summarize
from torchio_ramp.stress.runner import run_stress_test
from torchio_ramp.stress.store import COLUMNS
from torchio_ramp.stress.store import ResultsError
from torchio_ramp.stress.store import load_results
from torchio_ramp.stress.store import merge_shards

pytestmark = pytest.mark.filterwarnings('ignore:`torch.jit:DeprecationWarning')

PROTOCOL = StressProtocol(families=['gaussian_noise', 'stripe'], levels=[0.05, 0.25])
GRID = ['--families', 'gaussian_noise,stripe', '--levels', '0.05,0.25']
CENTRES = torch.tensor([0.2, 0.52, 0.5, 0.7, 0.48, 0.46]) + 0.0007
"""Normalised intensity of background (fat), liver, spleen, kidney, heart, colon.

Shifted off the 1/500 grid of integer HU in the (-200, 300) window, so that no
clean voxel lies exactly half-way between two centres (a tie)."""
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def nearest_intensity(image: torch.Tensor) -> torch.Tensor:
    """A 'model' that labels each voxel with the class of the nearest intensity."""
    return (image[0, ..., None] - CENTRES).abs().argmin(-1)


class CrashOnCall:
    """Predictor that raises on its ``n``-th call (a killed run)."""

    def __init__(self, n: int):
        self.n = n
        self.calls = 0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.n:
            raise RuntimeError('simulated crash')
        return nearest_intensity(image)


def invoke(command, arguments: list[str], code: int = 0):
    result = CliRunner().invoke(command, [str(a) for a in arguments])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result


@pytest.fixture(scope='session')
def prepared(tmp_path_factory) -> Path:
    """5 phantoms (24^3) prepared by ramp-prep: 3 in the test split."""
    root = tmp_path_factory.mktemp('stress-data')
    source, out = root / 'source', root / 'prepared'
    invoke(prep_main, ['synth', source, '--layout', 'totalseg', '--subjects', 5,
                       '--shape', '24,24,24'])  # fmt: skip
    invoke(prep_main, ['totalseg', source, out, '--fractions', '0.2,0.2,0.6',
                       '--no-progress'])  # fmt: skip
    splits = json.loads((out / 'splits.json').read_text())
    assert len(splits['test']) == 3
    return out


@pytest.fixture(scope='session')
def abdomen(tmp_path_factory) -> Path:
    """3 AbdomenCT-1K-layout phantoms, all in test (heart, colon not annotated)."""
    root = tmp_path_factory.mktemp('stress-abdomen')
    source, out = root / 'source', root / 'prepared'
    invoke(prep_main, ['synth', source, '--layout', 'abdomenct1k', '--subjects', 3,
                       '--shape', '24,24,24'])  # fmt: skip
    invoke(prep_main, ['abdomenct1k', source, out, '--fractions', '0,0,1',
                       '--no-progress'])  # fmt: skip
    return out


@pytest.fixture(scope='session')
def models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny TorchScript models with sidecars: pointwise and smoothed."""
    folder = tmp_path_factory.mktemp('stress-models')
    paths = {}
    for name, smooth in (('pointwise', False), ('smoothed', True)):
        # logit_k = 50 (2 c_k x - c_k^2): arg-max = nearest centre c_k
        conv = torch.nn.Conv3d(1, 6, 1)
        with torch.no_grad():
            conv.weight.copy_(100 * CENTRES.reshape(6, 1, 1, 1, 1))
            conv.bias.copy_(-50 * CENTRES**2)
        layers = [torch.nn.AvgPool3d(3, 1, 1, count_include_pad=False)] * smooth
        network = torch.nn.Sequential(*layers, conv)
        path = folder / f'{name}.pt'
        torch.jit.save(torch.jit.script(network), path)
        sidecar = {'hu_range': [-200, 300], 'patch_size': 16, 'num_classes': 6}
        path.with_suffix('.json').write_text(json.dumps(sidecar))
        paths[name] = path
    return paths


@pytest.fixture(scope='module')
def reference(prepared, tmp_path_factory) -> Path:
    """An uninterrupted single-process run."""
    out = tmp_path_factory.mktemp('reference')
    run_stress_test(nearest_intensity, prepared, out, protocol=PROTOCOL, name='m')
    return out


def test_results_are_long_format_with_header_and_summary(reference):
    lines = (reference / 'results.csv').read_text().splitlines()
    assert lines[0] == ','.join(COLUMNS)
    assert len(lines) == 1 + 3 * 5 * 5  # subjects x (clean + 4) x classes
    for name in ('results.csv', 'results.json', 'summary.json'):
        mode = (reference / name).stat().st_mode & 0o777
        umask = os.umask(0o022)
        os.umask(umask)
        assert mode == 0o666 & ~umask, (name, oct(mode))  # not mkstemp's 0600
    header = json.loads((reference / 'results.json').read_text())
    assert header['synthetic'] is True
    assert header['dataset'] == 'synthetic-totalseg'
    assert header['arguments']['levels'] == [0.05, 0.25]
    assert header['subjects'] == sorted(header['subjects'])
    results = load_results(reference)
    assert results.complete and results.model == 'm'
    assert results.dice.shape == (3, 5, 5)
    # Every row's volume error is the difference of its volumes
    np.testing.assert_allclose(
        results.volume_error(), np.abs(results.predicted_ml - results.target_ml)
    )
    summary = json.loads((reference / 'summary.json').read_text())
    expected = json.loads(json.dumps(summarize(results)))
    assert summary == expected
    clean = summary['robustness']['clean']['value']
    assert clean == pytest.approx(np.nanmean(results.subject_dice()[:, 0]))


def test_resume_after_a_crash_gives_identical_results(prepared, reference, tmp_path):
    # Killed during the 2nd subject (5 predictions per subject)
    with pytest.raises(RuntimeError, match='simulated crash'):
        run_stress_test(CrashOnCall(7), prepared, tmp_path, protocol=PROTOCOL, name='m')
    csv_path = tmp_path / 'results.csv'
    assert len(csv_path.read_text().splitlines()) == 1 + 25  # only subject 1
    assert not (tmp_path / 'summary.json').exists()
    # ...and a write of the 3rd subject cut short by the kill
    first_rows = (reference / 'results.csv').read_text().splitlines()[26:29]
    with csv_path.open('a') as f:
        f.write('\n'.join(first_rows)[:-7])
    outcome = run_stress_test(
        nearest_intensity, prepared, tmp_path, protocol=PROTOCOL, name='m'
    )
    assert len(outcome.skipped) == 1 and len(outcome.evaluated) == 2
    assert outcome.truncated_bytes > 0
    assert csv_path.read_bytes() == (reference / 'results.csv').read_bytes()
    assert json.loads((tmp_path / 'summary.json').read_text()) == json.loads(
        (reference / 'summary.json').read_text()
    )
    header = json.loads((tmp_path / 'results.json').read_text())
    assert len(header['sessions']) == 2


def test_a_finished_run_is_not_repeated(prepared, reference):
    outcome = run_stress_test(
        CrashOnCall(1), prepared, reference, protocol=PROTOCOL, name='m'
    )
    assert outcome.evaluated == [] and len(outcome.skipped) == 3


def test_other_arguments_are_refused(prepared, reference):
    other = StressProtocol(families=['gaussian_noise', 'stripe'], levels=[0.05])
    with pytest.raises(ResultsError, match=r'arguments\.levels'):
        run_stress_test(
            nearest_intensity, prepared, reference, protocol=other, name='m'
        )
    with pytest.raises(ResultsError, match=r'arguments\.name'):
        run_stress_test(
            nearest_intensity, prepared, reference, protocol=PROTOCOL, name='x'
        )


def test_a_second_process_on_the_same_results_is_refused(prepared, tmp_path):
    def nested(image):
        # While the first run holds the results, start the same run again
        with pytest.raises(ResultsError, match='another process is writing'):
            run_stress_test(
                nearest_intensity, prepared, tmp_path, protocol=PROTOCOL, name='m'
            )
        raise RuntimeError('stop')

    with pytest.raises(RuntimeError, match='stop'):
        run_stress_test(nested, prepared, tmp_path, protocol=PROTOCOL, name='m')
    # The lock is released with the run: it resumes normally
    outcome = run_stress_test(
        nearest_intensity, prepared, tmp_path, protocol=PROTOCOL, name='m'
    )
    assert len(outcome.evaluated) == 3


def test_damage_inside_the_file_is_an_error(prepared, reference, tmp_path):
    damaged = tmp_path / 'damaged'
    damaged.mkdir()
    lines = (reference / 'results.csv').read_text().splitlines(keepends=True)
    del lines[10]  # a row missing in the middle: not a crash at the end
    (damaged / 'results.csv').write_text(''.join(lines))
    (damaged / 'results.json').write_text((reference / 'results.json').read_text())
    with pytest.raises(ResultsError, match=r'damaged|does not match'):
        load_results(damaged)
    with pytest.raises(ResultsError):
        run_stress_test(
            nearest_intensity, prepared, damaged, protocol=PROTOCOL, name='m'
        )


def test_shards_in_one_folder_merge_into_the_single_run(prepared, reference, tmp_path):
    first = run_stress_test(
        nearest_intensity, prepared, tmp_path, protocol=PROTOCOL, name='m', shard=(0, 2)
    )
    assert len(first.subjects) == 2 and first.merged is None
    assert not (tmp_path / 'results.csv').exists()
    second = run_stress_test(
        nearest_intensity, prepared, tmp_path, protocol=PROTOCOL, name='m', shard=(1, 2)
    )
    assert len(second.subjects) == 1
    assert set(first.subjects).isdisjoint(second.subjects)
    assert second.merged == tmp_path / 'results.csv'
    merged = (tmp_path / 'results.csv').read_bytes()
    assert merged == (reference / 'results.csv').read_bytes()
    assert json.loads((tmp_path / 'summary.json').read_text()) == json.loads(
        (reference / 'summary.json').read_text()
    )


def test_merge_command_and_its_checks(prepared, reference, tmp_path):
    shards = []
    for index in range(3):
        folder = tmp_path / f'machine{index}'
        run_stress_test(
            nearest_intensity,
            prepared,
            folder,
            protocol=PROTOCOL,
            name='m',
            shard=(index, 3),
        )
        shards.append(folder)
    merged = tmp_path / 'merged'
    result = invoke(main, ['merge', *shards, '--out', merged])
    assert 'clean Dice' in result.output
    assert (merged / 'results.csv').read_bytes() == (
        reference / 'results.csv'
    ).read_bytes()
    # A missing shard, a shard given twice, a non-shard and another run
    with pytest.raises(ResultsError, match=r'shards \[2\] of 3 are missing'):
        merge_shards(shards[:2], tmp_path / 'x')
    result = invoke(main, ['merge', shards[0], shards[1], '--out', tmp_path / 'x'], 1)
    assert 'missing' in result.output
    with pytest.raises(ResultsError, match='not a shard'):
        merge_shards([reference / 'results.csv'], tmp_path / 'x')
    other = tmp_path / 'other'
    run_stress_test(
        nearest_intensity, prepared, other, protocol=PROTOCOL, name='n', shard=(2, 3)
    )
    with pytest.raises(ResultsError, match='different runs'):
        merge_shards([*shards[:2], other], tmp_path / 'x')


def test_incomplete_shard_is_not_merged(prepared, tmp_path):
    with pytest.raises(RuntimeError):
        run_stress_test(
            CrashOnCall(3),
            prepared,
            tmp_path,
            protocol=PROTOCOL,
            name='m',
            shard=(0, 2),
        )
    run_stress_test(
        nearest_intensity, prepared, tmp_path, protocol=PROTOCOL, name='m', shard=(1, 2)
    )
    assert not (tmp_path / 'results.csv').exists()
    with pytest.raises(ResultsError, match=r'shard 0 of 2\) is incomplete'):
        merge_shards([tmp_path], tmp_path)


def test_cli_end_to_end_run_and_report(prepared, models, tmp_path):
    outputs = {}
    for name, path in models.items():
        out = tmp_path / name
        result = invoke(main, ['run', '--model', path, '--data', prepared, '--split',
                               'test', '--out', out, *GRID, '--batch-size', 8,
                               '--no-progress'])  # fmt: skip
        assert '3 subject(s) evaluated' in result.output
        assert 'SYNTHETIC' in result.output
        outputs[name] = out
    header = json.loads((outputs['pointwise'] / 'results.json').read_text())
    assert header['arguments']['patch_size'] == [16, 16, 16]
    assert header['arguments']['hu_range'] == [-200.0, 300.0]
    assert header['sessions'][0]['sidecar'].endswith('pointwise.json')
    # The pointwise network is the nearest-intensity classifier: the sliding
    # window (sidecar window and patch, stitching) gives the plain function's
    # numbers. Blending equal logits can move them by an ulp, which flips a
    # voxel only at a near-tie; one flipped voxel moves a Dice by < 0.02.
    direct = tmp_path / 'direct'
    run_stress_test(
        nearest_intensity, prepared, direct, protocol=PROTOCOL, name='pointwise'
    )
    through_cli = load_results(outputs['pointwise']).dice
    plain = load_results(direct).dice
    np.testing.assert_allclose(through_cli, plain, atol=0.02)
    assert (through_cli == plain).mean() > 0.95
    report = tmp_path / 'report'
    result = invoke(main, ['report', outputs['pointwise'], outputs['smoothed'],
                           '--out', report, '--baseline', 'pointwise',
                           '--resamples', 200])  # fmt: skip
    text = (report / 'report.md').read_text()
    for needle in ('SYNTHETIC DATA', 'Table 5', 'Tables 7-8', 'Table 9', 'Table 10',
                   'mCE', 'Paired tests', '`smoothed`', 'Stripe artifact'):  # fmt: skip
        assert needle in text, needle
    image = pytest.importorskip('matplotlib.image')
    for kind in ('heatmap', 'severity', 'clean-vs-corrupted', 'organs'):
        png = report / f'{kind}-synthetic-totalseg.png'
        assert f'({png.name})' in text
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        pixels = image.imread(png)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 100
    comparison = json.loads((report / 'comparison.json').read_text())
    assert set(comparison['synthetic-totalseg']['models']) == {'pointwise', 'smoothed'}


def test_torchrun_environment_shards_the_cli(prepared, models, tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '3')
    invoke(main, ['run', '--model', models['pointwise'], '--data', prepared,
                  '--out', tmp_path, '--families', 'blur', '--levels', '0.1',
                  '--no-progress'])  # fmt: skip
    header = json.loads((tmp_path / 'results.shard-1-of-3.json').read_text())
    assert header['shard'] == {'index': 1, 'count': 3}
    assert len(header['subjects']) == 1


def test_cli_errors_name_the_problem(prepared, models, tmp_path):
    run = ['run', '--data', prepared, '--out', tmp_path / 'r', '--no-progress']
    result = invoke(main, [*run, '--model', models['pointwise'], '--split', 'val',
                           '--families', 'blur', '--levels', '0.1'])  # fmt: skip
    assert '1 subject(s) evaluated' in result.output
    no_val = tmp_path / 'no-val'
    shutil.copytree(prepared, no_val)
    invoke(prep_main, ['split', no_val, '--fractions', '0.4,0,0.6'])
    arguments = ['run', '--data', no_val, '--out', tmp_path / 'e', '--split', 'val']
    result = invoke(main, [*arguments, '--model', models['pointwise']], 1)
    assert 'no-val is empty' in result.output  # load_split's message
    result = invoke(main, [*run, '--model', tmp_path / 'absent.pt'], 1)
    assert 'model file not found' in result.output and 'absent.pt' in result.output
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'junk')
    result = invoke(main, [*run, '--model', junk], 1)
    assert 'junk.pt is not a model file' in result.output
    result = invoke(main, ['run', '--model', models['pointwise'], '--data', tmp_path,
                           '--out', tmp_path / 'r'], 1)  # fmt: skip
    assert 'not a dataset prepared by ramp-prep' in result.output
    result = invoke(
        main, [*run, '--model', models['pointwise'], '--families', 'fog'], 2
    )
    assert "unknown corruption family 'fog'" in result.output
    bare = tmp_path / 'bare.pt'
    bare.write_bytes(models['pointwise'].read_bytes())
    result = invoke(main, [*run, '--model', bare], 1)
    assert 'HU window' in result.output and '--hu-range' in result.output
    result = invoke(main, [*run, '--model', bare, '--hu-range', -200, 300], 1)
    assert '--patch-size' in result.output
    result = invoke(main, ['report', tmp_path / 'nothing', '--out', tmp_path], 1)
    assert 'not found' in result.output


def test_report_rejects_unknown_baseline_and_duplicate_names(reference, tmp_path):
    result = invoke(main, ['report', reference, '--out', tmp_path, '--baseline',
                           'nope', '--no-figures'], 1)  # fmt: skip
    assert "--baseline 'nope' is not one of the models ['m']" in result.output
    result = invoke(main, ['report', reference, reference / 'results.csv', '--out',
                           tmp_path, '--no-figures'], 1)  # fmt: skip
    assert "two results files of model 'm'" in result.output


def test_report_without_matplotlib(reference, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__('sys').modules, 'matplotlib.figure', None)
    result = invoke(main, ['report', reference, '--out', tmp_path / 'a'], 1)
    assert 'torchio-ramp[plot]' in result.output and '--no-figures' in result.output
    invoke(main, ['report', reference, '--out', tmp_path / 'b', '--no-figures'])
    text = (tmp_path / 'b' / 'report.md').read_text()
    assert 'Table 5' in text and '.png' not in text
    # A single model: no comparison sections
    assert 'Table 9' not in text and 'mCE' not in text


def test_report_of_an_unfinished_run_says_so(prepared, reference, tmp_path):
    with pytest.raises(RuntimeError):
        run_stress_test(CrashOnCall(8), prepared, tmp_path, protocol=PROTOCOL, name='n')
    invoke(main, ['report', reference, tmp_path, '--out', tmp_path / 'report',
                  '--no-figures', '--resamples', 100])  # fmt: skip
    text = (tmp_path / 'report' / 'report.md').read_text()
    assert 'n: incomplete run, 1 of 3 subjects' in text
    assert 'm: 2 subject(s) and 0 setting(s) not shared' in text
    assert '1 subjects x 4 corrupted settings' in text


def test_not_annotated_classes_are_excluded_end_to_end(abdomen, tmp_path):
    run_stress_test(nearest_intensity, abdomen, tmp_path, protocol=PROTOCOL, name='m')
    results = load_results(tmp_path)
    assert results.dataset == 'synthetic-abdomenct1k'
    assert results.annotated == (1, 2, 3)
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert list(summary['organs']) == ['liver', 'spleen', 'kidney']
    rows = (tmp_path / 'results.csv').read_text().splitlines()[1:]
    heart = [r.split(',') for r in rows if ',heart,' in r]
    assert heart and all(r[COLUMNS.index('annotated')] == '0' for r in heart)
    # The subject Dice is the mean over liver, spleen and kidney only
    dice = results.dice[:, :, :3]
    expected = np.nanmean(np.where(np.isnan(dice), np.nan, dice), axis=2)
    np.testing.assert_allclose(results.subject_dice(), expected)
