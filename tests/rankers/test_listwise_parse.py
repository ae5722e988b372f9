"""Robust parsing of listwise rankings."""

import pytest

from rankers.judges import RankingParseError, parse_ranking


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("[2] > [1] > [3]", 3, [1, 0, 2]),
        ("2 > 3 > 1", 3, [1, 2, 0]),
        ("Ranking: [3] > [3] > [1] > [2]", 3, [2, 0, 1]),  # repeats ignored
        ("Response [1] is vague and [3] is wrong.\nFinal ranking: [2] > [1] > [3]", 3, [1, 0, 2]),
        ("1. [4]\n2. [2]\n3. [1]\n4. [3]", 4, [3, 1, 0, 2]),  # list numbers are not ids
        ("1. Response 2\n2. Response 3\n3. Response 1", 3, [1, 2, 0]),
        ("B > A > C", 3, [1, 0, 2]),
        ("[2] > [4] > [1]", 4, [1, 3, 0, 2]),  # the one missing candidate is last
        ("[2] > [7] > [1] > [3]", 3, [1, 0, 2]),  # out of range ids dropped
        ("[1]", 1, [0]),
    ],
)
def test_rankings_are_parsed(text, n, expected):
    assert parse_ranking(text, n) == expected


@pytest.mark.parametrize(("text", "n"), [("I like them all.", 3), ("[2] is best", 4), ("", 2)])
def test_too_little_ranking_fails_loudly(text, n):
    with pytest.raises(RankingParseError):
        parse_ranking(text, n)
