"""Agreement between two rankings of the same candidates (CycleAlign, methods.md section 3).

A ranking is a sequence of item ids, best first. A rule returns the part both rankings share, as
ordered pairs (winner, loser): those pairs are the pseudo-labels. Rules are pluggable: register your
own with `register_rule`. Kendall tau between the two rankings is reported alongside.

- pairwise: every pair that both rankings order the same way;
- lcs: the longest common subsequence of the two orders, and every pair it orders;
- exact: everything if the rankings are identical, nothing otherwise.
Items present in only one ranking are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import combinations

Ranking = Sequence[Hashable]


@dataclass(frozen=True)
class Agreement:
    rule: str
    pairs: list[tuple[Hashable, Hashable]]  # (winner, loser), pairs both rankings agree on under the rule
    order: list[Hashable] | None  # the shared order, for rules that produce one (lcs, exact)
    kendall_tau: float | None
    share: float  # agreed pairs / all pairs of the common items

    def covers(self, winner: Hashable, loser: Hashable) -> bool:
        return (winner, loser) in set(self.pairs)


def _common(first: Ranking, second: Ranking) -> tuple[list, list]:
    if len(set(first)) != len(first) or len(set(second)) != len(second):
        raise ValueError("a ranking lists each item once")
    both = set(first) & set(second)
    return [x for x in first if x in both], [x for x in second if x in both]


def kendall_tau(first: Ranking, second: Ranking) -> float | None:
    """Kendall's tau (tau-b; no ties in a ranking) over the common items; None below two items."""
    from scipy.stats import kendalltau

    a, b = _common(first, second)
    if len(a) < 2:
        return None
    pos_b = {x: i for i, x in enumerate(b)}
    tau = kendalltau(list(range(len(a))), [pos_b[x] for x in a]).statistic
    return float(tau)


def _ordered_pairs(order: Sequence[Hashable]) -> list[tuple[Hashable, Hashable]]:
    return [(order[i], order[j]) for i, j in combinations(range(len(order)), 2)]


def _n_pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_intersection(first: Ranking, second: Ranking) -> Agreement:
    a, b = _common(first, second)
    pos_b = {x: i for i, x in enumerate(b)}
    pairs = [(w, lo) for w, lo in _ordered_pairs(a) if pos_b[w] < pos_b[lo]]
    total = _n_pairs(len(a))
    return Agreement("pairwise", pairs, None, kendall_tau(a, b), len(pairs) / total if total else 0.0)


def longest_common_subsequence(first: Ranking, second: Ranking) -> Agreement:
    a, b = _common(first, second)
    # Classic O(n*m) table; candidate sets are small.
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    order, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            order.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    pairs = _ordered_pairs(order)
    total = _n_pairs(len(a))
    return Agreement("lcs", pairs, order, kendall_tau(a, b), len(pairs) / total if total else 0.0)


def exact_match(first: Ranking, second: Ranking) -> Agreement:
    a, b = _common(first, second)
    same = a == b
    pairs = _ordered_pairs(a) if same else []
    total = _n_pairs(len(a))
    return Agreement("exact", pairs, list(a) if same else None, kendall_tau(a, b), len(pairs) / total if total else 0.0)


RULES: dict[str, Callable[[Ranking, Ranking], Agreement]] = {
    "pairwise": pairwise_intersection,
    "lcs": longest_common_subsequence,
    "exact": exact_match,
}


def register_rule(name: str, rule: Callable[[Ranking, Ranking], Agreement]) -> None:
    RULES[name] = rule


def agree(first: Ranking, second: Ranking, *, rule: str = "pairwise") -> Agreement:
    try:
        fn = RULES[rule]
    except KeyError:
        raise ValueError(f"unknown agreement rule {rule!r}; known: {sorted(RULES)}") from None
    return fn(first, second)
