"""The deployment gate: pass/fail requirements on stress-test results.

A requirement is one line ``SUBJECT OP THRESHOLD``:

* ``SUBJECT`` is what is measured (a Dice, except ``gap``):

  - ``clean``, ``corrupted``, ``gap`` or ``worst_case``: the headline numbers
    of the model (clean Dice, mean corrupted Dice, robustness gap,
    worst-case Dice);
  - ``family:NAME``: mean Dice over the levels of one corruption family,
    ``family:NAME@LEVEL``: the Dice of one setting (``family:blur@0.25``);
  - ``level:LEVEL``: mean Dice over the families at one level;
  - ``organ:NAME`` or ``organ:NAME:METRIC``: one class's ``clean``,
    ``corrupted`` (the default), ``gap`` or ``worst_case`` Dice.

* ``OP`` is ``>=``, ``>``, ``<=`` or ``<``;
* ``THRESHOLD`` is a number.

Spaces are optional: ``"worst_case>=0.5"``, ``"organ:kidney:corrupted >= 0.8"``.

Without a confidence level a requirement is checked on the point estimate.
With one (e.g. 0.95), a lower limit (``>=``, ``>``) must hold for the lower
bound of the two-sided percentile-bootstrap interval at that level, an upper
limit (``<=``, ``<``) for its upper bound: the requirement passes only if the
data support it at that confidence (0.95 gives the intervals of the report).
A value that cannot be computed (NaN) fails.
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..families import FAMILIES
from .results import StressResults
from .statistics import BOOTSTRAP_RESAMPLES
from .statistics import Estimate
from .statistics import bootstrap_indices
from .statistics import check_confidence
from .statistics import pooled_mean
from .statistics import robustness

HEADLINE = ('clean', 'corrupted', 'gap', 'worst_case')
"""Metrics of the model (and of each organ)."""

OPERATORS = {
    '>=': operator.ge,
    '>': operator.gt,
    '<=': operator.le,
    '<': operator.lt,
}

_LINE = re.compile(
    r'^\s*(?P<subject>[^<>=!\s]+)\s*(?P<op>[<>=!]+)\s*(?P<threshold>[^<>=!\s]+)\s*$'
)

SYNTAX = (
    'METRIC OP NUMBER with METRIC one of clean, corrupted, gap, worst_case,'
    ' family:NAME, family:NAME@LEVEL, level:LEVEL, organ:NAME[:METRIC] and OP'
    ' one of >=, >, <=, <'
)


class GateError(ValueError):
    """A requirement or a gate configuration that cannot be evaluated."""


@dataclass(frozen=True)
class Requirement:
    """One parsed requirement (see the module docstring for the syntax).

    Attributes:
        text: The requirement as written.
        scope: ``'model'``, ``'family'``, ``'setting'``, ``'level'`` or
            ``'organ'``.
        name: Family or organ name (``None`` for ``'model'`` / ``'level'``).
        level: Severity level (``'setting'`` and ``'level'`` scopes).
        metric: ``clean``, ``corrupted``, ``gap`` or ``worst_case``.
        op: ``'>='``, ``'>'``, ``'<='`` or ``'<'``.
        threshold: The limit.

    Example:
        >>> r = parse_requirement('family:blur >= 0.7')
        >>> r.scope, r.name, r.metric, r.op, r.threshold
        ('family', 'blur', 'corrupted', '>=', 0.7)
    """

    text: str
    scope: str
    name: str | None
    level: float | None
    metric: str
    op: str
    threshold: float

    @property
    def lower_limit(self) -> bool:
        """Whether the threshold is a lower limit (``>=`` or ``>``)."""
        return self.op in ('>=', '>')

    def check(self, value: float) -> bool:
        """Whether ``value`` satisfies the requirement (NaN never does).

        Example:
            >>> parse_requirement('gap<=0.1').check(0.05)
            True
        """
        if value is None or math.isnan(value):
            return False
        return bool(OPERATORS[self.op](value, self.threshold))


def _number(token: str, what: str, text: str) -> float:
    try:
        value = float(token)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise GateError(f'requirement {text!r}: {what} {token!r} is not a number')
    return value


def _level(token: str, text: str) -> float:
    level = _number(token, 'level', text)
    if level <= 0:
        raise GateError(f'requirement {text!r}: level {token!r} must be positive')
    return level


def parse_requirement(text: str) -> Requirement:
    """Parse one requirement.

    Raises:
        GateError: Naming the bad token and giving the syntax.

    Example:
        >>> parse_requirement('organ:kidney:worst_case>0.6').metric
        'worst_case'
        >>> parse_requirement('worst_case => 0.5')
        Traceback (most recent call last):
        ...
        torchio_ramp.stress.gate.GateError: requirement 'worst_case => 0.5': unknown comparison '=>'; use >=, >, <= or <
    """  # noqa: E501
    if not isinstance(text, str):
        raise GateError(f'a requirement must be a string, not {text!r}')
    match = _LINE.match(text)
    if match is None:
        raise GateError(f'requirement {text!r} is not of the form {SYNTAX}')
    subject, op, threshold_token = match.group('subject', 'op', 'threshold')
    if op not in OPERATORS:
        message = f'requirement {text!r}: unknown comparison {op!r}; use >=, >, <= or <'
        raise GateError(message)
    threshold = _number(threshold_token, 'threshold', text)
    parts = subject.split(':')
    kind = parts[0]
    name: str | None = None
    level: float | None = None
    metric = 'corrupted'
    if len(parts) == 1:
        if kind not in HEADLINE:
            message = (
                f'requirement {text!r}: unknown metric {kind!r}; expected'
                f' {", ".join(HEADLINE)}, family:NAME, level:LEVEL or'
                ' organ:NAME[:METRIC]'
            )
            raise GateError(message)
        scope, metric = 'model', kind
    elif kind == 'family' and len(parts) == 2:
        name, at, level_token = parts[1].partition('@')
        if name not in FAMILIES:
            message = (
                f'requirement {text!r}: unknown corruption family {name!r}; valid'
                f' names: {", ".join(FAMILIES)}'
            )
            raise GateError(message)
        scope = 'setting' if at else 'family'
        if at:
            level = _level(level_token, text)
    elif kind == 'level' and len(parts) == 2:
        scope, level = 'level', _level(parts[1], text)
    elif kind == 'organ' and len(parts) in (2, 3):
        scope, name = 'organ', parts[1]
        if not name:
            raise GateError(f'requirement {text!r}: the organ name is empty')
        if len(parts) == 3:
            metric = parts[2]
            if metric not in HEADLINE:
                message = (
                    f'requirement {text!r}: unknown organ metric {metric!r};'
                    f' expected {", ".join(HEADLINE)}'
                )
                raise GateError(message)
    else:
        message = f'requirement {text!r}: cannot read {subject!r}; expected {SYNTAX}'
        raise GateError(message)
    return Requirement(text.strip(), scope, name, level, metric, op, threshold)


def parse_requirements(texts: Iterable[str]) -> list[Requirement]:
    """Parse several requirements; at least one is needed.

    Example:
        >>> [r.metric for r in parse_requirements(['gap<=0.1', 'clean>=0.8'])]
        ['gap', 'clean']
    """
    requirements = [parse_requirement(text) for text in texts]
    if not requirements:
        raise GateError('no requirement given: pass --require or --config')
    return requirements


@dataclass(frozen=True)
class GateConfig:
    """Requirements and how to check them, e.g. from a TOML file.

    Attributes:
        requirements: The requirements.
        confidence: Two-sided bootstrap level, or ``None`` for point
            estimates.
        resamples: Bootstrap resamples.
        seed: Seed of the bootstrap.
    """

    requirements: tuple[Requirement, ...]
    confidence: float | None = None
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = 0


CONFIG_KEYS = ('require', 'confidence', 'resamples', 'seed')


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a gate file (TOML): ``require`` (list of strings), and optionally
    ``confidence``, ``resamples`` and ``seed``, at the top level or in a
    ``[gate]`` table.

    Raises:
        GateError: Naming the file and the bad key or value.

    Example:
        >>> read_config('gate.toml')  # doctest: +SKIP
        {'require': ['worst_case >= 0.5'], 'confidence': 0.95}
    """
    path = Path(path)
    try:
        with path.open('rb') as file:
            data = tomllib.load(file)
    except FileNotFoundError as error:
        raise GateError(f'gate file {path} not found') from error
    except tomllib.TOMLDecodeError as error:
        raise GateError(f'gate file {path} is not valid TOML: {error}') from error
    except (OSError, UnicodeDecodeError) as error:
        raise GateError(f'cannot read the gate file {path}: {error}') from error
    if set(data) == {'gate'} and isinstance(data['gate'], dict):
        data = data['gate']
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        message = (
            f'gate file {path}: unknown key {unknown[0]!r}; valid keys:'
            f' {", ".join(CONFIG_KEYS)}'
        )
        raise GateError(message)
    require = data.get('require', [])
    if isinstance(require, str):
        require = [require]
    if not isinstance(require, list) or not all(isinstance(r, str) for r in require):
        raise GateError(f'gate file {path}: require must be a list of strings')
    config: dict[str, Any] = {'require': require}
    if 'confidence' in data:
        try:
            config['confidence'] = check_confidence(data['confidence'])
        except ValueError as error:
            raise GateError(f'gate file {path}: {error}') from error
    for key, minimum in (('resamples', 100), ('seed', 0)):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                message = (
                    f'gate file {path}: {key} must be an integer >= {minimum},'
                    f' not {value!r}'
                )
                raise GateError(message)
            config[key] = value
    return config


def _columns(results: StressResults, requirement: Requirement) -> list[int]:
    settings = results.settings
    if requirement.scope == 'family':
        columns = [
            j
            for j, s in enumerate(settings)
            if not s.is_clean and s.family == requirement.name
        ]
        what = f'family {requirement.name!r}'
    elif requirement.scope == 'setting':
        columns = [
            j
            for j, s in enumerate(settings)
            if s.family == requirement.name
            and math.isclose(s.level, requirement.level, rel_tol=1e-9)
        ]
        what = f'setting {requirement.name}@{requirement.level:g}'
    else:
        columns = [
            j
            for j, s in enumerate(settings)
            if not s.is_clean and math.isclose(s.level, requirement.level, rel_tol=1e-9)
        ]
        what = f'level {requirement.level:g}'
    if not columns:
        families = sorted({s.family for s in settings if not s.is_clean})
        levels = sorted({s.level for s in settings if not s.is_clean})
        message = (
            f'requirement {requirement.text!r}: {what} is not in the results of'
            f' {results.model!r} (families: {", ".join(families)}; levels:'
            f' {", ".join(f"{v:g}" for v in levels)})'
        )
        raise GateError(message)
    return columns


def _organ_index(results: StressResults, requirement: Requirement) -> int:
    names = {
        results.class_names.get(c, str(c)): k
        for k, c in enumerate(results.classes)
        if c in results.annotated
    }
    if requirement.name not in names:
        message = (
            f'requirement {requirement.text!r}: organ {requirement.name!r} is not'
            f' annotated in the results of {results.model!r} (organs:'
            f' {", ".join(names)})'
        )
        raise GateError(message)
    return names[requirement.name]


def estimate(
    results: StressResults,
    requirement: Requirement,
    indices: np.ndarray,
    confidence: float,
) -> Estimate:
    """The estimate (with its bootstrap interval) that a requirement is about.

    Raises:
        GateError: If the family, level or organ is not in the results.
    """
    if requirement.scope == 'model':
        headline = robustness(results.subject_dice(), indices, confidence)
        return getattr(headline, requirement.metric)
    if requirement.scope == 'organ':
        k = _organ_index(results, requirement)
        organ = robustness(results.class_dice()[:, :, k], indices, confidence)
        return getattr(organ, requirement.metric)
    columns = _columns(results, requirement)
    return pooled_mean(results.subject_dice()[:, columns], indices, confidence)


def evaluate(
    results: StressResults,
    requirements: Sequence[Requirement],
    *,
    confidence: float | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Check requirements on one model's results.

    Args:
        results: Complete results of one model.
        requirements: From :func:`parse_requirements`.
        confidence: Two-sided bootstrap level for the bounds, or ``None``
            to check the point estimates.
        resamples: Bootstrap resamples.
        seed: Seed of the bootstrap.

    Returns:
        The verdict, JSON-ready: ``passed``, ``model``, ``confidence``,
        ``resamples``, ``seed`` and ``requirements``, one entry per
        requirement with ``requirement``, ``value``, ``low``, ``high``,
        ``checked`` (the number compared with the threshold) and ``passed``.

    Raises:
        GateError: If the results are incomplete or a requirement names
            something they do not hold.

    Example:
        >>> import numpy as np
        >>> from torchio_ramp.stress.protocol import Setting
        >>> results = StressResults(
        ...     model='m', dataset='d', synthetic=False, subjects=('a', 'b'),
        ...     settings=(Setting.clean(), Setting('blur', 0.1)), classes=(1,),
        ...     class_names={1: 'liver'}, annotated=(1,),
        ...     dice=np.array([[[0.9], [0.7]], [[0.8], [0.6]]]),
        ...     target_ml=np.ones((2, 2, 1)), predicted_ml=np.ones((2, 2, 1)))
        >>> verdict = evaluate(results, parse_requirements(['gap <= 0.25']))
        >>> verdict['passed'], round(verdict['requirements'][0]['value'], 3)
        (True, 0.2)
    """
    if not results.subjects:
        raise GateError(f'the results of {results.model!r} hold no subject')
    if not results.complete:
        message = (
            f'the results of {results.model!r} are incomplete'
            f' ({len(results.subjects)} of {len(results.expected_subjects)}'
            ' subjects): finish (or merge) the run before gating on it'
        )
        raise GateError(message)
    level = check_confidence(0.95 if confidence is None else confidence)
    indices = bootstrap_indices(len(results.subjects), resamples, seed)
    entries = []
    for requirement in requirements:
        value = estimate(results, requirement, indices, level)
        if confidence is None:
            checked = value.value
        else:
            checked = value.low if requirement.lower_limit else value.high
        entries.append(
            {
                'requirement': requirement.text,
                'value': value.value,
                'low': value.low,
                'high': value.high,
                'checked': checked,
                'passed': requirement.check(checked),
            }
        )
    return {
        'passed': all(entry['passed'] for entry in entries),
        'model': results.model,
        'dataset': results.dataset,
        'confidence': confidence,
        'resamples': resamples,
        'seed': seed,
        'requirements': entries,
    }


def _show(value: float | None) -> str:
    if value is None or math.isnan(value):
        return 'n/a'
    return f'{value:.3f}'


def verdict_rows(verdict: Mapping[str, Any]) -> list[list[str]]:
    """Table rows ``requirement, value, interval, checked, result`` of a verdict.

    Example:
        >>> verdict = {'confidence': None, 'requirements': [{'requirement': 'gap<=0.1',
        ...     'value': 0.05, 'low': 0.01, 'high': 0.09, 'checked': 0.05, 'passed': True}]}
        >>> verdict_rows(verdict)
        [['gap<=0.1', '0.050', '[0.010, 0.090]', '0.050', 'PASS']]
    """  # noqa: E501
    return [
        [
            entry['requirement'],
            _show(entry['value']),
            f'[{_show(entry["low"])}, {_show(entry["high"])}]',
            _show(entry['checked']),
            'PASS' if entry['passed'] else 'FAIL',
        ]
        for entry in verdict['requirements']
    ]


def verdict_header(verdict: Mapping[str, Any]) -> list[str]:
    """Column names of :func:`verdict_rows`.

    Example:
        >>> verdict_header({'confidence': 0.9})[3]
        'checked (90% bound)'
    """
    confidence = verdict.get('confidence')
    level = f'{100 * (confidence or 0.95):g}%'
    checked = 'checked (point)' if confidence is None else f'checked ({level} bound)'
    return ['requirement', 'value', f'{level} CI', checked, 'result']
