"""32 people claiming at once on real PostgreSQL: no double assignment, no overlap violation.

Threads, each with its own database connection (Django opens one per thread), start together at
a barrier and run claim -> submit / skip / release until the queue is empty. A monitor thread
samples the overlap invariant while they run; the end state is checked from the rows.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection, connections

from annotate import selectors
from annotate.models import Assignment, Comparison, ComparisonStatus, Judgment
from annotate.services.queue import (
    Submission,
    assignment_claim,
    assignment_release,
    assignment_skip,
    judgment_submit,
)
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_pair

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CLAIMERS = 32
ITEMS = 40
OVERLAP = 3


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://...")


def _overlap_now(project) -> int:
    """Items where direct judgments plus active leases exceed the overlap, read in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM annotate_comparison c
            WHERE c.project_id = %s AND (
                (SELECT count(*) FROM annotate_assignment a WHERE a.comparison_id = c.id AND a.state = 'active')
                + (SELECT count(*) FROM annotate_judgment j
                   WHERE j.comparison_id = c.id AND j.source = 'human' AND j.derived_from_id IS NULL)
            ) > %s
            """,
            [project.pk, project.overlap],
        )
        return cursor.fetchone()[0]


def test_32_parallel_claimers_never_double_assign_or_exceed_overlap():
    project = ProjectFactory(overlap=OVERLAP)
    users = [UserFactory() for _ in range(CLAIMERS)]
    for user in users:
        MembershipFactory(project=project, user=user)
    for _ in range(ITEMS):
        make_pair(project)

    barrier = threading.Barrier(CLAIMERS + 1)
    done = threading.Event()
    errors: list[BaseException] = []
    claims: list[tuple[int, int]] = []  # (user, comparison) of every lease handed out
    samples: list[int] = []
    lock = threading.Lock()

    def claimer(index: int, user) -> None:
        rng = random.Random(index)
        try:
            barrier.wait()
            while True:
                lease = assignment_claim(project=project, user=user)
                if lease is None:
                    # Nothing for this person right now; slots held by others may still come back.
                    if not Assignment.objects.filter(comparison__project=project, state="active").exists():
                        return
                    time.sleep(0.005)
                    continue
                with lock:
                    claims.append((user.pk, lease.comparison_id))
                roll = rng.random()
                if roll < 0.1:
                    assignment_skip(assignment_id=lease.pk, user=user)
                elif roll < 0.2:
                    assignment_release(assignment_id=lease.pk, user=user)
                else:
                    key = f"{user.pk}-{lease.pk}"
                    submission = Submission(shown_choice=rng.choice(["left", "right", "tie"]), submission_key=key)
                    judgment_submit(assignment_id=lease.pk, user=user, submission=submission)
                    if roll > 0.9:  # a client retrying the same submit
                        judgment_submit(assignment_id=lease.pk, user=user, submission=submission)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def monitor() -> None:
        try:
            barrier.wait()
            while not done.is_set():
                samples.append(_overlap_now(project))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(i, u)) for i, u in enumerate(users)]
    watcher = threading.Thread(target=monitor)
    for thread in [*threads, watcher]:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    done.set()
    watcher.join(timeout=60)

    assert not errors, errors[:3]
    assert samples and max(samples) == 0, "overlap exceeded while claimers ran"
    # Released items may come back to the same person; anything else would be a double assignment.
    released = set(Assignment.objects.filter(state="released").values_list("user_id", "comparison_id"))
    repeats = {pair for pair in claims if claims.count(pair) > 1} - released
    assert repeats == set()
    assert selectors.queue_violations(project=project) == {
        "double_assignments": 0,
        "overlap_violations": 0,
        "counter_drift": 0,
        "lost_submissions": 0,
    }
    # Nothing was stranded: a last pass of everyone finds no work left, and every item is complete
    # unless so many people skipped it that no one is left to judge it.
    assert Assignment.objects.filter(comparison__project=project, state="active").count() == 0
    assert all(assignment_claim(project=project, user=user) is None for user in users)
    for item in Comparison.objects.filter(project=project):
        judged = Judgment.objects.filter(comparison=item, source="human").count()
        skippers = Assignment.objects.filter(comparison=item, state="skipped").values("user").distinct().count()
        assert judged <= OVERLAP
        assert item.status == ComparisonStatus.COMPLETE or judged + skippers == CLAIMERS


def test_one_persons_concurrent_claims_get_one_lease():
    project = ProjectFactory(overlap=1)
    user = UserFactory()
    MembershipFactory(project=project, user=user)
    for _ in range(10):
        make_pair(project)
    barrier = threading.Barrier(8)
    leases: list[int] = []
    errors: list[BaseException] = []

    def claim() -> None:
        try:
            barrier.wait()
            leases.append(assignment_claim(project=project, user=user).pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(set(leases)) == 1 and len(leases) == 8
    assert Assignment.objects.filter(user=user, state="active").count() == 1
