"""Agreement rules and Kendall tau on hand-made rankings."""

import pytest

from rankers.agreement import RULES, Agreement, agree, kendall_tau, register_rule


def test_pairwise_intersection_keeps_pairs_both_order_the_same():
    result = agree(["a", "b", "c", "d"], ["b", "a", "c", "d"], rule="pairwise")
    # All 6 pairs but (a, b), which the rankings order differently.
    assert sorted(result.pairs) == sorted([("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")])
    assert result.share == pytest.approx(5 / 6)
    assert result.kendall_tau == pytest.approx(4 / 6)  # (5 concordant - 1 discordant) / 6


def test_lcs_keeps_the_longest_common_order():
    result = agree([1, 2, 3, 4, 5], [2, 1, 3, 5, 4], rule="lcs")
    assert len(result.order) == 3 and result.order[-2] == 3
    assert result.order in ([1, 3, 4], [1, 3, 5], [2, 3, 4], [2, 3, 5])
    assert len(result.pairs) == 3 and result.share == pytest.approx(3 / 10)
    # Every LCS pair is ordered the same way by both rankings.
    assert set(result.pairs) <= set(agree([1, 2, 3, 4, 5], [2, 1, 3, 5, 4], rule="pairwise").pairs)


def test_lcs_of_identical_and_reversed_rankings():
    assert agree("abc", "abc", rule="lcs").order == ["a", "b", "c"]
    reversed_ = agree("abc", "cba", rule="lcs")
    assert len(reversed_.order) == 1 and reversed_.pairs == [] and reversed_.kendall_tau == pytest.approx(-1)


def test_exact_is_all_or_nothing():
    same = agree([3, 1, 2], [3, 1, 2], rule="exact")
    assert same.pairs == [(3, 1), (3, 2), (1, 2)] and same.share == 1 and same.kendall_tau == pytest.approx(1)
    differ = agree([3, 1, 2], [3, 2, 1], rule="exact")
    assert differ.pairs == [] and differ.order is None and differ.share == 0


def test_items_only_one_ranking_has_are_ignored():
    result = agree(["a", "x", "b"], ["b", "a", "y"], rule="pairwise")
    assert result.pairs == [] and result.kendall_tau == pytest.approx(-1)
    assert kendall_tau(["a"], ["a", "b"]) is None


def test_rules_are_pluggable():
    def first_place(first, second):
        pairs = [(first[0], x) for x in first[1:]] if first[0] == second[0] else []
        return Agreement("first_place", pairs, None, kendall_tau(first, second), len(pairs) / 3)

    register_rule("first_place", first_place)
    try:
        assert agree("abc", "acb", rule="first_place").pairs == [("a", "b"), ("a", "c")]
    finally:
        del RULES["first_place"]
    with pytest.raises(ValueError, match="unknown agreement rule"):
        agree("ab", "ab", rule="first_place")


def test_duplicate_items_are_refused():
    with pytest.raises(ValueError):
        agree(["a", "a"], ["a", "b"])
