"""Compare models (augmentation strategies) stress-tested on the same data.

:func:`compare` restricts the models of one dataset to the subjects and
settings they all have, summarises each with the same bootstrap resamples,
and the table functions give the paper's comparisons:

* :func:`summary_table`: Table 5 (clean, mean corrupted, gap, worst-case);
* :func:`improvement_table`: Table 6 (gain and gap reduction of one model
  against the baseline and against the best other model);
* :func:`family_table`: Tables 7-8 (per family, best other model vs this);
* :func:`level_table`: Fig. 5 as a table (Dice per severity level);
* :func:`high_severity_wins`: Table 9 (settings with level >= 0.15 each
  model wins; a tie counts for every tied model);
* :func:`organ_table`: Table 10 plus absolute volume errors;
* :func:`corruption_error_table`: mCE and relative mCE against a baseline;
* :func:`paired_table`: paired sign-flip tests against a baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from .protocol import describe_protocol
from .results import HIGH_SEVERITY
from .results import StressResults
from .results import families_of
from .results import levels_of
from .results import summarize
from .statistics import BOOTSTRAP_RESAMPLES
from .statistics import Estimate
from .statistics import corruption_error
from .statistics import nanmean
from .statistics import nanmin
from .statistics import paired_test


def group_by_dataset(
    results: Sequence[StressResults],
) -> dict[str, list[StressResults]]:
    """Results grouped by dataset, in input order.

    Raises:
        ValueError: If two results of one dataset have the same model name.

    Example:
        >>> group_by_dataset([])
        {}
    """
    groups: dict[str, list[StressResults]] = {}
    for result in results:
        group = groups.setdefault(result.dataset, [])
        if any(other.model == result.model for other in group):
            message = (
                f'two results files of model {result.model!r} on {result.dataset!r};'
                ' give each run its own --name'
            )
            raise ValueError(message)
        group.append(result)
    return groups


@dataclass
class Comparison:
    """Models of one dataset on their common subjects and settings.

    Attributes:
        dataset: Dataset name.
        synthetic: Whether any of the results is on synthetic data.
        models: Restricted results, in input order.
        summaries: :func:`~torchio_ramp.stress.results.summarize` of each
            model (same bootstrap resamples for all).
        notes: What was left out to make the models comparable.
        resamples: Bootstrap resamples.
        seed: Seed of the bootstrap and of the paired tests.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> compare(runs).names  # doctest: +SKIP
        ['base', 'ramp']
    """  # noqa: E501

    dataset: str
    synthetic: bool
    models: list[StressResults]
    summaries: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = 0

    @property
    def names(self) -> list[str]:
        """Model names in input order."""
        return [m.model for m in self.models]

    def model(self, name: str) -> StressResults:
        """The results of model ``name``.

        Raises:
            KeyError: Naming the known models.
        """
        for result in self.models:
            if result.model == name:
                return result
        raise KeyError(f'no model {name!r} on {self.dataset!r}; models: {self.names}')


PROTOCOL_ARGUMENTS = ('seed', 'hu_range')
"""Run arguments that decide the corrupted volumes: models compared on the same
settings must share them, or the paired tests compare different images."""


def _check_same_volumes(results: Sequence[StressResults]) -> None:
    reference = results[0]
    protocols = {r.model: r.protocol for r in results if r.protocol is not None}
    if len(set(protocols.values())) > 1:
        listed = ', '.join(
            f'{model} ({describe_protocol(name)})' for model, name in protocols.items()
        )
        message = (
            f'cannot compare results of different severity protocols: {listed}.'
            ' Their corrupted volumes differ; rerun them with the same'
            ' ramp-stress run --protocol'
        )
        raise ValueError(message)
    expected = reference.header.get('arguments', {})
    for result in results[1:]:
        arguments = result.header.get('arguments', {})
        for key in PROTOCOL_ARGUMENTS:
            if key in expected and key in arguments and expected[key] != arguments[key]:
                message = (
                    f'{reference.model} and {result.model} were stress-tested with'
                    f' different {key} ({expected[key]!r} vs {arguments[key]!r}), so'
                    ' their corrupted volumes differ; rerun one of them'
                )
                raise ValueError(message)


def compare(
    results: Sequence[StressResults],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Restrict the models of one dataset to what they share and summarise them.

    Args:
        results: Results of one dataset (different model names).
        resamples: Bootstrap resamples of the confidence intervals.
        seed: Seed of the bootstrap and the paired tests.

    Raises:
        ValueError: If the results are of several datasets, were made with a
            different severity protocol, protocol seed or HU window, share no subject, or share no
            corrupted setting.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> compare(runs).notes  # doctest: +SKIP
        []
    """  # noqa: E501
    if not results:
        raise ValueError('no results to compare')
    datasets = {r.dataset for r in results}
    if len(datasets) != 1:
        raise ValueError(f'compare one dataset at a time, not {sorted(datasets)}')
    dataset = results[0].dataset
    group_by_dataset(results)  # checks names
    _check_same_volumes(results)
    subjects = set(results[0].subjects)
    settings = list(results[0].settings)
    for result in results[1:]:
        subjects &= set(result.subjects)
        settings = [s for s in settings if s in result.settings]
    notes = []
    for result in results:
        if not result.complete:
            notes.append(
                f'{result.model}: incomplete run, {len(result.subjects)} of'
                f' {len(result.expected_subjects)} subjects evaluated so far'
            )
        extra_subjects = len(set(result.subjects) - subjects)
        extra_settings = len(set(result.settings) - set(settings))
        if extra_subjects or extra_settings:
            notes.append(
                f'{result.model}: {extra_subjects} subject(s) and {extra_settings}'
                ' setting(s) not shared by every model are left out'
            )
    if not subjects:
        raise ValueError(f'the models on {dataset!r} share no subject')
    if len(settings) < 2:
        raise ValueError(f'the models on {dataset!r} share no corrupted setting')
    restricted = [r.select(sorted(subjects), settings) for r in results]
    summaries = {
        r.model: summarize(r, resamples=resamples, seed=seed) for r in restricted
    }
    return Comparison(
        dataset=dataset,
        synthetic=any(r.synthetic for r in results),
        models=restricted,
        summaries=summaries,
        notes=notes,
        resamples=resamples,
        seed=seed,
    )


def _estimate(data: dict[str, Any]) -> Estimate:
    return Estimate(
        float('nan') if data['value'] is None else data['value'],
        float('nan') if data['low'] is None else data['low'],
        float('nan') if data['high'] is None else data['high'],
        int(data['n']),
    )


def summary_table(comparison: Comparison) -> list[dict[str, Any]]:
    """Table 5: per model, the four headline estimates.

    Returns:
        Rows ``{model, clean, corrupted, gap, worst_case}`` (estimates).

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> summary_table(comparison)[1]['gap'].value  # doctest: +SKIP
        0.064
    """  # noqa: E501
    rows = []
    for name in comparison.names:
        headline = comparison.summaries[name]['robustness']
        rows.append({'model': name, **{k: _estimate(v) for k, v in headline.items()}})
    return rows


def _headline(comparison: Comparison, name: str, key: str) -> float:
    return float(comparison.summaries[name]['robustness'][key]['value'])


def best_other(comparison: Comparison, focus: str, key: str = 'corrupted') -> str:
    """The other model with the highest headline ``key`` (mean corrupted Dice).

    Raises:
        ValueError: If there is no other model.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> best_other(comparison, 'ramp')  # doctest: +SKIP
        'base'
    """  # noqa: E501
    others = [n for n in comparison.names if n != focus]
    if not others:
        raise ValueError('a comparison needs at least two models')
    return max(others, key=lambda n: _headline(comparison, n, key))


def default_focus(comparison: Comparison) -> str:
    """The model with the highest mean corrupted Dice.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> default_focus(comparison)  # doctest: +SKIP
        'ramp'
    """  # noqa: E501
    return max(comparison.names, key=lambda n: _headline(comparison, n, 'corrupted'))


def improvement_table(
    comparison: Comparison,
    focus: str,
    baseline: str | None = None,
) -> list[dict[str, Any]]:
    """Table 6: mean corrupted Dice gain and gap reduction of ``focus``.

    Against ``baseline`` (if given and not ``focus``) and against the best
    other model (unless that is the baseline). Relative gap reduction = gap
    reduction / the other's gap.

    Returns:
        Rows ``{versus, other, dice_gain, gap_reduction,
        relative_gap_reduction}``.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> improvement_table(comparison, 'ramp', 'base')[0]['versus']  # doctest: +SKIP
        'baseline'
    """  # noqa: E501
    comparison.model(focus)
    targets = []
    if baseline is not None and baseline != focus:
        comparison.model(baseline)
        targets.append(('baseline', baseline))
    if len(comparison.names) > 1:
        other = best_other(comparison, focus)
        if other != baseline:
            targets.append(('best other', other))
    rows = []
    for versus, other in targets:
        gain = _headline(comparison, focus, 'corrupted') - _headline(
            comparison, other, 'corrupted'
        )
        other_gap = _headline(comparison, other, 'gap')
        reduction = other_gap - _headline(comparison, focus, 'gap')
        relative = reduction / other_gap if other_gap > 0 else float('nan')
        rows.append(
            {
                'versus': versus,
                'other': other,
                'dice_gain': gain,
                'gap_reduction': reduction,
                'relative_gap_reduction': relative,
            }
        )
    return rows


def family_table(comparison: Comparison, focus: str) -> list[dict[str, Any]]:
    """Tables 7-8 (and Fig. 4): mean Dice per family for every model.

    Returns:
        Rows ``{family, dice: {model: value}, best_other, best_other_dice,
        focus_dice, difference}`` (``best_other`` is ``None`` with a single
        model).

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> family_table(comparison, 'ramp')[0]['family']  # doctest: +SKIP
        'gaussian_noise'
    """  # noqa: E501
    comparison.model(focus)
    rows = []
    for family in families_of(comparison.models[0]):
        dice = {
            name: float(comparison.summaries[name]['families'][family]['value'])
            for name in comparison.names
        }
        others = {n: v for n, v in dice.items() if n != focus}
        best = max(others, key=others.get) if others else None
        rows.append(
            {
                'family': family,
                'dice': dice,
                'best_other': best,
                'best_other_dice': others.get(best, float('nan')),
                'focus_dice': dice[focus],
                'difference': dice[focus] - others[best] if best else float('nan'),
            }
        )
    return rows


def level_table(comparison: Comparison) -> list[dict[str, Any]]:
    """Fig. 5 as a table: clean and per-level mean Dice of every model.

    Returns:
        Rows ``{level, dice: {model: value}}``, level 0 being clean.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> level_table(comparison)[0]['level']  # doctest: +SKIP
        0.0
    """  # noqa: E501
    rows = [
        {
            'level': 0.0,
            'dice': {n: _headline(comparison, n, 'clean') for n in comparison.names},
        }
    ]
    for level in levels_of(comparison.models[0]):
        key = f'{level:g}'
        rows.append(
            {
                'level': level,
                'dice': {
                    n: float(comparison.summaries[n]['levels'][key]['value'])
                    for n in comparison.names
                },
            }
        )
    return rows


def high_severity_wins(
    comparison: Comparison,
    min_level: float = HIGH_SEVERITY,
) -> tuple[dict[str, int], int]:
    """Table 9: in how many settings with ``level >= min_level`` each model
    has the highest mean subject Dice (a tie counts for each tied model).

    Returns:
        Wins per model and the number of such settings.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> high_severity_wins(comparison)  # doctest: +SKIP
        ({'base': 9, 'ramp': 30}, 39)
    """  # noqa: E501
    per_model = {r.model: r.setting_dice() for r in comparison.models}
    settings = [
        s for s in comparison.models[0].corrupted_settings if s.level >= min_level
    ]
    wins = dict.fromkeys(comparison.names, 0)
    for setting in settings:
        values = {n: per_model[n][setting] for n in comparison.names}
        finite = [v for v in values.values() if np.isfinite(v)]
        if not finite:
            continue
        best = max(finite)
        for name, value in values.items():
            if value == best:
                wins[name] += 1
    return wins, len(settings)


def organ_table(comparison: Comparison, name: str) -> list[dict[str, Any]]:
    """Table 10 for model ``name``: per annotated organ, the headline
    estimates and the mean absolute volume error (mL) clean and corrupted.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> organ_table(comparison, 'ramp')[0]['organ']  # doctest: +SKIP
        'liver'
    """  # noqa: E501
    organs = comparison.summaries[name]['organs']
    rows = []
    for organ, values in organs.items():
        rows.append(
            {
                'organ': organ,
                **{
                    k: _estimate(values[k])
                    for k in ('clean', 'corrupted', 'gap', 'worst_case')
                },
                'volume_error_clean_ml': _estimate(values['volume_error_ml']['clean']),
                'volume_error_corrupted_ml': _estimate(
                    values['volume_error_ml']['corrupted']
                ),
            }
        )
    return rows


def corruption_error_table(
    comparison: Comparison,
    baseline: str,
) -> list[dict[str, Any]]:
    """mCE and relative mCE of every model against ``baseline``.

    Returns:
        Rows ``{model, mce, relative_mce, per_family: {family: CE_f}}``.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> corruption_error_table(comparison, 'base')[0]['mce']  # doctest: +SKIP
        1.0
    """  # noqa: E501
    base = comparison.model(baseline)
    base_dice = {(s.family, s.level): v for s, v in base.setting_dice().items()}
    base_clean = base_dice.pop(('clean', 0.0))
    rows = []
    for result in comparison.models:
        dice = {(s.family, s.level): v for s, v in result.setting_dice().items()}
        clean = dice.pop(('clean', 0.0))
        mce, per_family = corruption_error(dice, base_dice)
        relative, _ = corruption_error(
            dice, base_dice, model_clean=clean, baseline_clean=base_clean
        )
        rows.append(
            {
                'model': result.model,
                'mce': mce,
                'relative_mce': relative,
                'per_family': per_family,
            }
        )
    return rows


def per_subject_values(result: StressResults) -> dict[str, np.ndarray]:
    """Per-subject clean, mean corrupted and worst-case subject Dice.

    Example:
        >>> runs = [load_results('results/ramp')]  # doctest: +SKIP
        >>> sorted(per_subject_values(runs[0]))  # doctest: +SKIP
        ['clean', 'corrupted', 'worst_case']
    """
    subject = result.subject_dice()
    return {
        'clean': subject[:, 0],
        'corrupted': nanmean(subject[:, 1:], axis=1),
        'worst_case': nanmin(subject[:, 1:], axis=1),
    }


def paired_table(comparison: Comparison, baseline: str) -> list[dict[str, Any]]:
    """Paired sign-flip tests of every other model against ``baseline``.

    On per-subject clean, mean corrupted and worst-case subject Dice.

    Returns:
        Rows ``{model, metric, test}`` with a
        :class:`~torchio_ramp.stress.statistics.PairedTest`.

    Example:
        >>> runs = [load_results(p) for p in ('results/base', 'results/ramp')]  # doctest: +SKIP
        >>> comparison = compare(runs)  # doctest: +SKIP
        >>> paired_table(comparison, 'base')[0]['metric']  # doctest: +SKIP
        'clean'
    """  # noqa: E501
    base = per_subject_values(comparison.model(baseline))
    rows = []
    for result in comparison.models:
        if result.model == baseline:
            continue
        values = per_subject_values(result)
        for metric in ('clean', 'corrupted', 'worst_case'):
            test = paired_test(
                values[metric],
                base[metric],
                seed=comparison.seed,
                resamples=comparison.resamples,
            )
            rows.append({'model': result.model, 'metric': metric, 'test': test})
    return rows
