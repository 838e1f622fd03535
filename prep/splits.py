"""The split rule: sorted ids, a seeded permutation, floor-sized train/val.

Rule (design card, paper section 3.5): sort the ids (Python string order, the
same on every platform), permute them with
``numpy.random.default_rng(seed).permutation(n)``, then train = the first
``floor(f_train * n)``, val = the next ``floor(f_val * n)``, test = the rest.
Fractions are read as exact decimals (``0.7`` is 7/10), so the sizes never
depend on floating-point rounding: 1228 -> 859/184/185, 1000 -> 700/150/150.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from torchio_ramp.datasets import SPLIT_NAMES

DEFAULT_SEED = 42
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
RULE = (
    'sorted ids permuted by numpy.random.default_rng(seed).permutation(n); '
    'train = floor(f_train * n), val = floor(f_val * n), test = the rest'
)
RELEASE_RULE = "the release's own split (the split column of its meta.csv)"


def _exact(value: float | str | Fraction) -> Fraction:
    if isinstance(value, Fraction):
        return value
    return Fraction(str(value).strip())


def parse_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Parse and check train/val/test fractions.

    Args:
        text: ``'0.7,0.15,0.15'`` or a sequence of three numbers, each in
            ``[0, 1]``, summing to 1.

    Raises:
        ValueError: With what is wrong.

    Example:
        >>> parse_fractions('0.8, 0.1, 0.1')
        (0.8, 0.1, 0.1)
        >>> parse_fractions('0.5,0.5')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: expected three fractions train,val,test (e.g. 0.7,0.15,0.15), ...
    """
    parts = text.split(',') if isinstance(text, str) else list(text)
    if len(parts) != 3:
        raise ValueError(
            'expected three fractions train,val,test (e.g. 0.7,0.15,0.15), '
            f'got {text!r}'
        )
    try:
        exact = [_exact(p) for p in parts]
    except (ValueError, ZeroDivisionError) as error:
        raise ValueError(f'fractions must be numbers, got {text!r}') from error
    if any(f < 0 or f > 1 for f in exact):
        raise ValueError(f'each fraction must be between 0 and 1, got {text!r}')
    if abs(sum(exact) - 1) > Fraction(1, 10**9):
        raise ValueError(
            f'fractions must sum to 1, got {text!r} (sum {float(sum(exact)):g})'
        )
    return tuple(float(f) for f in exact)


def split_sizes(
    n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> tuple[int, int, int]:
    """Train, val and test sizes for ``n`` ids.

    Example:
        >>> split_sizes(1228), split_sizes(1000)
        ((859, 184, 185), (700, 150, 150))
    """
    train = math.floor(_exact(fractions[0]) * n)
    val = math.floor(_exact(fractions[1]) * n)
    return train, val, n - train - val


def compute_split(
    ids: Iterable[str],
    seed: int = DEFAULT_SEED,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, list[str]]:
    """Assign ids to train/val/test with the documented rule.

    The result depends only on the set of ids, the seed and the fractions
    (not on their order, the platform or the number of workers). Each list is
    returned sorted.

    Args:
        ids: Unique subject ids.
        seed: Seed of ``numpy.random.default_rng``.
        fractions: Train, val and test fractions.

    Raises:
        ValueError: If ids repeat.

    Example:
        >>> split = compute_split([f's{i:04d}' for i in range(1228)])
        >>> [len(split[name]) for name in ('train', 'val', 'test')]
        [859, 184, 185]
    """
    ordered = sorted(ids)
    if len(set(ordered)) != len(ordered):
        repeated = sorted(i for i, n in Counter(ordered).items() if n > 1)
        raise ValueError(f'subject ids must be unique; repeated: {repeated[:10]}')
    n = len(ordered)
    n_train, n_val, _ = split_sizes(n, fractions)
    permutation = np.random.default_rng(seed).permutation(n)
    shuffled = [ordered[i] for i in permutation]
    parts = (
        shuffled[:n_train],
        shuffled[n_train : n_train + n_val],
        shuffled[n_train + n_val :],
    )
    return {name: sorted(part) for name, part in zip(SPLIT_NAMES, parts, strict=True)}


def release_split(assigned: Mapping[str, str]) -> dict[str, list[str]]:
    """The split a release gives its subjects (``id -> 'train'|'val'|'test'``).

    Values are read without case or surrounding spaces; each list is sorted.

    Raises:
        ValueError: Naming the ids without a split or with an unknown one.

    Example:
        >>> release_split({'s2': 'test', 's1': 'Train ', 's3': 'train'})
        {'train': ['s1', 's3'], 'val': [], 'test': ['s2']}
    """
    split: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    missing, unknown = [], []
    for subject_id, value in sorted(assigned.items()):
        name = value.strip().lower()
        if name in split:
            split[name].append(subject_id)
        elif name:
            unknown.append(f'{subject_id} ({value.strip()!r})')
        else:
            missing.append(subject_id)
    problems = []
    if missing:
        problems.append(f'no split for {len(missing)} id(s): {", ".join(missing[:10])}')
    if unknown:
        problems.append(
            f'a split other than train, val or test for {len(unknown)} id(s): '
            + ', '.join(unknown[:10])
        )
    if problems:
        raise ValueError('; '.join(problems))
    return split


def filling_fractions(n: int) -> tuple[float, float, float] | None:
    """Fractions that leave no split of ``n`` ids empty (two ids: no test).

    The default fractions where they fill every split (7 ids or more);
    for 3 to 6 ids, train ``n - 2``, val 1 and test 1; for 2 ids, train 1 and
    val 1 (what ``ramp-train`` needs; two ids cannot fill three splits);
    ``None`` for fewer.

    Example:
        >>> filling_fractions(3), filling_fractions(20)
        ((0.34, 0.34, 0.32), (0.7, 0.15, 0.15))
        >>> split_sizes(6, filling_fractions(6)), filling_fractions(2)
        ((4, 1, 1), (0.5, 0.5, 0.0))
    """
    if n < 2:
        return None
    if n == 2:
        return (0.5, 0.5, 0.0)
    if min(split_sizes(n, DEFAULT_FRACTIONS)) > 0:
        return DEFAULT_FRACTIONS
    # Two decimals, rounded up: floor(f * n) is then exactly the wanted size.
    train = Fraction(math.ceil(Fraction(100 * (n - 2), n)), 100)
    val = Fraction(math.ceil(Fraction(100, n)), 100)
    fractions = (float(train), float(val), float(1 - train - val))
    assert split_sizes(n, fractions) == (n - 2, 1, 1), (n, fractions)
    return fractions


USES = {
    'train': 'ramp-train trains on it',
    'val': 'ramp-train validates on it',
    'test': 'ramp-stress run evaluates it (--split test)',
}
"""What each split is for, as a warning about an empty one says."""


def empty_split_warnings(splits: Mapping[str, object], root: object) -> list[str]:
    """Warnings about splits left empty by a small cohort, with the fix.

    A split is worth a warning when it is empty although its fraction is
    above zero (or the split is the release's own): ``--fractions 0,0,1``
    empties train and val on purpose, and says nothing.

    Args:
        splits: The contents of ``splits.json``.
        root: The prepared folder, as ``ramp-prep split`` takes it.

    Example:
        >>> splits = {'train': ['a', 'b'], 'val': [], 'test': ['c'],
        ...           'fractions': [0.7, 0.15, 0.15], 'cohort': {'size': 3}}
        >>> import textwrap
        >>> (warning,) = empty_split_warnings(splits, 'prepared')
        >>> print(textwrap.fill(warning, 72))
        split 'val' is empty (train 2, val 0, test 1 of 3 prepared subjects):
        ramp-train validates on it. Fix: ramp-prep split prepared --fractions
        0.34,0.34,0.32 (train 1, val 1, test 1).
    """
    sizes = {name: len(splits[name]) for name in SPLIT_NAMES}
    total = sum(sizes.values())
    fractions = splits.get('fractions')
    chosen = fractions if isinstance(fractions, list) and len(fractions) == 3 else None
    empty = [
        name
        for i, name in enumerate(SPLIT_NAMES)
        if sizes[name] == 0 and (chosen is None or chosen[i] > 0)
    ]
    if not empty or total == 0:
        return []
    which = ' and '.join(repr(name) for name in empty)
    counts = ', '.join(f'{name} {sizes[name]}' for name in SPLIT_NAMES)
    line = (
        f'{"split" if len(empty) == 1 else "splits"} {which}'
        f' {"is" if len(empty) == 1 else "are"} empty ({counts} of'
        f' {total} prepared subject{"s" * (total != 1)}): '
        + '; '.join(USES[name] for name in empty)
        + '.'
    )
    fill = filling_fractions(total)
    if fill is None:
        return [
            line + ' One subject cannot be split: prepare more, or keep it for'
            f' ramp-stress alone (ramp-prep split {root} --fractions 0,0,1).'
        ]
    cohort = splits.get('cohort')
    size = cohort.get('size', total) if isinstance(cohort, Mapping) else total
    basis = ' --cohort prepared' if total < size else ''
    new = split_sizes(total, fill)
    text = ','.join(f'{f:g}' for f in fill)
    line += (
        f' Fix: ramp-prep split {root}{basis} --fractions {text} ('
        + ', '.join(f'{n} {k}' for n, k in zip(SPLIT_NAMES, new, strict=True))
        + ').'
    )
    if total == 2:
        line += (
            ' Two subjects cannot fill three splits: that leaves no test subject;'
            ' to stress-test a model trained elsewhere, keep a test subject instead.'
        )
    return [line]


def split_of(split: dict[str, list[str]]) -> dict[str, str]:
    """Invert a split: id -> split name.

    Example:
        >>> split_of({'train': ['a'], 'val': [], 'test': ['b']})
        {'a': 'train', 'b': 'test'}
    """
    return {i: name for name in SPLIT_NAMES for i in split.get(name, [])}


def cohort_digest(ids: Iterable[str]) -> str:
    """SHA-256 of the sorted ids joined by newlines (identifies a cohort).

    Example:
        >>> cohort_digest(['b', 'a']) == cohort_digest(['a', 'b'])
        True
    """
    return hashlib.sha256('\n'.join(sorted(ids)).encode()).hexdigest()


def keep_together(
    split: dict[str, list[str]], groups: Iterable[Sequence[str]]
) -> dict[str, list[str]]:
    """Move each group of ids into the split of its first (smallest) id.

    Used for duplicate scans (the same CT under several ids): spread over
    train and test they would leak. Ids not in ``split`` are ignored; each
    split comes back sorted.

    Example:
        >>> keep_together({'train': ['a', 'b'], 'val': [], 'test': ['c']}, [['c', 'a']])
        {'train': ['a', 'b', 'c'], 'val': [], 'test': []}
    """
    where = split_of(split)
    for group in groups:
        members = sorted(i for i in group if i in where)
        for subject_id in members[1:]:
            where[subject_id] = where[members[0]]
    return {
        name: sorted(i for i, n in where.items() if n == name) for name in SPLIT_NAMES
    }
