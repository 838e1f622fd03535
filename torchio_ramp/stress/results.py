"""One model's stress-test results as arrays, and their summary.

:class:`StressResults` holds the long-format rows of a results file (see
:mod:`torchio_ramp.stress.store`) as dense ``(subject, setting, class)``
arrays; :func:`summarize` computes every number of the report for one model
with the definitions of :mod:`torchio_ramp.stress.statistics`. The arrays are
indexed by sorted subject id and by the protocol's setting order, so the
numbers do not depend on the order in which rows were written (shards,
resumed runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

import numpy as np

from .protocol import LEGACY_PROTOCOL
from .protocol import PROTOCOLS
from .protocol import Setting
from .statistics import BOOTSTRAP_RESAMPLES
from .statistics import CONFIDENCE
from .statistics import bootstrap_indices
from .statistics import check_confidence
from .statistics import nanmean
from .statistics import pooled_mean
from .statistics import robustness

HIGH_SEVERITY = 0.15
"""Smallest level counted as high severity (paper section 4.4, Table 9)."""


@dataclass(frozen=True)
class StressResults:
    """Dice and volumes of one model on one dataset, as dense arrays.

    Attributes:
        model: Model name.
        dataset: Dataset name (``dataset.json['dataset']``).
        synthetic: Whether the dataset is synthetic (phantoms).
        subjects: Subject ids, sorted (rows of the arrays).
        settings: Settings, clean first (second axis).
        classes: Class label values (third axis).
        class_names: Name of each class.
        annotated: Classes the dataset annotates; the others are excluded
            from every aggregate.
        dice: Raw Dice ``(S, T, K)``, NaN where prediction and reference
            are both empty.
        target_ml: Reference volume in mL ``(S, T, K)``.
        predicted_ml: Predicted volume in mL ``(S, T, K)``.
        expected_subjects: Subjects the run was asked to evaluate (more than
            :attr:`subjects` while it is incomplete).
        header: The run's header (arguments, sessions), if read from disk.

    Example:
        >>> from torchio_ramp.stress.protocol import Setting
        >>> settings = [Setting.clean(), Setting('blur', 0.1), Setting('stripe', 0.2)]
        >>> rows = [
        ...     dict(subject_id='a', family=s.family, level=s.level, class_id=1,
        ...          dice=d, gt_ml=10.0, pred_ml=9.0)
        ...     for s, d in zip(settings, [0.9, 0.8, 0.6])
        ... ]
        >>> results = StressResults.from_rows(
        ...     rows, settings, classes=[1], annotated=[1], model='m',
        ...     dataset='d', synthetic=False, class_names={1: 'liver'})
        >>> results.subject_dice().tolist()
        [[0.9, 0.8, 0.6]]
        >>> results.volume_error()[0, :, 0].tolist()
        [1.0, 1.0, 1.0]
    """

    model: str
    dataset: str
    synthetic: bool
    subjects: tuple[str, ...]
    settings: tuple[Setting, ...]
    classes: tuple[int, ...]
    class_names: Mapping[int, str]
    annotated: tuple[int, ...]
    dice: np.ndarray
    target_ml: np.ndarray
    predicted_ml: np.ndarray
    expected_subjects: tuple[str, ...] = ()
    header: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.subjects), len(self.settings), len(self.classes))
        for name in ('dice', 'target_ml', 'predicted_ml'):
            if getattr(self, name).shape != shape:
                message = f'{name} has shape {getattr(self, name).shape}, not {shape}'
                raise ValueError(message)
        if not self.settings or not self.settings[0].is_clean:
            raise ValueError('the first setting must be the clean one')

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        settings: Sequence[Setting],
        classes: Sequence[int],
        annotated: Iterable[int],
        **metadata: Any,
    ) -> StressResults:
        """Build the arrays from long-format rows (one per subject x setting x class).

        Args:
            rows: Mappings with ``subject_id``, ``family``, ``level``,
                ``class_id``, ``dice``, ``gt_ml`` and ``pred_ml``.
            settings: Settings in protocol order (clean first).
            classes: Class label values.
            annotated: Classes the dataset annotates.
            **metadata: ``model``, ``dataset``, ``synthetic``,
                ``class_names`` and optionally ``expected_subjects``,
                ``header``.

        Raises:
            ValueError: If a row names an unknown setting or class, a value
                is given twice, or a subject lacks a value.

        Example:
            >>> from torchio_ramp.stress.protocol import Setting
            >>> settings = [Setting.clean(), Setting('blur', 0.1), Setting('stripe', 0.2)]
            >>> rows = [
            ...     dict(subject_id='a', family=s.family, level=s.level, class_id=1,
            ...          dice=d, gt_ml=10.0, pred_ml=9.0)
            ...     for s, d in zip(settings, [0.9, 0.8, 0.6])
            ... ]
            >>> results = StressResults.from_rows(
            ...     rows, settings, classes=[1], annotated=[1], model='m',
            ...     dataset='d', synthetic=False, class_names={1: 'liver'})
            >>> results.dice.shape
            (1, 3, 1)
        """  # noqa: E501
        rows = list(rows)
        subjects = tuple(sorted({str(row['subject_id']) for row in rows}))
        subject_index = {s: i for i, s in enumerate(subjects)}
        setting_index = {(s.family, s.level): i for i, s in enumerate(settings)}
        class_index = {int(c): i for i, c in enumerate(classes)}
        shape = (len(subjects), len(settings), len(classes))
        arrays = {key: np.full(shape, np.nan) for key in ('dice', 'gt_ml', 'pred_ml')}
        seen = np.zeros(shape, bool)
        for row in rows:
            key = (str(row['family']), float(row['level']))
            if key not in setting_index:
                raise ValueError(f'unknown setting {key} for {row["subject_id"]!r}')
            if int(row['class_id']) not in class_index:
                raise ValueError(f'unknown class {row["class_id"]!r}')
            where = (
                subject_index[str(row['subject_id'])],
                setting_index[key],
                class_index[int(row['class_id'])],
            )
            if seen[where]:
                message = (
                    f'two rows for subject {row["subject_id"]!r}, setting {key},'
                    f' class {row["class_id"]}'
                )
                raise ValueError(message)
            seen[where] = True
            for name in arrays:
                arrays[name][where] = float(row[name])
        if not seen.all():
            missing = subjects[int(np.argwhere(~seen)[0][0])]
            raise ValueError(f'subject {missing!r} lacks some settings or classes')
        return cls(
            subjects=subjects,
            settings=tuple(settings),
            classes=tuple(int(c) for c in classes),
            annotated=tuple(int(c) for c in annotated),
            dice=arrays['dice'],
            target_ml=arrays['gt_ml'],
            predicted_ml=arrays['pred_ml'],
            **metadata,
        )

    @property
    def protocol(self) -> str | None:
        """Severity protocol of the run (``'paired'`` or ``'independent'``).

        Read from the header; a header without one predates the paired
        protocol (``'independent'``); ``None`` for results built in memory.
        """
        arguments = self.header.get('arguments')
        if arguments is None:
            return None
        return str(arguments.get('protocol', LEGACY_PROTOCOL))

    @property
    def complete(self) -> bool:
        """Whether every expected subject has results."""
        return set(self.expected_subjects) <= set(self.subjects)

    @property
    def corrupted_settings(self) -> tuple[Setting, ...]:
        """Settings without the clean one."""
        return self.settings[1:]

    @property
    def included(self) -> np.ndarray:
        """Boolean ``(K,)``: the class is annotated by the dataset."""
        return np.array([c in self.annotated for c in self.classes])

    def class_dice(self) -> np.ndarray:
        """Dice ``(S, T, K)`` with NaN for excluded values (both empty, not annotated)."""  # noqa: E501
        return np.where(self.included, self.dice, np.nan)

    def subject_dice(self) -> np.ndarray:
        """Subject Dice ``(S, T)``: mean over the included classes (NaN if none)."""
        return nanmean(self.class_dice(), axis=2)

    def volume_error(self) -> np.ndarray:
        """Absolute volume error in mL ``(S, T, K)``, NaN for non-annotated classes."""
        error = np.abs(self.predicted_ml - self.target_ml)
        return np.where(self.included, error, np.nan)

    def setting_dice(self) -> dict[Setting, float]:
        """Mean subject Dice over subjects at each setting (clean included)."""
        means = nanmean(self.subject_dice(), axis=0)
        return {s: float(v) for s, v in zip(self.settings, means, strict=True)}

    def select(
        self,
        subjects: Sequence[str] | None = None,
        settings: Sequence[Setting] | None = None,
    ) -> StressResults:
        """The same results restricted to some subjects and settings.

        Raises:
            KeyError: If a subject or setting is not in these results.
        """
        rows = (
            list(range(len(self.subjects)))
            if subjects is None
            else [self.subjects.index(s) for s in sorted(subjects)]
        )
        columns = (
            list(range(len(self.settings)))
            if settings is None
            else [self.settings.index(s) for s in settings]
        )
        index = np.ix_(rows, columns, range(len(self.classes)))
        return replace(
            self,
            subjects=tuple(self.subjects[i] for i in rows),
            settings=tuple(self.settings[j] for j in columns),
            dice=self.dice[index],
            target_ml=self.target_ml[index],
            predicted_ml=self.predicted_ml[index],
        )


def _family_columns(results: StressResults, family: str) -> list[int]:
    return [
        j
        for j, s in enumerate(results.settings)
        if not s.is_clean and s.family == family
    ]


def families_of(results: StressResults) -> list[str]:
    """Corruption families in protocol order.

    Example:
        >>> from torchio_ramp.stress.protocol import Setting
        >>> settings = [Setting.clean(), Setting('blur', 0.1), Setting('stripe', 0.2)]
        >>> rows = [
        ...     dict(subject_id='a', family=s.family, level=s.level, class_id=1,
        ...          dice=d, gt_ml=10.0, pred_ml=9.0)
        ...     for s, d in zip(settings, [0.9, 0.8, 0.6])
        ... ]
        >>> results = StressResults.from_rows(
        ...     rows, settings, classes=[1], annotated=[1], model='m',
        ...     dataset='d', synthetic=False, class_names={1: 'liver'})
        >>> families_of(results)
        ['blur', 'stripe']
    """
    return list(dict.fromkeys(s.family for s in results.corrupted_settings))


def levels_of(results: StressResults) -> list[float]:
    """Severity levels in protocol order.

    Example:
        >>> from torchio_ramp.stress.protocol import Setting
        >>> settings = [Setting.clean(), Setting('blur', 0.1), Setting('stripe', 0.2)]
        >>> rows = [
        ...     dict(subject_id='a', family=s.family, level=s.level, class_id=1,
        ...          dice=d, gt_ml=10.0, pred_ml=9.0)
        ...     for s, d in zip(settings, [0.9, 0.8, 0.6])
        ... ]
        >>> results = StressResults.from_rows(
        ...     rows, settings, classes=[1], annotated=[1], model='m',
        ...     dataset='d', synthetic=False, class_names={1: 'liver'})
        >>> levels_of(results)
        [0.1, 0.2]
    """
    return list(dict.fromkeys(s.level for s in results.corrupted_settings))


def summarize(
    results: StressResults,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Every per-model number of the report, JSON-ready.

    Args:
        results: One model's results.
        resamples: Bootstrap resamples of the 95% confidence intervals.
        seed: Seed of the bootstrap.
        confidence: Two-sided level of the intervals (``low``, ``high``).

    Returns:
        ``model``, ``dataset``, ``synthetic``, ``subjects`` (count),
        ``complete``, ``settings`` (count of corrupted settings),
        ``protocol`` and ``protocol_version`` (the severity protocol; ``None``
        for results built in memory),
        ``robustness`` (clean, corrupted, gap, worst_case: Table 5),
        ``families`` (Table 7, Fig. 4) and ``levels`` (Fig. 5) as estimates,
        ``setting_dice`` (mean subject Dice per setting name), ``organs``
        (Table 10 per class name, plus ``volume_error_ml`` clean/corrupted).
        Each estimate is ``{value, low, high, n}``.

    Example:
        >>> import numpy as np
        >>> settings = (Setting.clean(), Setting('blur', 0.1))
        >>> dice = np.array([[[0.9], [0.7]], [[0.8], [0.6]]])
        >>> results = StressResults(
        ...     model='m', dataset='d', synthetic=False, subjects=('a', 'b'),
        ...     settings=settings, classes=(1,), class_names={1: 'liver'},
        ...     annotated=(1,), dice=dice, target_ml=np.ones((2, 2, 1)),
        ...     predicted_ml=np.ones((2, 2, 1)))
        >>> summary = summarize(results, resamples=50)
        >>> round(summary['robustness']['gap']['value'], 3)
        0.2
    """
    confidence = check_confidence(confidence)
    indices = bootstrap_indices(len(results.subjects), resamples, seed)
    subject = results.subject_dice()
    corrupted = subject[:, 1:]
    families = {
        family: pooled_mean(
            subject[:, _family_columns(results, family)], indices, confidence
        )
        for family in families_of(results)
    }
    levels = {
        level: pooled_mean(
            subject[
                :,
                [
                    j
                    for j, s in enumerate(results.settings)
                    if not s.is_clean and s.level == level
                ],
            ],
            indices,
            confidence,
        )
        for level in levels_of(results)
    }
    class_dice = results.class_dice()
    error = results.volume_error()
    organs = {}
    for k, label in enumerate(results.classes):
        if label not in results.annotated:
            continue
        organ = robustness(class_dice[:, :, k], indices, confidence).to_dict()
        organ['volume_error_ml'] = {
            'clean': pooled_mean(error[:, :1, k], indices, confidence).to_dict(),
            'corrupted': pooled_mean(error[:, 1:, k], indices, confidence).to_dict(),
        }
        organs[results.class_names.get(label, str(label))] = organ
    return {
        'model': results.model,
        'dataset': results.dataset,
        'synthetic': results.synthetic,
        'subjects': len(results.subjects),
        'expected_subjects': len(results.expected_subjects or results.subjects),
        'complete': results.complete,
        'settings': corrupted.shape[1],
        'protocol': results.protocol,
        'protocol_version': PROTOCOLS.get(results.protocol or ''),
        'bootstrap': {'resamples': resamples, 'seed': seed, 'confidence': confidence},
        'robustness': robustness(subject, indices, confidence).to_dict(),
        'families': {f: e.to_dict() for f, e in families.items()},
        'levels': {f'{level:g}': e.to_dict() for level, e in levels.items()},
        'setting_dice': {s.name: v for s, v in results.setting_dice().items()},
        'organs': organs,
    }
