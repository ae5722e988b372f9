"""Deciding the final label of a comparison from its resolution or its human judgments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from annotate.models import Choice

STRICT = (Choice.A, Choice.B)


def majority_label(choices: Iterable[str]) -> tuple[str | None, float]:
    """The strict majority among human verdicts, and the share that agrees with it.

    Ties, "both bad" and split votes give no preference label (None).
    """
    votes = Counter(choices)
    total = sum(votes.values())
    if not total:
        return None, 0.0
    winner, count = votes.most_common(1)[0]
    if winner not in STRICT or count * 2 <= total:
        return None, count / total
    return winner, count / total
