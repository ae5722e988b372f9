"""SPA implicit reward, confidence and bottom-K % flags."""

import math

import pytest

from rankers.judges import flag_bottom, implicit_reward, spa_label


def test_spa_label_prefers_the_higher_implicit_reward():
    r_a = implicit_reward(-40.0, -45.0)  # +5: the policy likes a more than the reference does
    r_b = implicit_reward(-30.0, -28.0)  # -2
    label = spa_label(r_a, r_b)
    assert label.chosen == "a" and label.margin == pytest.approx(7.0)
    assert label.confidence == pytest.approx(1 / (1 + math.exp(-0.7)))
    assert spa_label(r_b, r_a).chosen == "b"
    tie = spa_label(1.0, 1.0)
    assert tie.chosen == "na" and tie.confidence == 0.5


def test_bottom_k_percent_of_margins_are_flagged():
    margins = [5.0, 0.1, 3.0, 0.1, 9.0, 2.0, 7.0, 4.0, 6.0, 8.0, 1.0, 0.5]
    flags = flag_bottom(margins, 10)  # ceil(1.2) = 2 smallest; tie at 0.1 broken by position
    assert [i for i, f in enumerate(flags) if f] == [1, 3]
    assert sum(flag_bottom(margins, 25)) == 3
    assert flag_bottom(margins, 0) == [False] * 12
    assert flag_bottom([], 10) == []
    assert flag_bottom([1.0, 2.0], 10) == [True, False]
