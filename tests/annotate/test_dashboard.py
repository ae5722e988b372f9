"""The project overview: managers' figures, annotators' own figures, constant query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotate.models import (
    Assignment,
    Comparison,
    JudgeRun,
    JudgeSpec,
    Judgment,
    ModelKind,
    Resolution,
    RunStatus,
    Source,
)
from annotate.selectors_dashboard import annotator_figures, my_figures, project_dashboard
from tests.factories import CandidateSetFactory, MembershipFactory, PromptFactory, UserFactory, make_pair

pytestmark = pytest.mark.django_db


def judge(user, comparison, choice="a", ms=2000):
    lease = Assignment.objects.create(
        comparison=comparison, user=user, state="submitted", swapped=False, expires_at="2030-01-01T00:00Z"
    )
    Comparison.objects.filter(pk=comparison.pk).update(human_judgments=comparison.human_judgments + 1)
    comparison.human_judgments += 1
    return Judgment.objects.create(
        comparison=comparison, source=Source.HUMAN, annotator=user, assignment=lease, choice=choice, time_spent_ms=ms
    )


def populate(project, n_items: int, people: list) -> None:
    """n_items pairs in every status, judgments by each person, sets and judge runs of each status."""
    spec = JudgeSpec.objects.get_or_create(name="dash-judge", defaults={"kind": ModelKind.TRANSFORMERS, "model": "x"})[
        0
    ]
    statuses = ["open", "complete", "adjudication", "resolved"]
    for i in range(n_items):
        comparison = make_pair(project, status=statuses[i % 4])
        for person in people:
            judge(person, comparison)
        if comparison.status == "resolved":
            Resolution.objects.create(comparison=comparison, choice="a", method="agreement")
    for status in (RunStatus.FAILED, RunStatus.QUEUED):
        CandidateSetFactory(prompt=PromptFactory(project=project), status=status, error="boom")
    JudgeRun.objects.create(
        project=project, judge=spec, judge_version="1", task="pairwise", status="done", total=4, done=4
    )


def test_dashboard_figures(project, manager):
    project.overlap = 2
    project.save(update_fields=["overlap"])
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    MembershipFactory(project=project, user=alice)
    first = make_pair(project)
    second = make_pair(project, status="adjudication")
    judge(alice, first, ms=1000)
    judge(alice, second, ms=3000)
    judge(bob, second)  # bob judged without a membership (since removed): still listed
    Comparison.objects.filter(pk=second.pk).update(human_judgments=5)  # beyond the overlap: capped
    CandidateSetFactory(prompt=PromptFactory(project=project), status=RunStatus.FAILED, error="boom")
    spec = JudgeSpec.objects.create(name="j", kind=ModelKind.TRANSFORMERS, model="x")
    JudgeRun.objects.create(
        project=project, judge=spec, judge_version="1", task="pairwise", status="running", total=10, done=3
    )
    JudgeRun.objects.create(
        project=project, judge=spec, judge_version="1", task="spa", status="failed", total=5, done=1
    )

    dash = project_dashboard(project=project)
    assert dash["prompts"] == 3
    assert dash["sets"]["total"] == 3 and dash["sets"]["done"] == 2 and dash["sets"]["failed"] == 1
    assert dash["sets"]["percent"] == 67
    assert dash["comparisons"]["total"] == 2 and dash["comparisons"]["open"] == 1
    assert dash["comparisons"]["adjudication"] == 1 and dash["comparisons"]["finished_percent"] == 50
    assert dash["judgments"] == {"human": 3, "counted": 1 + 2, "needed": 4, "overlap": 2, "percent": 75}
    assert dash["judge_runs"]["total"] == 2 and dash["judge_runs"]["active"] == 1 and dash["judge_runs"]["failed"] == 1
    assert dash["judge_runs"]["active_percent"] == 30 and dash["active"] is True

    people = {row["username"]: row for row in annotator_figures(project=project)}
    assert set(people) == {"alice", "bob", manager.username}
    assert (
        people["alice"]["judgments"] == 2 and people["alice"]["today"] == 2 and people["alice"]["mean_seconds"] == 2.0
    )
    assert people["alice"]["roles"] == ["Annotator"] and people["bob"]["roles"] == []
    assert people[manager.username]["judgments"] == 0 and people[manager.username]["mean_seconds"] is None

    assert my_figures(user=alice, project=project) == {"total": 2, "today": 2, "skipped": 0, "left": 0}
    assert my_figures(user=manager, project=project) == {"total": 0, "today": 0, "skipped": 0, "left": 1}


def test_nothing_under_way_is_not_active(project):
    assert project_dashboard(project=project)["active"] is False
    assert project_dashboard(project=project)["judgments"]["percent"] == 0


def test_manager_sees_figures_and_every_manager_link(client, project, manager):
    populate(project, 4, [manager])
    client.force_login(manager)
    page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    for name in ("prompt-upload", "generation-overview", "judging", "project-members", "demonstrations"):
        assert reverse(name, args=[project.slug]) in page
    assert reverse("api-tokens") in page and reverse("api-docs") in page
    assert reverse("admin:index") not in page  # not staff
    assert "Needs adjudication" in page and "People" in page and manager.username in page
    assert 'id="bar-sets"' in page and 'id="bar-judgments"' in page


def test_staff_see_the_admin_link(client, project):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert reverse("admin:index") in client.get(reverse("project-detail", args=[project.slug])).content.decode()


def test_annotator_sees_only_their_own_figures(client, project, annotator):
    other = UserFactory(username="someone-else")
    MembershipFactory(project=project, user=other)
    populate(project, 4, [other])
    judge(annotator, make_pair(project))
    client.force_login(annotator)
    page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert "Your work" in page and "Judged in all" in page
    assert "someone-else" not in page and "Human judgments" not in page and "AI judging runs" not in page
    assert reverse("prompt-upload", args=[project.slug]) not in page
    # The figures poll is managers-only.
    assert client.get(reverse("generation-progress", args=[project.slug])).status_code == 404


def _queries(client, url, **headers) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, **headers).status_code in (200, 286)
    return len(ctx.captured_queries)


def test_overview_queries_do_not_grow_with_the_project(client, project, manager, django_assert_max_num_queries):
    client.force_login(manager)
    url = reverse("project-detail", args=[project.slug])
    poll = reverse("generation-progress", args=[project.slug])
    populate(project, 2, [manager])
    small, small_poll = _queries(client, url), _queries(client, poll, HTTP_HX_REQUEST="true")
    people = [UserFactory() for _ in range(5)]
    for person in people:
        MembershipFactory(project=project, user=person)
    populate(project, 12, [manager, *people])
    assert _queries(client, url) == small
    assert _queries(client, poll, HTTP_HX_REQUEST="true") == small_poll
    # session, user, project, own figures (3), project figures (7), people (3), failed sets
    with django_assert_max_num_queries(17):
        client.get(url)


def test_annotator_overview_queries_are_few(client, project, annotator, django_assert_max_num_queries):
    populate(project, 8, [annotator])
    client.force_login(annotator)
    with django_assert_max_num_queries(9):
        client.get(reverse("project-detail", args=[project.slug]))


def test_poll_stops_when_nothing_runs(client, project, manager):
    client.force_login(manager)
    poll = reverse("generation-progress", args=[project.slug])
    cset = CandidateSetFactory(prompt=PromptFactory(project=project), status=RunStatus.RUNNING)
    running = client.get(poll, HTTP_HX_REQUEST="true")
    assert running.status_code == 200 and 'hx-trigger="every 2s"' in running.content.decode()
    assert "<html" not in running.content.decode()  # the fragment only
    cset.status = RunStatus.DONE
    cset.save(update_fields=["status"])
    done = client.get(poll, HTTP_HX_REQUEST="true")
    assert done.status_code == 286 and "hx-trigger" not in done.content.decode()
    full = client.get(poll)
    assert full.status_code == 200 and "<html" in full.content.decode()
