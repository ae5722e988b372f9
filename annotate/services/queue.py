"""The labeling queue: leasing items to people, skipping, releasing and submitting judgments.

Correctness under concurrency: on PostgreSQL, candidate rows are locked with SELECT ... FOR UPDATE
SKIP LOCKED and their open leases re-counted inside the lock, so two claimers can never both take
the last free slot of an item. On SQLite, every transaction starts IMMEDIATE (see settings), which
serialises writers, so the same re-count is race-free there too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from annotate.models import (
    Assignment,
    AssignmentState,
    Choice,
    Comparison,
    ComparisonStatus,
    Judgment,
    Project,
    Source,
)

CANDIDATE_WINDOW = 32
_rng = random.SystemRandom()


class QueueError(Exception):
    """A queue operation that cannot be done (for example a lease that is no longer open)."""


def leases_expire(*, project: Project, now=None) -> int:
    now = now or timezone.now()
    return Assignment.objects.filter(
        comparison__project=project, state=AssignmentState.ACTIVE, expires_at__lte=now
    ).update(state=AssignmentState.EXPIRED, closed_at=now)


def _open_slots(comparison: Comparison, project: Project, now) -> int:
    active = Assignment.objects.filter(comparison=comparison, state=AssignmentState.ACTIVE, expires_at__gt=now).count()
    return project.overlap - comparison.human_judgments - active


def assignment_claim(*, project: Project, user: AbstractBaseUser) -> Assignment | None:
    """Lease the next item to `user`, or return the lease they already hold. None: nothing left.

    Order: the person's own open lease; then items others already started (so they finish);
    then priority, then age. A person never gets an item they judged or skipped.
    """
    now = timezone.now()
    with transaction.atomic():
        leases_expire(project=project, now=now)
        mine = (
            Assignment.objects.filter(
                comparison__project=project, user=user, state=AssignmentState.ACTIVE, expires_at__gt=now
            )
            .select_related("comparison")
            .first()
        )
        if mine:
            return mine
        done_by_me = Assignment.objects.filter(
            user=user, state__in=[AssignmentState.SUBMITTED, AssignmentState.SKIPPED, AssignmentState.ACTIVE]
        ).values("comparison_id")
        candidates = (
            Comparison.objects.filter(project=project, status=ComparisonStatus.OPEN)
            .exclude(pk__in=done_by_me)
            .exclude(judgments__annotator=user)
            .annotate(
                started=F("human_judgments") + Count("assignments", filter=Q(assignments__state=AssignmentState.ACTIVE))
            )
            .filter(started__lt=project.overlap)
            .order_by("-started", "-priority", "id")
            .values_list("pk", flat=True)[:CANDIDATE_WINDOW]
        )
        ids = list(candidates)
        if not ids:
            return None
        locked = Comparison.objects.filter(pk__in=ids).order_by("-priority", "id")
        if connection.features.has_select_for_update_skip_locked:
            locked = locked.select_for_update(skip_locked=True, of=("self",))
        by_id = {c.pk: c for c in locked}
        for pk in ids:  # keep the candidate order
            comparison = by_id.get(pk)
            if comparison is None or comparison.status != ComparisonStatus.OPEN:
                continue
            if _open_slots(comparison, project, now) <= 0:
                continue
            try:
                with transaction.atomic():
                    return Assignment.objects.create(
                        comparison=comparison,
                        user=user,
                        swapped=_rng.random() < 0.5,
                        expires_at=now + timedelta(minutes=project.lease_minutes),
                    )
            except IntegrityError:
                continue  # this person already holds a lease on it (a concurrent claim of theirs)
    return None


def _lease_for_update(*, assignment_id: int, user: AbstractBaseUser) -> Assignment:
    try:
        return (
            Assignment.objects.select_for_update()
            .select_related("comparison", "comparison__project")
            .get(pk=assignment_id, user=user)
        )
    except Assignment.DoesNotExist:
        raise QueueError("No such lease.") from None


def assignment_skip(*, assignment_id: int, user: AbstractBaseUser) -> Assignment:
    """Give the item back and never see it again."""
    with transaction.atomic():
        lease = _lease_for_update(assignment_id=assignment_id, user=user)
        if lease.state == AssignmentState.ACTIVE:
            lease.state, lease.closed_at = AssignmentState.SKIPPED, timezone.now()
            lease.save(update_fields=["state", "closed_at"])
        return lease


def assignment_release(*, assignment_id: int, user: AbstractBaseUser) -> Assignment:
    """Give the item back to the pool (the person may get it again later)."""
    with transaction.atomic():
        lease = _lease_for_update(assignment_id=assignment_id, user=user)
        if lease.state == AssignmentState.ACTIVE:
            lease.state, lease.closed_at = AssignmentState.RELEASED, timezone.now()
            lease.save(update_fields=["state", "closed_at"])
        return lease


SHOWN_TO_CHOICE = {"left": (Choice.A, Choice.B), "right": (Choice.B, Choice.A)}


@dataclass(frozen=True)
class Submission:
    shown_choice: str  # "left" | "right" | "tie" | "both_bad"
    strength: str = ""
    rationale: str = ""
    principle_choices: dict | None = None
    time_spent_ms: int | None = None
    submission_key: str = ""


def shown_to_choice(*, shown_choice: str, swapped: bool) -> str:
    if shown_choice in ("tie", "both_bad"):
        return Choice(shown_choice)
    if shown_choice not in SHOWN_TO_CHOICE:
        raise QueueError(f"unknown choice {shown_choice!r}: use left, right, tie or both_bad")
    left_is, right_is = SHOWN_TO_CHOICE[shown_choice]
    return right_is if swapped else left_is


def judgment_submit(*, assignment_id: int, user: AbstractBaseUser, submission: Submission) -> Judgment:
    """Store a person's verdict on their leased item. Idempotent.

    The same submission key (or a second submit on the same lease) returns the first judgment
    instead of storing another. Locks the lease row, then the comparison row.
    """
    with transaction.atomic():
        lease = _lease_for_update(assignment_id=assignment_id, user=user)
        existing = Judgment.objects.filter(comparison_id=lease.comparison_id, annotator=user, source=Source.HUMAN)
        if submission.submission_key:
            existing = Judgment.objects.filter(
                Q(annotator=user, submission_key=submission.submission_key)
                | Q(comparison_id=lease.comparison_id, annotator=user, source=Source.HUMAN)
            )
        first = existing.first()
        if first is not None:
            return first
        now = timezone.now()
        if lease.state != AssignmentState.ACTIVE:
            raise QueueError(f"This lease is {lease.state}; claim the item again.")
        comparison = Comparison.objects.select_for_update().get(pk=lease.comparison_id)
        project = lease.comparison.project
        if project.require_rationale and not submission.rationale.strip():
            raise QueueError("This project requires a rationale.")
        choice = shown_to_choice(shown_choice=submission.shown_choice, swapped=lease.swapped)
        left, right = (
            (comparison.candidate_b_id, comparison.candidate_a_id)
            if lease.swapped
            else (comparison.candidate_a_id, comparison.candidate_b_id)
        )
        judgment = Judgment.objects.create(
            comparison=comparison,
            source=Source.HUMAN,
            annotator=user,
            assignment=lease,
            choice=choice,
            shown_left_id=left,
            shown_right_id=right,
            strength=submission.strength,
            rationale=submission.rationale,
            principle_choices=submission.principle_choices or {},
            time_spent_ms=submission.time_spent_ms,
            submission_key=submission.submission_key,
        )
        lease.state, lease.closed_at = AssignmentState.SUBMITTED, now
        lease.save(update_fields=["state", "closed_at"])
        comparison.human_judgments = F("human_judgments") + 1
        comparison.save(update_fields=["human_judgments"])
        comparison.refresh_from_db(fields=["human_judgments"])
        if comparison.human_judgments >= project.overlap:
            comparison.status = ComparisonStatus.COMPLETE
            comparison.save(update_fields=["status"])
        return judgment
