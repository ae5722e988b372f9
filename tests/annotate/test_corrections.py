"""Correction items (Aligner): a person rewrites an answer; the correction, its diff, the implied pair."""

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotate.models import Candidate, Choice, Comparison, ComparisonKind, ComparisonStatus, Judgment
from annotate.services.corrections import correction_items_create
from annotate.services.queue import InvalidVerdict, Submission, assignment_claim, judgment_submit
from tests.factories import make_pair

pytestmark = pytest.mark.django_db


def test_correction_items_pick_the_least_preferred_answer_once(project):
    pair = make_pair(project)
    Judgment.objects.create(comparison=pair, source="human", annotator=_user(), choice=Choice.A)
    items = correction_items_create(project=project)
    assert [i.candidate_a_id for i in items] == [pair.candidate_b_id]
    assert correction_items_create(project=project) == []  # idempotent


def _user():
    from tests.factories import UserFactory

    return UserFactory()


def test_submitting_a_correction_stores_candidate_diff_and_implied_pair(project, annotator, tmp_path):
    pair = make_pair(project)
    (item,) = correction_items_create(project=project, candidate_ids=[pair.candidate_a_id])
    Comparison.objects.filter(pk=pair.pk).update(status=ComparisonStatus.COMPLETE)  # only the item is open
    lease = assignment_claim(project=project, user=annotator)
    assert lease.comparison_id == item.pk
    with pytest.raises(InvalidVerdict, match="identical"):
        judgment_submit(assignment_id=lease.pk, user=annotator, submission=Submission(correction_text="Answer A"))
    judgment = judgment_submit(
        assignment_id=lease.pk,
        user=annotator,
        submission=Submission(correction_text="Answer A, with the error fixed.", submission_key="k"),
    )
    assert judgment.choice == Choice.CORRECTED
    correction = judgment.correction
    assert correction.parent_id == pair.candidate_a_id and correction.prompt_id == pair.prompt_id
    assert "-Answer A" in correction.meta["diff"] and "+Answer A, with the error fixed." in correction.meta["diff"]
    implied = Comparison.objects.get(kind=ComparisonKind.PAIR, candidate_a=pair.candidate_a, candidate_b=correction)
    assert implied.status == ComparisonStatus.COMPLETE
    (derived,) = implied.judgments.all()
    assert derived.choice == Choice.B and derived.annotator == annotator and derived.derived_from == judgment
    # Idempotent: the same key returns the first judgment and writes nothing.
    again = judgment_submit(
        assignment_id=lease.pk, user=annotator, submission=Submission(correction_text="other", submission_key="k")
    )
    assert again.pk == judgment.pk and Candidate.objects.filter(parent__isnull=False).count() == 1
    out = tmp_path / "aligner.jsonl"
    call_command("export_dataset", project.slug, "--format", "corrections", "--output", str(out))
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["answer"] == "Answer A" and row["correction"] == "Answer A, with the error fixed."
    dpo = tmp_path / "dpo.jsonl"
    call_command("export_dataset", project.slug, "--output", str(dpo))
    rows = [json.loads(line) for line in dpo.read_text().splitlines()]
    assert [r["chosen"][0]["content"] for r in rows] == ["Answer A, with the error fixed."]


def test_correction_screen_and_diff_preview(client, project, annotator, manager):
    pair = make_pair(project)
    Comparison.objects.filter(pk=pair.pk).update(status=ComparisonStatus.COMPLETE)
    client.force_login(manager)
    assert client.post(reverse("item-types", args=[project.slug]), {"kind": "correction"}).status_code == 302
    client.force_login(annotator)
    page = client.get(reverse("annotate-next", args=[project.slug]))
    assert b"Your corrected answer" in page.content
    lease = annotator.assignments.get(state="active")
    diff = client.post(
        reverse("annotate-correction-diff", args=[project.slug, lease.pk]),
        {"correction": "Answer A, better."},
        HTTP_HX_REQUEST="true",
    )
    assert diff.status_code == 200 and b"+Answer A, better." in diff.content and b"<html" not in diff.content
    empty = client.post(
        reverse("annotate-submit", args=[project.slug, lease.pk]),
        {"correction": "", "submission_key": "x"},
    )
    assert empty.status_code == 400
    done = client.post(
        reverse("annotate-submit", args=[project.slug, lease.pk]),
        {"correction": "Answer A, better.", "submission_key": "y"},
        HTTP_HX_REQUEST="true",
    )
    assert done.status_code == 200
    assert Candidate.objects.filter(parent__isnull=False, text="Answer A, better.").exists()


def test_corrections_page_is_for_managers(client, project, annotator):
    client.force_login(annotator)
    assert client.get(reverse("item-types", args=[project.slug])).status_code == 404


def test_manager_creates_best_of_n_items(client, project, manager):
    make_pair(project)
    client.force_login(manager)
    assert client.post(reverse("item-types", args=[project.slug]), {"kind": "best_of_n"}).status_code == 302
    assert Comparison.objects.filter(kind=ComparisonKind.BEST_OF_N).count() == 1
    page = client.get(reverse("item-types", args=[project.slug]))
    assert b"1 item (1 open)" in page.content
