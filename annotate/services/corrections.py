"""Corrections (Aligner, methods.md section 5): a person rewrites a candidate into a better one.

A correction item is a Comparison of kind "correction" whose candidate_a is the answer to improve.
Submitting it stores the person's text as a new Candidate whose parent is the original (in the
prompt's "human corrections" set), the unified diff on that candidate, and the pair
correction > original as a human judgment (derived from the correction judgment) on a pair
comparison that is created complete, so it is never queued but is exported like any other label.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Max, Q

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
    Source,
    Strategy,
)

HUMAN_CORRECTIONS = "human"


class CorrectionError(Exception):
    """The correction cannot be stored (for example it is empty or identical to the original)."""


def correction_diff(*, original: str, corrected: str) -> str:
    return "\n".join(
        difflib.unified_diff(original.splitlines(), corrected.splitlines(), "original", "correction", lineterm="", n=2)
    )


def correction_items_create(
    *, project: Project, candidate_ids: Iterable[int] | None = None, priority: int = 0
) -> list[Comparison]:
    """Create correction items (idempotent per candidate).

    Without `candidate_ids`: for every prompt with a finished set, the candidate people preferred
    least so far (fewest wins in human judgments; the first by position when nobody judged yet).
    """
    candidates = Candidate.objects.filter(
        prompt__project=project, candidate_set__status=RunStatus.DONE, parent__isnull=True
    )
    if candidate_ids is not None:
        candidates = candidates.filter(pk__in=list(candidate_ids))
    else:
        wins = candidates.annotate(
            wins=Count(
                "comparisons_as_a__judgments",
                filter=Q(comparisons_as_a__judgments__source=Source.HUMAN, comparisons_as_a__judgments__choice="a"),
            )
            + Count(
                "comparisons_as_b__judgments",
                filter=Q(comparisons_as_b__judgments__source=Source.HUMAN, comparisons_as_b__judgments__choice="b"),
            )
        ).order_by("prompt_id", "wins", "candidate_set_id", "position")
        chosen: dict[int, int] = {}
        for candidate in wins.only("pk", "prompt_id"):
            chosen.setdefault(candidate.prompt_id, candidate.pk)
        candidates = Candidate.objects.filter(pk__in=chosen.values())
    existing = set(
        Comparison.objects.filter(kind=ComparisonKind.CORRECTION, candidate_a__in=candidates).values_list(
            "candidate_a_id", flat=True
        )
    )
    items = [
        Comparison(
            project=project,
            prompt_id=c.prompt_id,
            kind=ComparisonKind.CORRECTION,
            candidate_a=c,
            priority=priority,
        )
        for c in candidates.only("pk", "prompt_id")
        if c.pk not in existing
    ]
    with transaction.atomic():
        return Comparison.objects.bulk_create(items)


def _corrections_set(*, original: Candidate) -> CandidateSet:
    cset, _ = CandidateSet.objects.get_or_create(
        prompt_id=original.prompt_id,
        strategy=Strategy.CORRECTION,
        generator=None,
        params__source=HUMAN_CORRECTIONS,
        defaults={"params": {"source": HUMAN_CORRECTIONS}, "status": RunStatus.DONE, "n": 2},
    )
    return cset


def correction_store(*, judgment_fields: dict, original: Candidate, text: str) -> Judgment:
    """Store a correction inside the caller's transaction (the queue service's submit).

    Creates the correction candidate, the person's judgment on the correction item, and the implied
    pair judgment (correction preferred) on a completed pair comparison.
    """
    text = (text or "").strip()
    if not text:
        raise CorrectionError("Write the corrected answer.")
    if text == original.text.strip():
        raise CorrectionError("The correction is identical to the original: change something, or skip.")
    cset = CandidateSet.objects.select_for_update().get(pk=_corrections_set(original=original).pk)
    position = (cset.candidates.aggregate(m=Max("position"))["m"] or -1) + 1
    correction = Candidate.objects.create(
        candidate_set=cset,
        prompt_id=original.prompt_id,
        position=position,
        text=text,
        parent=original,
        meta={"source": HUMAN_CORRECTIONS, "diff": correction_diff(original=original.text, corrected=text)},
    )
    judgment = Judgment.objects.create(**judgment_fields, choice=Choice.CORRECTED, correction=correction)
    item = judgment.comparison
    pair = Comparison.objects.create(
        project_id=item.project_id,
        prompt_id=item.prompt_id,
        kind=ComparisonKind.PAIR,
        candidate_a=original,
        candidate_b=correction,
        status=ComparisonStatus.COMPLETE,
        human_judgments=1,
    )
    Judgment.objects.create(
        comparison=pair,
        source=Source.HUMAN,
        annotator_id=judgment.annotator_id,
        assignment_id=judgment.assignment_id,
        choice=Choice.B,
        rationale="correction",
        derived_from=judgment,
    )
    return judgment
