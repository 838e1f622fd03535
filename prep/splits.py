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
