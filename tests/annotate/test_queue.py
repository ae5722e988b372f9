"""The queue engine: order, overlap, leases, expiry, skip, release, idempotent submit, best-of-N."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from annotate import selectors
from annotate.models import (
    Assignment,
    AssignmentState,
    Choice,
    Comparison,
    ComparisonKind,
    ComparisonStatus,
    Judgment,
    Principle,
)
from annotate.services.best_of_n import (
    PairOutcome,
    PickError,
    comparison_create_best_of_n,
    comparisons_create_best_of_n,
    pairwise_outcomes,
)
from annotate.services.queue import (
    InvalidVerdict,
    LeaseClosed,
    LeaseNotFound,
    Priority,
    QueueError,
    Submission,
    assignment_claim,
    assignment_release,
    assignment_skip,
    judgment_submit,
    leases_expire,
    queue_priority,
)
from tests.factories import (
    CandidateFactory,
    CandidateSetFactory,
    MembershipFactory,
    ProjectFactory,
    PromptFactory,
    UserFactory,
    make_pair,
)

pytestmark = pytest.mark.django_db


def people(project, n):
    users = [UserFactory() for _ in range(n)]
    for user in users:
        MembershipFactory(project=project, user=user)
    return users


def clean(project):
    assert selectors.queue_violations(project=project) == {
        "double_assignments": 0,
        "overlap_violations": 0,
        "counter_drift": 0,
        "lost_submissions": 0,
    }


def submit(lease, user, **kwargs):
    kwargs.setdefault("shown_choice", "left")
    return judgment_submit(assignment_id=lease.pk, user=user, submission=Submission(**kwargs))


def best_of_n_item(project, n=4, **kwargs):
    prompt = PromptFactory(project=project)
    cset = CandidateSetFactory(prompt=prompt, n=n)
    candidates = [CandidateFactory(candidate_set=cset, position=i, text=f"Option {i}") for i in range(n)]
    return comparison_create_best_of_n(candidate_set=cset, **kwargs), candidates


# --- order ---------------------------------------------------------------------------------------


def test_order_is_in_progress_first_then_priority_then_age():
    project = ProjectFactory(overlap=2)
    first, second, third = people(project, 3)
    old = make_pair(project)
    urgent = make_pair(project, priority=Priority.ADJUDICATION)
    newer_urgent = make_pair(project, priority=Priority.ADJUDICATION)
    # Priority beats age; age breaks ties.
    lease = assignment_claim(project=project, user=first)
    assert lease.comparison_id == urgent.pk
    # An item someone started comes before a fresh one of the same (or higher) priority.
    assert assignment_claim(project=project, user=second).comparison_id == urgent.pk
    assert assignment_claim(project=project, user=third).comparison_id == newer_urgent.pk
    submit(lease, first)
    # first now gets an item third started, not the untouched old one.
    assert assignment_claim(project=project, user=first).comparison_id == newer_urgent.pk
    assert old.assignments.count() == 0
    clean(project)


def test_in_progress_beats_higher_priority():
    project = ProjectFactory(overlap=2)
    first, second = people(project, 2)
    started = make_pair(project)
    lease = assignment_claim(project=project, user=first)
    submit(lease, first)
    make_pair(project, priority=Priority.AUDIT)
    assert assignment_claim(project=project, user=second).comparison_id == started.pk


def test_queue_priority_levels():
    assert (
        queue_priority(reason="adjudication") > queue_priority(reason="audit") > queue_priority(reason="disagreement")
    )
    assert queue_priority(reason="disagreement") > queue_priority(reason="judge_uncertain", uncertainty=1.0)
    assert queue_priority(reason="judge_uncertain", uncertainty=0.9) > queue_priority(
        reason="judge_uncertain", uncertainty=0.1
    )
    assert queue_priority(reason="judge_uncertain", uncertainty=0.0) > queue_priority(reason="default")
    with pytest.raises(ValueError, match="unknown priority"):
        queue_priority(reason="vip")


# --- overlap and distinct people -------------------------------------------------------------------


def test_overlap_counts_leases_and_judgments_and_never_the_same_person_twice():
    project = ProjectFactory(overlap=2)
    a, b, c = people(project, 3)
    item = make_pair(project)
    la = assignment_claim(project=project, user=a)
    lb = assignment_claim(project=project, user=b)
    assert la.comparison_id == lb.comparison_id == item.pk
    assert assignment_claim(project=project, user=c) is None  # two leases fill overlap 2
    item.refresh_from_db()
    assert item.open_leases == 2
    submit(la, a)
    assert assignment_claim(project=project, user=a) is None  # never the same item again
    assert assignment_claim(project=project, user=c) is None  # 1 judgment + 1 lease = 2
    submit(lb, b)
    item.refresh_from_db()
    assert (item.status, item.human_judgments, item.open_leases) == (ComparisonStatus.COMPLETE, 2, 0)
    assert assignment_claim(project=project, user=c) is None
    clean(project)


def test_claim_returns_the_lease_already_held():
    project = ProjectFactory()
    (a,) = people(project, 1)
    make_pair(project)
    make_pair(project)
    lease = assignment_claim(project=project, user=a)
    assert assignment_claim(project=project, user=a).pk == lease.pk
    assert Assignment.objects.filter(user=a, state="active").count() == 1


def test_other_projects_items_are_never_served():
    project, other = ProjectFactory(), ProjectFactory()
    (a,) = people(project, 1)
    make_pair(other)
    assert assignment_claim(project=project, user=a) is None


def test_non_open_items_are_not_served():
    project = ProjectFactory()
    (a,) = people(project, 1)
    for status in (ComparisonStatus.COMPLETE, ComparisonStatus.ADJUDICATION, ComparisonStatus.RESOLVED):
        make_pair(project, status=status)
    assert assignment_claim(project=project, user=a) is None


# --- skip, release, expiry -----------------------------------------------------------------------


def test_skip_gives_the_slot_back_and_never_serves_it_again():
    project = ProjectFactory(overlap=1)
    a, b = people(project, 2)
    item = make_pair(project)
    lease = assignment_claim(project=project, user=a)
    assert assignment_skip(assignment_id=lease.pk, user=a).state == AssignmentState.SKIPPED
    assert assignment_claim(project=project, user=a) is None
    assert assignment_claim(project=project, user=b).comparison_id == item.pk
    # Skipping twice is a no-op.
    assert assignment_skip(assignment_id=lease.pk, user=a).state == AssignmentState.SKIPPED
    clean(project)


def test_release_gives_the_item_back_to_everyone_including_the_person():
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    item = make_pair(project)
    lease = assignment_claim(project=project, user=a)
    assert assignment_release(assignment_id=lease.pk, user=a).state == AssignmentState.RELEASED
    item.refresh_from_db()
    assert item.open_leases == 0
    again = assignment_claim(project=project, user=a)
    assert again.comparison_id == item.pk and again.pk != lease.pk
    with pytest.raises(LeaseClosed):
        submit(lease, a)
    submit(again, a)
    clean(project)


def test_someone_elses_lease_cannot_be_skipped_released_or_submitted():
    project = ProjectFactory()
    a, b = people(project, 2)
    make_pair(project)
    lease = assignment_claim(project=project, user=a)
    for action in (assignment_skip, assignment_release):
        with pytest.raises(LeaseNotFound):
            action(assignment_id=lease.pk, user=b)
    with pytest.raises(LeaseNotFound):
        submit(lease, b)
    other = ProjectFactory()
    with pytest.raises(LeaseNotFound):
        assignment_skip(assignment_id=lease.pk, user=a, project=other)


def _expire(lease):
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_expired_lease_is_reclaimed_by_the_next_claim():
    project = ProjectFactory(overlap=1, lease_minutes=15)
    a, b = people(project, 2)
    item = make_pair(project)
    lease = assignment_claim(project=project, user=a)
    assert timedelta(minutes=14) < lease.expires_at - timezone.now() <= timedelta(minutes=15)
    assert assignment_claim(project=project, user=b) is None
    _expire(lease)
    lease_b = assignment_claim(project=project, user=b)
    assert lease_b.comparison_id == item.pk
    lease.refresh_from_db()
    assert lease.state == AssignmentState.EXPIRED and lease.closed_at is not None
    # The late submit finds the slot taken: refused, nothing stored.
    with pytest.raises(LeaseClosed):
        submit(lease, a)
    assert Judgment.objects.count() == 0
    clean(project)


def test_late_submit_is_kept_when_the_slot_was_not_given_away():
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    item = make_pair(project)
    lease = assignment_claim(project=project, user=a)
    _expire(lease)
    submit(lease, a)  # past its time but never reclaimed
    item.refresh_from_db()
    assert item.status == ComparisonStatus.COMPLETE and item.open_leases == 0
    clean(project)


def test_late_submit_after_reclaim_is_kept_when_there_is_still_room():
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    item = make_pair(project)
    lease = assignment_claim(project=project, user=a)
    _expire(lease)
    assert leases_expire() == 1
    item.refresh_from_db()
    assert item.open_leases == 0
    judgment = submit(lease, a)
    assert judgment.assignment_id == lease.pk
    lease.refresh_from_db()
    item.refresh_from_db()
    assert lease.state == AssignmentState.SUBMITTED
    assert (item.human_judgments, item.open_leases, item.status) == (1, 0, ComparisonStatus.COMPLETE)
    clean(project)


def test_expiry_only_touches_leases_that_are_due():
    project = ProjectFactory(overlap=2)
    a, b = people(project, 2)
    make_pair(project)
    due = assignment_claim(project=project, user=a)
    fresh = assignment_claim(project=project, user=b)
    _expire(due)
    assert leases_expire() == 1
    assert leases_expire() == 0
    fresh.refresh_from_db()
    assert fresh.state == AssignmentState.ACTIVE
    clean(project)


def test_an_expired_item_can_come_back_to_its_person():
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    item = make_pair(project)
    lease = assignment_claim(project=project, user=a)
    _expire(lease)
    again = assignment_claim(project=project, user=a)
    assert again.pk != lease.pk and again.comparison_id == item.pk
    with pytest.raises(LeaseClosed):  # the old lease may not be used while the new one is open
        submit(lease, a)
    submit(again, a)
    clean(project)


# --- submit ---------------------------------------------------------------------------------------


def test_submit_is_idempotent_by_key_and_by_lease():
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    make_pair(project)
    make_pair(project)
    lease = assignment_claim(project=project, user=a)
    first = submit(lease, a, shown_choice="right", submission_key="k1")
    assert first.replayed is False
    again = submit(lease, a, shown_choice="left", submission_key="k1")
    assert again.pk == first.pk and again.replayed is True
    other_key = submit(lease, a, shown_choice="tie", submission_key="k2")
    assert other_key.pk == first.pk and other_key.choice == first.choice
    # The same key on another lease is a replay too: nothing new is stored.
    second = assignment_claim(project=project, user=a)
    replay = submit(second, a, shown_choice="left", submission_key="k1")
    assert replay.pk == first.pk
    assert Judgment.objects.count() == 1
    assert Judgment.objects.get().choice == first.choice


def test_submit_stores_the_verdict_in_the_items_terms():
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    item = make_pair(project)
    principle = Principle.objects.create(project=project, name="honesty", text="Be honest.")
    lease = assignment_claim(project=project, user=a)
    judgment = submit(
        lease,
        a,
        shown_choice="left",
        strength="clear",
        rationale="why",
        time_spent_ms=1500,
        principle_choices={str(principle.pk): "right"},
    )
    left, right = (item.candidate_b, item.candidate_a) if lease.swapped else (item.candidate_a, item.candidate_b)
    assert judgment.shown_left == left and judgment.shown_right == right
    assert judgment.choice == (Choice.B if lease.swapped else Choice.A)
    assert judgment.principle_choices == {str(principle.pk): Choice.A if lease.swapped else Choice.B}
    assert (judgment.strength, judgment.rationale, judgment.time_spent_ms) == ("clear", "why", 1500)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"shown_choice": "up"}, "choice"),
        ({"shown_choice": "left", "best": 1}, "best"),
        ({"shown_choice": "left", "principle_choices": {"999999": "left"}}, "principle_choices"),
    ],
)
def test_invalid_pair_verdicts_are_refused(kwargs, field):
    project = ProjectFactory()
    (a,) = people(project, 1)
    make_pair(project)
    lease = assignment_claim(project=project, user=a)
    with pytest.raises(InvalidVerdict) as info:
        submit(lease, a, **kwargs)
    assert info.value.field == field
    lease.refresh_from_db()
    assert lease.state == AssignmentState.ACTIVE and Judgment.objects.count() == 0


def test_rationale_required_when_the_project_says_so():
    project = ProjectFactory(require_rationale=True)
    (a,) = people(project, 1)
    make_pair(project)
    lease = assignment_claim(project=project, user=a)
    with pytest.raises(QueueError, match="rationale"):
        submit(lease, a, rationale="  ")
    assert submit(lease, a, rationale="A is correct").rationale == "A is correct"


# --- best-of-N ------------------------------------------------------------------------------------


def test_pairwise_outcomes_of_best_and_worst():
    assert pairwise_outcomes(candidate_ids=[1, 2, 3, 4], best=3) == [
        PairOutcome(3, 1),
        PairOutcome(3, 2),
        PairOutcome(3, 4),
    ]
    both = pairwise_outcomes(candidate_ids=[1, 2, 3, 4], best=3, worst=2)
    assert len(both) == 2 * 4 - 3
    assert set(both) == {PairOutcome(3, 1), PairOutcome(3, 2), PairOutcome(3, 4), PairOutcome(1, 2), PairOutcome(4, 2)}
    for bad in ({"best": 9}, {"best": 1, "worst": 1}, {"best": 1, "worst": 7}):
        with pytest.raises(PickError):
            pairwise_outcomes(candidate_ids=[1, 2, 3], **bad)


def test_best_of_n_pick_derives_pairs_and_exports_them(tmp_path):
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    item, candidates = best_of_n_item(project, n=4)
    assert comparison_create_best_of_n(candidate_set=item.candidate_set).pk == item.pk  # idempotent
    lease = assignment_claim(project=project, user=a)
    assert lease.comparison_id == item.pk
    assert sorted(lease.display_order) == sorted(c.pk for c in candidates)
    shown = lease.display_order
    best_id, worst_id = shown[2], shown[0]
    pick = submit(lease, a, shown_choice="", best=3, worst=1, submission_key="pick-1")
    assert (pick.choice, pick.best_candidate_id, pick.worst_candidate_id) == (Choice.PICK, best_id, worst_id)
    assert pick.display_order == shown
    derived = list(pick.derived.select_related("comparison"))
    assert len(derived) == 2 * 4 - 3
    for judgment in derived:
        pair = judgment.comparison
        winner = pair.candidate_a_id if judgment.choice == Choice.A else pair.candidate_b_id
        loser = pair.candidate_b_id if winner == pair.candidate_a_id else pair.candidate_a_id
        assert winner == best_id or loser == worst_id
        assert winner != worst_id and loser != best_id
        assert shown.index(judgment.shown_left_id) < shown.index(judgment.shown_right_id)
        assert (judgment.annotator, judgment.source, pair.kind) == (a, "human", ComparisonKind.PAIR)
        assert pair.status == ComparisonStatus.COMPLETE  # holds derived outcomes; never queued
    item.refresh_from_db()
    assert (item.status, item.human_judgments, item.open_leases) == (ComparisonStatus.COMPLETE, 1, 0)
    assert assignment_claim(project=project, user=a) is None  # derived pairs are not served
    # Replays store nothing more.
    assert submit(lease, a, shown_choice="", best=1, submission_key="pick-1").pk == pick.pk
    assert Judgment.objects.filter(derived_from__isnull=False).count() == 5
    out = tmp_path / "dpo.jsonl"
    call_command("export_dataset", project.slug, "--output", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    texts = {c.pk: c.text for c in candidates}
    assert len(rows) == 5
    assert sum(row["chosen"][0]["content"] == texts[best_id] for row in rows) == 3
    assert sum(row["rejected"][0]["content"] == texts[worst_id] for row in rows) == 3
    clean(project)


def test_best_only_pick_derives_n_minus_one_pairs():
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    best_of_n_item(project, n=5)
    lease = assignment_claim(project=project, user=a)
    pick = submit(lease, a, shown_choice="", best=2)
    assert pick.derived.count() == 4
    assert all(j.choice in (Choice.A, Choice.B) for j in pick.derived.all())


def test_best_of_n_needs_a_valid_pick():
    project = ProjectFactory()
    (a,) = people(project, 1)
    best_of_n_item(project, n=3)
    lease = assignment_claim(project=project, user=a)
    for kwargs, field in (
        ({"shown_choice": ""}, "best"),
        ({"shown_choice": "", "best": 4}, "best"),
        ({"shown_choice": "", "best": 1, "worst": 1}, "worst"),
        ({"shown_choice": "left"}, "choice"),
    ):
        with pytest.raises(InvalidVerdict) as info:
            submit(lease, a, **kwargs)
        assert info.value.field == field
    assert Judgment.objects.count() == 0


def test_direct_pair_judgment_wins_over_a_derived_one():
    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    item, candidates = best_of_n_item(project, n=3, priority=-1)
    pair = Comparison.objects.create(
        project=project, prompt=item.prompt, candidate_a=candidates[0], candidate_b=candidates[1]
    )
    lease = assignment_claim(project=project, user=a)
    assert lease.comparison_id == pair.pk  # the queued pair has the higher priority
    direct = submit(lease, a, shown_choice="tie")
    pick_lease = assignment_claim(project=project, user=a)
    assert pick_lease.comparison_id == item.pk
    best = pick_lease.display_order.index(candidates[0].pk) + 1
    pick = submit(pick_lease, a, shown_choice="", best=best)
    assert pick.derived.count() == 1  # 2 outcomes implied; the pair a judged directly keeps its verdict
    assert list(pair.judgments.all()) == [direct]
    pair.refresh_from_db()
    assert pair.human_judgments == 1
    clean(project)


def test_create_best_of_n_for_a_project():
    project = ProjectFactory()
    for _ in range(3):
        best_of_n_item(project, n=3)
    cset = CandidateSetFactory(prompt=PromptFactory(project=project))
    CandidateFactory(candidate_set=cset, position=0)
    cset2 = CandidateSetFactory(prompt=PromptFactory(project=project), n=2)
    CandidateFactory(candidate_set=cset2, position=0)
    CandidateFactory(candidate_set=cset2, position=1)
    assert comparisons_create_best_of_n(project=project) == 1  # only the new set with 2+ candidates
    assert comparisons_create_best_of_n(project=project) == 0
    with pytest.raises(PickError):
        comparison_create_best_of_n(candidate_set=cset)


# --- the query plan -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_claim_query_walks_the_partial_index():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    from annotate.services.queue import CLAIM_PHASES, claim_query

    project = ProjectFactory(overlap=2)
    (a,) = people(project, 1)
    make_pair(project)
    for phase in CLAIM_PHASES:
        sql, params = claim_query(phase=phase, project=project, user=a, skip_locked=True)
        assert "SKIP LOCKED" in sql.upper()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        # Either queue index serves the order without a sort; which one the planner picks for a tiny
        # table depends on its statistics.
        assert "comparison_claim_idx" in plan or "comparison_queue_idx" in plan, plan
        if phase != "in_progress":  # that one sorts at most IN_PROGRESS_WINDOW rows
            assert "Sort" not in plan, plan


def test_a_person_far_ahead_still_claims_cheaply_and_in_order(monkeypatch):
    """The in-progress window: a fast person whose own judged items fill the top of the queue gets a
    fresh item; items started by others still come first; deep ones are found at the end."""
    from annotate.services import queue

    monkeypatch.setattr(queue, "IN_PROGRESS_WINDOW", 2)
    project = ProjectFactory(overlap=2)
    fast, slow = people(project, 2)
    items = [make_pair(project) for _ in range(6)]
    for _ in range(3):  # fast judges 3 items; each now waits for a second person
        submit(assignment_claim(project=project, user=fast), fast)
    # slow is served those started items first, in order.
    lease = assignment_claim(project=project, user=slow)
    assert lease.comparison_id == items[0].pk
    submit(lease, slow)
    # fast: the top 2 in-progress items are theirs, so the window finds nothing; a fresh item comes.
    lease = assignment_claim(project=project, user=fast)
    assert lease.comparison_id == items[3].pk
    submit(lease, fast)
    # Once nothing is fresh for slow, the full walk still finds every started item.
    served = []
    while (lease := assignment_claim(project=project, user=slow)) is not None:
        served.append(lease.comparison_id)
        submit(lease, slow)
    assert sorted(served) == [i.pk for i in items[1:]]
    clean(project)


def test_due_check_sees_exactly_the_leases_past_their_time():
    from annotate.services.queue import _serialise_person_and_check_due

    project = ProjectFactory(overlap=1)
    (a,) = people(project, 1)
    make_pair(project)
    lease = assignment_claim(project=project, user=a)
    now = timezone.now()
    assert _serialise_person_and_check_due(user=a, now=now) is False
    Assignment.objects.filter(pk=lease.pk).update(expires_at=now - timedelta(microseconds=1))
    assert _serialise_person_and_check_due(user=a, now=now) is True
