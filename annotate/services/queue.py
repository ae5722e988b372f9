"""The labeling queue: leasing items to people, skipping, releasing and submitting judgments.

Invariants (for every comparison C and person P):

1. Overlap: `human_judgments + open_leases <= project.overlap`, where `open_leases` is the number of
   ACTIVE leases on C. Both counters live on C's row and change only while that row is locked, in
   the same transaction as the lease rows they count, so the count is exact.
2. A person holds or gets an item at most once: the partial unique index
   `assignment_once_per_person` allows one ACTIVE / SUBMITTED / SKIPPED lease per (C, P); a
   person's human judgment is unique per C (`judgment_one_per_person`).
3. A person holds at most one active lease per project (claims by one person are serialised).

How claim keeps invariant 1 under concurrency:

- PostgreSQL: one statement finds and locks the first eligible row,
  `... WHERE status='open' AND human_judgments + open_leases < overlap AND NOT EXISTS(...)
  ORDER BY ... LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED`. A row locked by another claimer is skipped
  (no waiting, no convoy); a row changed and committed since the statement's snapshot is re-checked
  against the WHERE clause on its newest version before it is returned (PostgreSQL's EvalPlanQual),
  so the counters we read under our lock are current, and no one can change them until we commit.
  The walk follows the partial index `comparison_claim_idx`, whose key is exactly the ORDER BY, so a
  claim costs O(log n) plus the rows it skips, not a COUNT over the project (`claim_query` runs in
  phases so that a person far ahead of the others never walks their whole backlog).
- SQLite: every transaction begins IMMEDIATE (see settings), so claims are serialised by the
  database's write lock and the same statement (without row locks) is race-free.

Lock order, to rule out deadlocks: a person's advisory lock (claim only), then lease rows, then
comparison rows (in id order when several). Claimers never wait on a comparison row (SKIP LOCKED);
the expiry sweep never waits on a lease row (SKIP LOCKED).

Expiry: a lease past `expires_at` is reclaimed by `leases_expire`, which every claim runs first
(so slots come back exactly when someone wants work). When nothing is due it is one index probe.
A submit on a lease that is past its time but not yet reclaimed is accepted: its slot was never
given to anyone else. A submit on a reclaimed lease is accepted only if the item still has room.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.utils import timezone

from annotate import selectors
from annotate.models import (
    Assignment,
    AssignmentState,
    Candidate,
    Choice,
    Comparison,
    ComparisonKind,
    ComparisonStatus,
    Judgment,
    Principle,
    Project,
    Source,
)
from annotate.services.best_of_n import PickError, derived_judgments_store, pick_validate
from annotate.services.corrections import CorrectionError, correction_store

EXPIRE_BATCH = 500
# States in which a lease keeps its person from getting the same item again.
HOLDING_STATES = (AssignmentState.ACTIVE, AssignmentState.SUBMITTED, AssignmentState.SKIPPED)
# Namespace of the per-person advisory lock (any constant int4; "Cq").
_CLAIM_LOCK_NAMESPACE = 0x4371
_rng = random.SystemRandom()


class QueueError(Exception):
    """A queue operation that cannot be done (for example a lease that is no longer open)."""


class LeaseNotFound(QueueError):
    """No such lease for this person (or not in this project)."""


class LeaseClosed(QueueError):
    """The lease was submitted, skipped, released or reclaimed: claim the item again."""


class InvalidVerdict(QueueError):
    """The verdict does not fit the item; `field` names the offending input when known."""

    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message)
        self.field = field


class Priority(IntEnum):
    """Suggested `Comparison.priority` levels (higher is served first, after items in progress).

    Routing sets them: adjudication and audit items first, then human or AI disagreements, then
    judge uncertainty (100-199, scaled by uncertainty, see `queue_priority`), then everything else.
    """

    DEFAULT = 0
    JUDGE_UNCERTAIN = 100
    DISAGREEMENT = 200
    AUDIT = 300
    ADJUDICATION = 400


def queue_priority(*, reason: str, uncertainty: float | None = None) -> int:
    """The priority for an item routed to people for `reason` (a `Priority` name, any case).

    For JUDGE_UNCERTAIN, `uncertainty` in [0, 1] orders items within the band (1 = most unsure).
    """
    try:
        level = Priority[reason.upper()]
    except KeyError:
        raise ValueError(f"unknown priority reason {reason!r}: one of {[p.name.lower() for p in Priority]}") from None
    if level == Priority.JUDGE_UNCERTAIN and uncertainty is not None:
        return int(level) + round(min(max(uncertainty, 0.0), 1.0) * 99)
    return int(level)


def _skip_locked() -> bool:
    return connection.features.has_select_for_update_skip_locked


def _locked(qs: QuerySet, *, skip_locked: bool = False) -> QuerySet:
    """`qs` with row locks where the backend has them (SQLite serialises whole transactions)."""
    if not connection.features.has_select_for_update:
        return qs
    options = {"of": ("self",)}
    if connection.features.has_select_for_no_key_update:
        # FOR NO KEY UPDATE: we never change keys, and this does not block other transactions'
        # inserts of leases or judgments that reference the row (their FK check takes KEY SHARE).
        options["no_key"] = True
    if skip_locked and _skip_locked():
        options["skip_locked"] = True
    return qs.select_for_update(**options)


def leases_expire(*, now: datetime | None = None, limit: int = EXPIRE_BATCH, project: Project | None = None) -> int:
    """Close active leases whose time is up and give their slots back; returns how many.

    Expiry is by time only, so by default it sweeps all projects (`project` narrows it). Lease rows
    another transaction holds are skipped (a submit on them is in flight); comparison rows are locked
    in id order so that concurrent sweeps cannot deadlock.
    """
    with transaction.atomic():
        return _expire_due(now=now or timezone.now(), limit=limit, project=project)


def _expire_due(*, now: datetime, limit: int = EXPIRE_BATCH, project: Project | None = None) -> int:
    """The body of `leases_expire`; the caller holds a transaction."""
    due = Assignment.objects.filter(state=AssignmentState.ACTIVE, expires_at__lte=now)
    if project is not None:
        due = due.filter(comparison__project=project)
    rows = list(_locked(due.order_by("expires_at"), skip_locked=True).values_list("pk", "comparison_id")[:limit])
    if not rows:
        return 0
    per_item = Counter(comparison_id for _, comparison_id in rows)
    list(_locked(Comparison.objects.filter(pk__in=list(per_item)).order_by("pk")).values_list("pk", flat=True))
    Assignment.objects.filter(pk__in=[pk for pk, _ in rows]).update(state=AssignmentState.EXPIRED, closed_at=now)
    by_count: dict[int, list[int]] = {}
    for comparison_id, count in per_item.items():
        by_count.setdefault(count, []).append(comparison_id)
    for count, ids in by_count.items():
        Comparison.objects.filter(pk__in=ids).update(open_leases=F("open_leases") - count)
    return len(rows)


def _serialise_person_and_check_due(*, user: AbstractBaseUser, now: datetime) -> bool:
    """Make one person's claims run one after the other; say whether any lease is due to expire.

    PostgreSQL: a transaction-scoped advisory lock on the person (SQLite's IMMEDIATE transactions
    already serialise everything). Without it, two claims of one person (two tabs, a retrying
    client) could each lease a different item, or race on the NOT EXISTS test of the same item.
    The due check is a hint (it may read a snapshot from just before the lock): the sweep itself
    locks and re-checks. One round trip for both, as this runs on every claim.
    """
    # Only table names (from the models) are interpolated; every value is a bound parameter.
    due = f"SELECT 1 FROM {Assignment._meta.db_table} WHERE state = 'active' AND expires_at <= %s"  # noqa: S608
    when = connection.ops.adapt_datetimefield_value(now)  # SQLite stores datetimes as text
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT EXISTS ({due}) FROM (SELECT pg_advisory_xact_lock(%s, %s)) AS person_lock",  # noqa: S608
                [when, _CLAIM_LOCK_NAMESPACE, user.pk % 2_147_483_647],
            )
        else:
            cursor.execute(f"SELECT EXISTS ({due})", [when])
        return bool(cursor.fetchone()[0])


# How many of the top in-progress items the first phase of a claim looks at (see `claim_query`).
IN_PROGRESS_WINDOW = 200
CLAIM_PHASES = ("in_progress", "fresh", "any")


def claim_query(
    *, phase: str, project: Project, user: AbstractBaseUser, skip_locked: bool, exclude: list[int] | None = None
) -> tuple[str, list]:
    """SQL and parameters of one phase of the claim: the first open item with a free slot that the
    person has not held, judged or skipped, in serving order, locked (PostgreSQL) and passed over
    when another claimer holds it.

    Its WHERE and ORDER BY are exactly the predicate and key of the partial index
    `comparison_claim_idx`, so PostgreSQL walks that index and stops at the first row it can lock.
    Phases, tried in this order, keep a claim cheap when one person is far ahead of the others
    (their own judged-but-unfinished items sit at the top of the index, and walking past all of them
    would cost O(their backlog)):

    - "in_progress": items others started, among the top IN_PROGRESS_WINDOW of them (skipped when
      overlap is 1: nothing can be in progress and still have room);
    - "fresh": items nobody started (an index range that begins right at them);
    - "any": the full walk, only reached when neither found anything (the end of a project).

    Written as SQL (not the ORM) because it runs on every claim and is the same on both databases.
    """
    comparison, assignment, judgment = (m._meta.db_table for m in (Comparison, Assignment, Judgment))
    started = "(c.human_judgments + c.open_leases)"
    where = [f"c.project_id = %s AND c.status = 'open' AND {started} < %s"]
    params: list = [project.pk, project.overlap]
    if phase == "fresh":
        where.append(f"{started} = 0")
    elif phase == "in_progress":
        where.append(
            f"c.id IN (SELECT c.id FROM {comparison} c WHERE c.project_id = %s AND c.status = 'open' "  # noqa: S608
            f"AND {started} < %s AND {started} > 0 ORDER BY {started} DESC, c.priority DESC, c.id ASC LIMIT %s)"
        )
        params += [project.pk, project.overlap, IN_PROGRESS_WINDOW]
    elif phase != "any":
        raise ValueError(f"unknown claim phase {phase!r}")
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.comparison_id = c.id AND a.user_id = %s "  # noqa: S608
        "AND a.state IN ('active', 'submitted', 'skipped'))"
    )
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {judgment} j WHERE j.comparison_id = c.id AND j.annotator_id = %s "  # noqa: S608
        "AND j.source = 'human')"
    )
    params += [user.pk, user.pk]
    if exclude:
        where.append(f"c.id NOT IN ({', '.join(['%s'] * len(exclude))})")
        params += list(exclude)
    lock = " FOR NO KEY UPDATE OF c SKIP LOCKED" if skip_locked else ""
    # Only table names (from the models) are interpolated; every value is a bound parameter.
    sql = (
        f"SELECT c.id, c.kind, c.candidate_set_id, c.human_judgments, c.open_leases FROM {comparison} c "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY {started} DESC, c.priority DESC, c.id ASC LIMIT 1{lock}"
    )
    return sql, params


def _claim_candidate(*, project: Project, user: AbstractBaseUser, exclude: list[int]) -> tuple | None:
    phases = CLAIM_PHASES if project.overlap > 1 else ("fresh", "any")
    for phase in phases:
        sql, params = claim_query(phase=phase, project=project, user=user, skip_locked=_skip_locked(), exclude=exclude)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is not None:
            return row
    return None


def lease_current(*, project: Project, user: AbstractBaseUser, now: datetime | None = None) -> Assignment | None:
    """The person's active, unexpired lease in this project, if any (oldest first)."""
    now = now or timezone.now()
    return (
        Assignment.objects.filter(
            user=user, state=AssignmentState.ACTIVE, expires_at__gt=now, comparison__project_id=project.pk
        )
        .order_by("id")
        .first()
    )


def assignment_claim(*, project: Project, user: AbstractBaseUser) -> Assignment | None:
    """Lease the next item to `user`, or return the lease they already hold. None: nothing left.

    PermissionDenied unless `user` labels in this project (annotator, adjudicator, manager, staff).

    Order: the person's own open lease; then items others already started (more people first, so
    they finish); then priority; then age. A person never gets an item they hold, judged or skipped
    (released or expired items may come back to them). The lease lasts `project.lease_minutes`.
    """
    if not selectors.roles_in(user=user, project=project) & set(selectors.LABELLER_ROLES):
        raise PermissionDenied("Only the project's annotators, adjudicators and managers get items.")
    now = timezone.now()
    with transaction.atomic():
        if _serialise_person_and_check_due(user=user, now=now):
            _expire_due(now=now)
        mine = lease_current(project=project, user=user, now=now)
        if mine is not None:
            return mine
        rejected: list[int] = []
        for _attempt in range(3):
            row = _claim_candidate(project=project, user=user, exclude=rejected)
            if row is None:
                return None
            pk, kind, candidate_set_id, human_judgments, open_leases = row
            # Holds by construction (see the module docstring); re-checked so that a backend without
            # those guarantees can only ever under-assign, never over-assign.
            if human_judgments + open_leases >= project.overlap:
                rejected.append(pk)
                continue
            Comparison.objects.filter(pk=pk).update(open_leases=F("open_leases") + 1)
            display_order: list[int] = []
            if kind == ComparisonKind.BEST_OF_N:
                display_order = list(
                    Candidate.objects.filter(candidate_set_id=candidate_set_id)
                    .order_by("position")
                    .values_list("pk", flat=True)
                )
                _rng.shuffle(display_order)
            return Assignment.objects.create(
                comparison_id=pk,
                user=user,
                swapped=_rng.random() < 0.5,
                display_order=display_order,
                expires_at=now + timedelta(minutes=project.lease_minutes),
            )
    return None


def _lease_for_update(*, assignment_id: int, user: AbstractBaseUser, project: Project | None) -> Assignment:
    leases = Assignment.objects.filter(pk=assignment_id, user=user)
    if project is not None:
        leases = leases.filter(comparison__project=project)
    lease = _locked(leases).select_related("comparison", *([] if project else ["comparison__project"])).first()
    if lease is not None and project is not None:
        lease.comparison.project = project
    if lease is None:
        raise LeaseNotFound("No such lease.")
    return lease


def _comparison_for_update(pk: int) -> Comparison:
    return _locked(Comparison.objects.all()).get(pk=pk)


def _holds_other(lease: Assignment) -> bool:
    return (
        Assignment.objects.filter(comparison_id=lease.comparison_id, user_id=lease.user_id, state__in=HOLDING_STATES)
        .exclude(pk=lease.pk)
        .exists()
    )


def _close(lease: Assignment, state: str, now: datetime) -> None:
    """Close an ACTIVE lease and give its slot back. The caller holds the lease's lock; the UPDATE
    takes the comparison's (lease, then comparison: the module's lock order)."""
    Comparison.objects.filter(pk=lease.comparison_id).update(open_leases=F("open_leases") - 1)
    lease.state, lease.closed_at = state, now
    lease.save(update_fields=["state", "closed_at"])


def assignment_skip(*, assignment_id: int, user: AbstractBaseUser, project: Project | None = None) -> Assignment:
    """Give the item back and never see it again (also after the lease expired)."""
    with transaction.atomic():
        lease = _lease_for_update(assignment_id=assignment_id, user=user, project=project)
        now = timezone.now()
        if lease.state == AssignmentState.ACTIVE:
            _close(lease, AssignmentState.SKIPPED, now)
        elif lease.state == AssignmentState.EXPIRED and not _holds_other(lease):
            lease.state, lease.closed_at = AssignmentState.SKIPPED, now
            lease.save(update_fields=["state", "closed_at"])
        return lease


def assignment_release(*, assignment_id: int, user: AbstractBaseUser, project: Project | None = None) -> Assignment:
    """Give the item back to the pool (the person may get it again later)."""
    with transaction.atomic():
        lease = _lease_for_update(assignment_id=assignment_id, user=user, project=project)
        if lease.state == AssignmentState.ACTIVE:
            _close(lease, AssignmentState.RELEASED, timezone.now())
        return lease


SHOWN_CHOICES = ("left", "right", "tie", "both_bad")
SHOWN_TO_CHOICE = {"left": (Choice.A, Choice.B), "right": (Choice.B, Choice.A)}


@dataclass(frozen=True)
class Submission:
    """A verdict as the person saw the item.

    Pairs: `shown_choice` is left / right / tie / both_bad (left is what was shown first).
    Best-of-N: `best` (and optionally `worst`) are 1-based positions in the order shown.
    Corrections: `correction_text` is the improved answer (see annotate.services.corrections).
    `principle_choices` maps principle ids to a shown choice. The same `submission_key` twice
    stores one judgment.
    """

    shown_choice: str = ""
    strength: str = ""
    rationale: str = ""
    principle_choices: dict | None = None
    time_spent_ms: int | None = None
    submission_key: str = ""
    best: int | None = None
    worst: int | None = None
    correction_text: str = ""


def shown_to_choice(*, shown_choice: str, swapped: bool) -> str:
    if shown_choice in ("tie", "both_bad"):
        return Choice(shown_choice)
    if shown_choice not in SHOWN_TO_CHOICE:
        raise InvalidVerdict(f"unknown choice {shown_choice!r}: use left, right, tie or both_bad", field="choice")
    left_is, right_is = SHOWN_TO_CHOICE[shown_choice]
    return right_is if swapped else left_is


def _principle_choices(*, project: Project, given: dict | None, swapped: bool) -> dict:
    if not given:
        return {}
    known = {str(pk) for pk in Principle.objects.filter(project=project).values_list("pk", flat=True)}
    unknown = sorted(str(k) for k in given if str(k) not in known)
    if unknown:
        raise InvalidVerdict(f"unknown principle ids for this project: {', '.join(unknown)}", field="principle_choices")
    try:
        return {
            str(k): Choice.NA if v == "na" else shown_to_choice(shown_choice=str(v), swapped=swapped)
            for k, v in given.items()
            if v not in (None, "")
        }
    except InvalidVerdict as exc:
        raise InvalidVerdict(str(exc), field="principle_choices") from None


def _replayed(judgment: Judgment) -> Judgment:
    judgment.replayed = True
    return judgment


def _earlier_judgments(
    *, lease: Assignment, user: AbstractBaseUser, key: str
) -> tuple[Judgment | None, Judgment | None]:
    """(the first result of this submission, another human judgment of this person on the item).

    The first is the judgment stored under `key`, or the one stored on this lease; the second is
    one that came another way (a best-of-N pick implying this pair). One query for both.
    """
    match = Q(comparison_id=lease.comparison_id, source=Source.HUMAN)
    if key:
        match |= Q(submission_key=key)
    first = other = None
    for judgment in Judgment.objects.filter(match, annotator=user).order_by("id")[:3]:
        if (key and judgment.submission_key == key) or (
            judgment.assignment_id == lease.pk and judgment.derived_from_id is None
        ):
            first = first or judgment
        elif judgment.comparison_id == lease.comparison_id:
            other = other or judgment
    return first, other


def judgment_submit(
    *, assignment_id: int, user: AbstractBaseUser, submission: Submission, project: Project | None = None
) -> Judgment:
    """Store a person's verdict on their leased item and close the lease. Idempotent.

    The same submission key, or a second submit on the same lease, returns the first judgment
    (with `.replayed = True`) and stores nothing. Locks the lease row, then the comparison row.
    The item becomes COMPLETE when `project.overlap` people have judged it. A best-of-N pick also
    stores the pairwise outcomes it implies (see annotate.services.best_of_n).
    `project`, when given, must be the lease's project. Raises LeaseNotFound (not theirs),
    LeaseClosed (no longer open) or InvalidVerdict, all QueueErrors.
    """
    key = (submission.submission_key or "").strip()
    with transaction.atomic():
        lease = _lease_for_update(assignment_id=assignment_id, user=user, project=project)
        first, earlier = _earlier_judgments(lease=lease, user=user, key=key)
        if first is not None:
            return _replayed(first)
        comparison = lease.comparison  # kind and candidates do not change; counters are re-read below
        project = comparison.project
        now = timezone.now()
        was_active = lease.state == AssignmentState.ACTIVE
        if not was_active:
            comparison = _comparison_for_update(lease.comparison_id)
            late_but_free = (
                lease.state == AssignmentState.EXPIRED
                and comparison.status == ComparisonStatus.OPEN
                and comparison.human_judgments + comparison.open_leases < project.overlap
                and not _holds_other(lease)
            )
            if not late_but_free:
                raise LeaseClosed(f"This lease is {lease.state}; claim the item again.")
        if earlier is not None:
            # Already judged by this person another way (a best-of-N pick implying this pair):
            # keep that verdict, close the lease.
            if was_active:
                _close(lease, AssignmentState.SUBMITTED, now)
            return _replayed(earlier)
        if project.require_rationale and not submission.rationale.strip():
            raise InvalidVerdict("This project requires a rationale.", field="rationale")
        fields = {
            "comparison": comparison,
            "source": Source.HUMAN,
            "annotator": user,
            "assignment": lease,
            "strength": submission.strength,
            "rationale": submission.rationale,
            "time_spent_ms": submission.time_spent_ms,
            "submission_key": key,
        }
        if comparison.kind == ComparisonKind.CORRECTION:
            if submission.shown_choice or submission.best is not None:
                raise InvalidVerdict("A correction item takes the corrected text.", field="correction")
        elif comparison.kind == ComparisonKind.BEST_OF_N:
            if submission.shown_choice:
                raise InvalidVerdict(
                    "A best-of-N item takes best (and optionally worst), not a left/right choice.", field="choice"
                )
            try:
                best, worst = pick_validate(
                    display_order=lease.display_order, best=submission.best, worst=submission.worst
                )
            except PickError as exc:
                raise InvalidVerdict(str(exc), field=exc.field) from None
            fields |= {
                "choice": Choice.PICK,
                "best_candidate_id": best,
                "worst_candidate_id": worst,
                "display_order": lease.display_order,
                "principle_choices": {},
            }
        else:
            if submission.best is not None or submission.worst is not None:
                raise InvalidVerdict(
                    "A pair takes a left / right / tie / both_bad choice, not best or worst.", field="best"
                )
            left, right = (
                (comparison.candidate_b_id, comparison.candidate_a_id)
                if lease.swapped
                else (comparison.candidate_a_id, comparison.candidate_b_id)
            )
            fields |= {
                "choice": shown_to_choice(shown_choice=submission.shown_choice, swapped=lease.swapped),
                "shown_left_id": left,
                "shown_right_id": right,
                "principle_choices": _principle_choices(
                    project=project, given=submission.principle_choices, swapped=lease.swapped
                ),
            }
        try:
            with transaction.atomic():
                if comparison.kind == ComparisonKind.CORRECTION:
                    judgment = correction_store(
                        judgment_fields=fields, original=comparison.candidate_a, text=submission.correction_text
                    )
                else:
                    judgment = Judgment.objects.create(**fields)
        except CorrectionError as exc:
            raise InvalidVerdict(str(exc), field="correction") from None
        except IntegrityError:
            # The same key used on another lease (a client bug): return the first result.
            first = Judgment.objects.filter(annotator=user, submission_key=key).first() if key else None
            if first is None:
                raise
            return _replayed(first)
        if comparison.kind == ComparisonKind.BEST_OF_N:
            derived_judgments_store(pick=judgment)
        # One UPDATE takes the row lock and decides completion on the row's current values (SET
        # expressions see the row as locked), so concurrent submits on one item cannot both miss it.
        Comparison.objects.filter(pk=comparison.pk).update(
            human_judgments=F("human_judgments") + 1,
            open_leases=F("open_leases") - (1 if was_active else 0),
            status=Case(
                When(
                    status=ComparisonStatus.OPEN,
                    human_judgments__gte=project.overlap - 1,
                    then=Value(ComparisonStatus.COMPLETE),
                ),
                default=F("status"),
            ),
        )
        lease.state, lease.closed_at = AssignmentState.SUBMITTED, now
        lease.save(update_fields=["state", "closed_at"])
        judgment.replayed = False
        return judgment
