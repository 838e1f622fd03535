"""The deployment gate: requirement syntax, values, confidence bounds, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from torchio_ramp.stress.cli import main
from torchio_ramp.stress.gate import GateError
from torchio_ramp.stress.gate import evaluate
from torchio_ramp.stress.gate import parse_requirement
from torchio_ramp.stress.gate import parse_requirements
from torchio_ramp.stress.protocol import Setting
from torchio_ramp.stress.runner import write_summary
from torchio_ramp.stress.store import ResultsWriter
from torchio_ramp.stress.store import load_results
from torchio_ramp.stress.store import make_header

SETTINGS = (
    Setting.clean(),
    Setting('blur', 0.1),
    Setting('blur', 0.2),
    Setting('stripe', 0.1),
    Setting('stripe', 0.2),
)
CLASSES = {1: 'liver', 2: 'kidney'}
SUBJECTS = [f's{i}' for i in range(6)]
# Dice (subject, setting, class): liver degrades slowly, kidney fast; the
# subjects differ by a small offset so the bootstrap interval has a width.
LIVER = np.array([0.95, 0.90, 0.85, 0.80, 0.70])
KIDNEY = np.array([0.85, 0.80, 0.70, 0.60, 0.40])
OFFSETS = np.array([-0.05, -0.03, -0.01, 0.01, 0.03, 0.05])
DICE = np.stack([LIVER, KIDNEY], axis=-1)[None] + OFFSETS[:, None, None]


def write_results(folder: Path, dice: np.ndarray, subjects=SUBJECTS, expected=None):
    """A results folder (CSV, header, summary) holding exactly ``dice``."""
    expected = subjects if expected is None else expected
    header = make_header(
        model=folder.name,
        dataset='toy',
        synthetic=True,
        arguments={'seed': 0},
        settings=SETTINGS,
        class_names=CLASSES,
        annotated=list(CLASSES),
        subjects=expected,
        shard=None,
        all_subjects=expected,
    )
    with ResultsWriter(folder, header, session={}) as writer:
        for i, subject in enumerate(subjects):
            rows = [
                {
                    'model': folder.name,
                    'dataset': 'toy',
                    'subject_id': subject,
                    'family': setting.family,
                    'level': setting.level,
                    'class_id': label,
                    'class_name': name,
                    'annotated': True,
                    'dice': float(dice[i, j, k]),
                    'gt_voxels': 100,
                    'pred_voxels': 100,
                    'intersection_voxels': round(100 * dice[i, j, k]),
                    'gt_ml': 1.0,
                    'pred_ml': 1.0,
                    'abs_volume_error_ml': 0.0,
                }
                for j, setting in enumerate(SETTINGS)
                for k, (label, name) in enumerate(CLASSES.items())
            ]
            writer.append(subject, rows)
    if len(subjects) == len(expected):
        write_summary(load_results(folder), folder, resamples=200)
    return folder


@pytest.fixture(scope='module')
def good(tmp_path_factory) -> Path:
    return write_results(tmp_path_factory.mktemp('gate') / 'good', DICE)


def gate(*arguments, code: int):
    result = CliRunner().invoke(main, ['gate', *map(str, arguments)])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


@pytest.mark.parametrize(
    ('text', 'scope', 'name', 'level', 'metric', 'op', 'threshold'),
    [
        ('worst_case>=0.5', 'model', None, None, 'worst_case', '>=', 0.5),
        (' gap <= 0.10 ', 'model', None, None, 'gap', '<=', 0.1),
        ('family:blur>0.7', 'family', 'blur', None, 'corrupted', '>', 0.7),
        ('family:stripe@0.2 >= 0.6', 'setting', 'stripe', 0.2, 'corrupted', '>=', 0.6),
        ('level:0.25<0.9', 'level', None, 0.25, 'corrupted', '<', 0.9),
        ('organ:kidney>=0.8', 'organ', 'kidney', None, 'corrupted', '>=', 0.8),
        ('organ:kidney:gap<=0.2', 'organ', 'kidney', None, 'gap', '<=', 0.2),
    ],
)
def test_every_requirement_kind_parses(text, scope, name, level, metric, op, threshold):
    requirement = parse_requirement(text)
    assert (requirement.scope, requirement.name, requirement.level) == (
        scope,
        name,
        level,
    )
    assert (requirement.metric, requirement.op, requirement.threshold) == (
        metric,
        op,
        threshold,
    )


@pytest.mark.parametrize(
    ('text', 'token'),
    [
        ('worstcase>=0.5', "'worstcase'"),
        ('worst_case => 0.5', "'=>'"),
        ('gap == 0.1', "'=='"),
        ('gap <= ten', "'ten'"),
        ('gap <= nan', "'nan'"),
        ('family:blurr>=0.7', "'blurr'"),
        ('family:blur@x>=0.7', "'x'"),
        ('level:-0.1>=0.7', "'-0.1'"),
        ('organ:kidney:mean>=0.8', "'mean'"),
        ('organ::corrupted>=0.8', 'organ name is empty'),
        ('model:clean>=0.5', "'model:clean'"),
        ('clean 0.5', 'is not of the form'),
    ],
)
def test_bad_syntax_names_the_bad_token(text, token):
    with pytest.raises(GateError, match='requirement') as info:
        parse_requirement(text)
    assert token in str(info.value)


def test_values_are_the_report_definitions(good):
    results = load_results(good)
    texts = [
        'clean >= 0',
        'corrupted >= 0',
        'gap >= 0',
        'worst_case >= 0',
        'family:blur >= 0',
        'family:stripe@0.2 >= 0',
        'level:0.1 >= 0',
        'organ:kidney >= 0',
        'organ:liver:worst_case >= 0',
    ]
    verdict = evaluate(results, parse_requirements(texts), resamples=200)
    values = [entry['value'] for entry in verdict['requirements']]
    subject = DICE.mean(axis=2)  # (S, T): mean of the two classes
    expected = [
        subject[:, 0].mean(),
        subject[:, 1:].mean(),
        subject[:, 0].mean() - subject[:, 1:].mean(),
        subject[:, 1:].min(axis=1).mean(),
        subject[:, 1:3].mean(),
        subject[:, 4].mean(),
        subject[:, [1, 3]].mean(),
        DICE[:, 1:, 1].mean(),
        DICE[:, 1:, 0].min(axis=1).mean(),
    ]
    np.testing.assert_allclose(values, expected, atol=1e-12)
    assert verdict['passed']
    for entry in verdict['requirements']:
        assert entry['low'] <= entry['value'] <= entry['high']
        assert entry['checked'] == entry['value']


def test_confidence_checks_the_bound_not_the_point(good):
    results = load_results(good)
    corrupted = DICE.mean(axis=2)[:, 1:].mean()  # 0.71875
    lower = parse_requirements([f'corrupted >= {corrupted - 0.005}'])
    upper = parse_requirements([f'corrupted <= {corrupted + 0.005}'])
    assert evaluate(results, lower, resamples=500)['passed']
    assert evaluate(results, upper, resamples=500)['passed']
    strict = evaluate(results, lower, confidence=0.95, resamples=500)
    entry = strict['requirements'][0]
    assert not strict['passed']
    assert entry['checked'] == entry['low'] < corrupted - 0.005
    assert not evaluate(results, upper, confidence=0.95, resamples=500)['passed']
    # A wider interval at a higher level; 50% is narrower than 95%.
    widths = {}
    for level in (0.5, 0.95, 0.99):
        entry = evaluate(results, lower, confidence=level, resamples=500)
        widths[level] = (
            entry['requirements'][0]['high'] - entry['requirements'][0]['low']
        )
    assert widths[0.5] < widths[0.95] <= widths[0.99]


def test_unknown_family_level_or_organ_in_the_results(good):
    results = load_results(good)
    for text, needle in (
        ('family:ghosting >= 0.5', "family 'ghosting' is not in the results"),
        ('family:blur@0.25 >= 0.5', 'setting blur@0.25 is not in the results'),
        ('level:0.3 >= 0.5', 'level 0.3 is not in the results'),
        ('organ:heart >= 0.5', "organ 'heart' is not annotated"),
    ):
        with pytest.raises(GateError, match=needle):
            evaluate(results, parse_requirements([text]))


def test_cli_exit_codes_and_the_verdict_in_summary(good, tmp_path):
    output = gate(good, '--require', 'worst_case>=0.5', '--require', 'gap<=0.2',
                  '--require', 'organ:kidney:corrupted>=0.55', code=0)  # fmt: skip
    assert 'Gate: PASS' in output and 'PASS' in output
    summary = json.loads((good / 'summary.json').read_text())
    assert summary['gate']['passed'] is True
    assert [e['requirement'] for e in summary['gate']['requirements']] == [
        'worst_case>=0.5',
        'gap<=0.2',
        'organ:kidney:corrupted>=0.55',
    ]
    assert 'robustness' in summary  # the rest of the summary is kept
    output = gate(good, '--require', 'worst_case>=0.5', '--require',
                  'family:stripe>=0.7', code=1)  # fmt: skip
    assert 'FAIL' in output and 'Gate: FAIL (good)' in output
    assert json.loads((good / 'summary.json').read_text())['gate']['passed'] is False
    # With --confidence the point estimate 0.719 no longer clears 0.714.
    gate(good, '--require', 'corrupted>=0.714', code=0)
    gate(good, '--require', 'corrupted>=0.714', '--confidence', 0.95, code=1)
    # Bad input: exit 2 with the reason.
    assert "'blurr'" in gate(good, '--require', 'family:blurr>=0.7', code=2)
    assert 'no requirement' in gate(good, code=2)
    assert 'confidence' in gate(
        good, '--require', 'gap<=1', '--confidence', 1.5, code=2
    )
    assert 'not found' in gate(tmp_path / 'absent', '--require', 'gap<=1', code=2)


def test_a_failure_in_any_model_fails_the_gate(good, tmp_path):
    weak = write_results(tmp_path / 'weak', DICE - 0.3)
    output = gate(good, weak, '--require', 'worst_case>=0.5', '--no-write', code=1)
    assert 'Gate: FAIL (weak)' in output
    assert 'gate' not in json.loads((weak / 'summary.json').read_text())


def test_incomplete_results_are_refused(tmp_path):
    partial = write_results(tmp_path / 'partial', DICE, subjects=SUBJECTS[:3],
                            expected=SUBJECTS)  # fmt: skip
    assert 'incomplete (3 of 6 subjects)' in gate(
        partial, '--require', 'gap<=1', code=2
    )


def test_toml_config(good, tmp_path):
    config = tmp_path / 'gate.toml'
    config.write_text(
        '[gate]\nconfidence = 0.95\nresamples = 300\n'
        'require = ["worst_case >= 0.5", "family:blur >= 0.7"]\n'
    )
    output = gate(good, '--config', config, code=0)
    assert 'checked (95% bound)' in output
    summary = json.loads((good / 'summary.json').read_text())
    assert summary['gate']['confidence'] == 0.95 and summary['gate']['resamples'] == 300
    # --require adds to the file's requirements; --confidence overrides it.
    gate(good, '--config', config, '--require', 'corrupted>=0.714', code=1)
    gate(good, '--config', config, '--require', 'corrupted>=0.714', '--confidence',
         0.01, code=0)  # fmt: skip
    for text, needle in (
        ('require = ["gap <= 0.1"]\nlevel = 3\n', "unknown key 'level'"),
        ('require = "gap <= 0.1"\nconfidence = 2\n', 'confidence must be in (0, 1)'),
        ('require = [1]\n', 'require must be a list of strings'),
        ('require = ["gap <= 0.1"\n', 'not valid TOML'),
        ('require = ["gap <== 0.1"]\n', "'<=='"),
    ):
        config.write_text(text)
        assert needle in gate(good, '--config', config, code=2), text
    assert 'not found' in gate(good, '--config', tmp_path / 'none.toml', code=2)
