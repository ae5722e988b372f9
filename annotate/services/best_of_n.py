"""Best-of-N items (Community Alignment style): a person sees N candidates and picks the best,
optionally also the worst.

Design:

- A best-of-N item is a `Comparison` of kind `best_of_n` pointing at a `CandidateSet` (one per set).
  It goes through the same queue as pairs (overlap, leases, priorities). At claim time the set's
  candidates are shuffled per person; that order is stored on the lease (`display_order`) and
  copied to the judgment, so position bias can be measured.
- The person's pick is one `Judgment` on the best-of-N item with `choice = "pick"`,
  `best_candidate`, optional `worst_candidate` and `display_order`.
- The pick implies pairwise outcomes: best beats each of the other N-1 candidates, and, when a
  worst is given, each of the remaining N-2 beats the worst (2N-3 outcomes in all). Each is stored
  as a human `Judgment` (choice a / b in the pair's own terms) on the pair comparison of those two
  candidates, with `derived_from` pointing at the pick. So everything that reads pair judgments
  (DPO export, agreement) uses best-of-N data with no special case, and the provenance stays.
- Pair comparisons that do not exist yet are created for this purpose with status `complete`: they
  hold derived outcomes and are never served by the pair queue. On pairs that do exist, derived
  judgments are added without touching their queue counters (`human_judgments` counts judgments
  submitted through the queue). A person's direct judgment of a pair wins over a derived one
  (at most one human judgment per person per comparison); the claim query then never serves that
  person a pair they already judged through a pick.
- `shown_left` / `shown_right` of a derived judgment are the two candidates in the order the person
  saw them (earlier in the list = left).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from django.db import transaction

from annotate.models import (
    Candidate,
    CandidateSet,
    Choice,
    Comparison,
    ComparisonKind,
    ComparisonStatus,
    Judgment,
    Project,
    RunStatus,
)


class PickError(ValueError):
    """A best / worst choice that does not fit the item shown; `field` names the input."""

    def __init__(self, message: str, *, field: str = "best"):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PairOutcome:
    winner: int
    loser: int


def pairwise_outcomes(*, candidate_ids: Sequence[int], best: int, worst: int | None = None) -> list[PairOutcome]:
    """The pairwise preferences a best (and optional worst) pick implies, best's first.

    best beats every other candidate (N-1 outcomes); with a worst, every candidate other than best
    and worst beats worst (N-2 more).
    """
    ids = list(candidate_ids)
    if best not in ids or (worst is not None and (worst not in ids or worst == best)):
        raise PickError("best and worst must be two different candidates of the item")
    outcomes = [PairOutcome(winner=best, loser=other) for other in ids if other != best]
    if worst is not None:
        outcomes += [PairOutcome(winner=other, loser=worst) for other in ids if other not in (best, worst)]
    return outcomes


def pick_validate(*, display_order: Sequence[int], best: int | None, worst: int | None) -> tuple[int, int | None]:
    """Map 1-based positions in the shown order to candidate ids; PickError when they do not fit."""
    n = len(display_order)
    if best is None:
        raise PickError("Pick the best response (best: its position, 1 to N, as shown).")
    for name, value in (("best", best), ("worst", worst)):
        if value is not None and not 1 <= value <= n:
            raise PickError(f"{name} must be a position from 1 to {n}", field=name)
    if worst is not None and worst == best:
        raise PickError("best and worst must be different responses", field="worst")
    return display_order[best - 1], (display_order[worst - 1] if worst is not None else None)


def comparison_create_best_of_n(*, candidate_set: CandidateSet, priority: int = 0) -> Comparison:
    """The set's best-of-N item (idempotent: one per set). The set needs at least two candidates."""
    if candidate_set.candidates.count() < 2:
        raise PickError("a best-of-N item needs a set of at least two candidates")
    prompt = candidate_set.prompt
    comparison, _ = Comparison.objects.get_or_create(
        kind=ComparisonKind.BEST_OF_N,
        candidate_set=candidate_set,
        defaults={"project_id": prompt.project_id, "prompt": prompt, "priority": priority},
    )
    return comparison


def comparisons_create_best_of_n(*, project: Project, priority: int = 0) -> int:
    """A best-of-N item for every finished set of the project that has none; returns how many were new."""
    sets = (
        CandidateSet.objects.filter(prompt__project=project, status=RunStatus.DONE)
        .exclude(comparisons__kind=ComparisonKind.BEST_OF_N)
        .select_related("prompt")
    )
    created = 0
    for candidate_set in sets.iterator(chunk_size=500):
        if candidate_set.candidates.count() < 2:
            continue
        Comparison.objects.bulk_create(
            [
                Comparison(
                    project=project,
                    prompt=candidate_set.prompt,
                    kind=ComparisonKind.BEST_OF_N,
                    candidate_set=candidate_set,
                    priority=priority,
                )
            ],
            ignore_conflicts=True,
        )
        created += 1
    return created


def _pair_comparisons(*, candidate_set_id: int, prompt_id: int, project_id: int) -> dict[frozenset, Comparison]:
    """Every pair comparison of the set's candidates, created (status complete) where missing."""
    candidates = list(Candidate.objects.filter(candidate_set_id=candidate_set_id).order_by("position", "pk"))
    existing = {
        frozenset((c.candidate_a_id, c.candidate_b_id)): c
        for c in Comparison.objects.filter(kind=ComparisonKind.PAIR, candidate_a__candidate_set_id=candidate_set_id)
    }
    missing = [
        Comparison(
            project_id=project_id,
            prompt_id=prompt_id,
            kind=ComparisonKind.PAIR,
            candidate_a=a,
            candidate_b=b,
            status=ComparisonStatus.COMPLETE,
        )
        for a, b in combinations(candidates, 2)
        if frozenset((a.pk, b.pk)) not in existing
    ]
    if missing:
        Comparison.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {
            frozenset((c.candidate_a_id, c.candidate_b_id)): c
            for c in Comparison.objects.filter(kind=ComparisonKind.PAIR, candidate_a__candidate_set_id=candidate_set_id)
        }
    return existing


def derived_judgments_store(*, pick: Judgment) -> list[Judgment]:
    """Store the pairwise outcomes implied by a best-of-N pick; returns the derived judgments.

    Idempotent (a second call stores nothing new). Runs inside the caller's transaction.
    """
    item = pick.comparison
    order = [int(pk) for pk in pick.display_order]
    outcomes = pairwise_outcomes(candidate_ids=order, best=pick.best_candidate_id, worst=pick.worst_candidate_id)
    pairs = _pair_comparisons(
        candidate_set_id=item.candidate_set_id, prompt_id=item.prompt_id, project_id=item.project_id
    )
    rank = {pk: i for i, pk in enumerate(order)}
    rows = []
    for outcome in outcomes:
        pair = pairs[frozenset((outcome.winner, outcome.loser))]
        left, right = sorted((outcome.winner, outcome.loser), key=rank.__getitem__)
        rows.append(
            Judgment(
                comparison=pair,
                source=pick.source,
                annotator_id=pick.annotator_id,
                assignment_id=pick.assignment_id,
                choice=Choice.A if outcome.winner == pair.candidate_a_id else Choice.B,
                shown_left_id=left,
                shown_right_id=right,
                time_spent_ms=None,
                derived_from=pick,
            )
        )
    with transaction.atomic():
        # ON CONFLICT DO NOTHING: a person's own direct judgment of a pair stays as it is.
        Judgment.objects.bulk_create(rows, ignore_conflicts=True)
    return list(Judgment.objects.filter(derived_from=pick).order_by("pk"))
