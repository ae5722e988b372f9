"""Creating comparisons from finished candidate sets."""

from __future__ import annotations

from itertools import combinations

from annotate.models import CandidateSet, Comparison, ComparisonKind


def comparisons_create_for_set(*, candidate_set: CandidateSet, priority: int = 0) -> list[Comparison]:
    """Every pair of the set's candidates becomes a pair comparison (idempotent).

    Which candidate is A and which B is fixed by position; the order a person *sees* is drawn at
    random per person when the item is claimed and stored with their judgment.
    """
    candidates = list(candidate_set.candidates.order_by("position"))
    prompt = candidate_set.prompt
    wanted = [
        Comparison(
            project_id=prompt.project_id,
            prompt=prompt,
            kind=ComparisonKind.PAIR,
            candidate_a=a,
            candidate_b=b,
            priority=priority,
        )
        for a, b in combinations(candidates, 2)
    ]
    Comparison.objects.bulk_create(wanted, ignore_conflicts=True)
    return list(Comparison.objects.filter(candidate_a__candidate_set=candidate_set, kind=ComparisonKind.PAIR))
