"""SPA / Selfie implicit reward (methods.md section 4).

r(x, y) = log pi(y | x) - log pi_ref(y | x), with summed token log-probabilities. Of two responses
the higher r is chosen; margin = r_w - r_l; confidence = sigmoid(beta * margin), beta = 0.1. Pairs
whose margin is in the bottom K % are flagged as noisy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_BETA = 0.1
DEFAULT_FLAG_PERCENT = 10.0


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def implicit_reward(policy_logprob: float, reference_logprob: float) -> float:
    return policy_logprob - reference_logprob


@dataclass(frozen=True)
class SpaLabel:
    chosen: str  # "a", "b", or "na" when the rewards are exactly equal
    reward_a: float
    reward_b: float
    margin: float
    confidence: float


def spa_label(reward_a: float, reward_b: float, *, beta: float = DEFAULT_BETA) -> SpaLabel:
    margin = abs(reward_a - reward_b)
    chosen = "na" if reward_a == reward_b else ("a" if reward_a > reward_b else "b")
    return SpaLabel(
        chosen=chosen, reward_a=reward_a, reward_b=reward_b, margin=margin, confidence=sigmoid(beta * margin)
    )


def flag_bottom(margins: Sequence[float], percent: float = DEFAULT_FLAG_PERCENT) -> list[bool]:
    """Flag the ceil(percent % of n) pairs with the smallest margins (ties broken by position).

    Rounding up means a small batch still gets at least one pair checked when percent > 0.
    """
    n = len(margins)
    if n == 0 or percent <= 0:
        return [False] * n
    count = min(n, math.ceil(n * percent / 100 - 1e-9))
    flagged = set(sorted(range(n), key=lambda i: (margins[i], i))[:count])
    return [i in flagged for i in range(n)]
