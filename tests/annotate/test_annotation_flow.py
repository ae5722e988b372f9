"""Claiming, submitting, permissions and the DPO export of the thin end-to-end path."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotate.models import Assignment, Choice, Comparison, ComparisonStatus, Judgment
from annotate.services.queue import QueueError, Submission, assignment_claim, judgment_submit
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_pair

pytestmark = pytest.mark.django_db


def test_claim_returns_same_lease_until_submitted_and_stores_shown_order(project, annotator):
    comparison = make_pair(project)
    lease = assignment_claim(project=project, user=annotator)
    assert lease.comparison == comparison
    assert assignment_claim(project=project, user=annotator).pk == lease.pk
    judgment = judgment_submit(assignment_id=lease.pk, user=annotator, submission=Submission(shown_choice="left"))
    left = comparison.candidate_b if lease.swapped else comparison.candidate_a
    assert judgment.shown_left == left
    assert judgment.choice == (Choice.B if lease.swapped else Choice.A)
    assert judgment.annotator == annotator and judgment.created_at is not None
    comparison.refresh_from_db()
    assert comparison.status == ComparisonStatus.COMPLETE
    assert assignment_claim(project=project, user=annotator) is None


def test_left_right_order_is_random_per_person():
    project = ProjectFactory(overlap=1)
    users = [UserFactory() for _ in range(40)]
    for u in users:
        MembershipFactory(project=project, user=u)
    for _ in range(40):
        make_pair(project)
    swapped = {assignment_claim(project=project, user=u).swapped for u in users}
    assert swapped == {True, False}


def test_submit_is_idempotent_by_key(project, annotator):
    make_pair(project)
    lease = assignment_claim(project=project, user=annotator)
    first = judgment_submit(
        assignment_id=lease.pk, user=annotator, submission=Submission(shown_choice="right", submission_key="k1")
    )
    again = judgment_submit(
        assignment_id=lease.pk, user=annotator, submission=Submission(shown_choice="left", submission_key="k1")
    )
    assert again.pk == first.pk and Judgment.objects.count() == 1


def test_overlap_two_needs_two_people(project, annotator):
    project.overlap = 2
    project.save()
    comparison = make_pair(project)
    other = UserFactory()
    MembershipFactory(project=project, user=other)
    l1 = assignment_claim(project=project, user=annotator)
    l2 = assignment_claim(project=project, user=other)
    assert l1.comparison_id == l2.comparison_id == comparison.pk
    third = UserFactory()
    MembershipFactory(project=project, user=third)
    assert assignment_claim(project=project, user=third) is None


def test_someone_elses_lease_cannot_be_submitted(project, annotator):
    make_pair(project)
    lease = assignment_claim(project=project, user=annotator)
    intruder = UserFactory()
    with pytest.raises(QueueError):
        judgment_submit(assignment_id=lease.pk, user=intruder, submission=Submission(shown_choice="left"))


def test_annotator_cannot_see_or_submit_to_another_project(client, project, annotator):
    comparison = make_pair(project)
    lease = assignment_claim(project=project, user=annotator)
    outsider_project = ProjectFactory()
    outsider = UserFactory()
    MembershipFactory(project=outsider_project, user=outsider)
    client.force_login(outsider)
    assert client.get(reverse("project-detail", args=[project.slug])).status_code == 404
    assert client.get(reverse("annotate-next", args=[project.slug])).status_code == 404
    url = reverse("annotate-submit", args=[project.slug, lease.pk])
    response = client.post(url, {"choice": "left", "submission_key": "x"})
    assert response.status_code == 404
    # Even through their own project's URL, someone else's lease is refused.
    url = reverse("annotate-submit", args=[outsider_project.slug, lease.pk])
    response = client.post(url, {"choice": "left", "submission_key": "x"})
    assert response.status_code == 400
    assert Judgment.objects.count() == 0
    assert b"Answer A" not in client.get(reverse("project-list")).content
    assert comparison.judgments.count() == 0


def test_pages_require_login(client, project):
    for url in (
        reverse("project-list"),
        reverse("project-detail", args=[project.slug]),
        reverse("annotate-next", args=[project.slug]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_web_flow_full_page_and_htmx(client, project, annotator):
    make_pair(project)
    make_pair(project)
    client.force_login(annotator)
    page = client.get(reverse("annotate-next", args=[project.slug]))
    assert page.status_code == 200 and b"Which response is better?" in page.content
    lease = Assignment.objects.get(user=annotator, state="active")
    response = client.post(
        reverse("annotate-submit", args=[project.slug, lease.pk]),
        {"choice": "tie", "submission_key": "k-1", "time_spent_ms": "1234", "strength": "", "rationale": "same"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert b"<html" not in response.content and b'id="item"' in response.content
    judgment = Judgment.objects.get()
    assert judgment.choice == Choice.TIE and judgment.time_spent_ms == 1234 and judgment.rationale == "same"
    bad = client.post(reverse("annotate-submit", args=[project.slug, lease.pk + 1]), {"choice": "nope"})
    assert bad.status_code == 400


def test_dpo_export_writes_chosen_and_rejected_from_human_judgments(project, annotator, tmp_path):
    comparison = make_pair(project)
    make_pair(project)  # unlabelled: not exported
    lease = assignment_claim(project=project, user=annotator)
    assert lease.comparison == comparison
    shown = "right" if lease.swapped else "left"  # the person prefers candidate A
    judgment_submit(assignment_id=lease.pk, user=annotator, submission=Submission(shown_choice=shown))
    out = tmp_path / "dpo.jsonl"
    call_command("export_dataset", project.slug, "--format", "dpo", "--output", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["prompt"] == comparison.prompt.messages
    assert row["chosen"] == [{"role": "assistant", "content": "Answer A"}]
    assert row["rejected"] == [{"role": "assistant", "content": "Answer B"}]
    assert row["comparison_id"] == comparison.pk


def test_ties_and_splits_are_not_exported(project, tmp_path):
    project.overlap = 2
    project.save()
    make_pair(project)
    for shown in ("left", "right"):
        user = UserFactory()
        MembershipFactory(project=project, user=user)
        lease = assignment_claim(project=project, user=user)
        choice = "left" if lease.swapped == (shown == "right") else "right"
        judgment_submit(assignment_id=lease.pk, user=user, submission=Submission(shown_choice=choice))
    assert sorted(Judgment.objects.values_list("choice", flat=True)) == ["a", "b"]
    out = tmp_path / "dpo.jsonl"
    call_command("export_dataset", project.slug, "--output", str(out))
    assert out.read_text() == ""


def test_comparison_candidates_must_belong_to_its_prompt(project):
    from django.db import IntegrityError, transaction

    c1 = make_pair(project)
    c2 = make_pair(project)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(
            project=project, prompt=c1.prompt, candidate_a=c1.candidate_a, candidate_b=c2.candidate_b
        )
