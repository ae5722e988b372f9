"""After submit: AI verdicts are shown only afterwards, and a verdict against a principle consensus
can be confirmed or changed, with the principle relied on recorded."""

import pytest
from django.urls import reverse

from annotate.models import Choice, JudgeSpec, Judgment, ModelKind, Principle
from annotate.models.judging import PrincipleVerdict
from annotate.services.feedback import FeedbackError, judgment_confirm, principle_consensus
from tests.factories import make_pair

pytestmark = pytest.mark.django_db


@pytest.fixture
def judge():
    return JudgeSpec.objects.create(name="oracle", kind=ModelKind.OPENAI, model="m", endpoint="http://127.0.0.1:9/v1")


def verdicts(comparison, judge, choices):
    for i, choice in enumerate(choices):
        principle, _ = Principle.objects.get_or_create(
            project=comparison.project, name=f"p{i}", defaults={"text": f"Principle {i}"}
        )
        PrincipleVerdict.objects.create(
            comparison=comparison, principle=principle, judge=judge, judge_version="1", choice=choice
        )


def test_consensus_classification(project, judge):
    agree = make_pair(project)
    verdicts(agree, judge, [Choice.A, Choice.NA, Choice.A])
    assert principle_consensus(comparison_id=agree.pk).sign == 1.0
    split = make_pair(project)
    verdicts(split, judge, [Choice.A, Choice.B])
    assert principle_consensus(comparison_id=split.pk) is None
    assert principle_consensus(comparison_id=make_pair(project).pk) is None


def submit(client, project, choice):
    page = client.get(reverse("annotate-next", args=[project.slug]))
    assert page.status_code == 200
    lease = page.context["lease"]
    shown = {"a": "left" if not lease.swapped else "right", "b": "right" if not lease.swapped else "left"}[choice]
    return lease, client.post(
        reverse("annotate-submit", args=[project.slug, lease.pk]),
        {"choice": shown, "submission_key": f"k{lease.pk}"},
        HTTP_HX_REQUEST="true",
    )


def test_contradicting_a_consensus_asks_for_confirmation_and_records_the_answer(client, project, annotator, judge):
    project.options = {"confirm_on_consensus": True}
    project.save()
    comparison = make_pair(project)
    verdicts(comparison, judge, [Choice.A, Choice.A])
    client.force_login(annotator)
    _lease, response = submit(client, project, "b")
    assert b"all point to" in response.content and b'id="confirm-form"' in response.content
    judgment = Judgment.objects.get(annotator=annotator)
    relied = Principle.objects.get(name="p1")
    client.post(
        reverse("annotate-confirm", args=[project.slug, judgment.pk]),
        {"decision": "change", "principle": relied.pk},
        HTTP_HX_REQUEST="true",
    )
    judgment.refresh_from_db()
    assert judgment.choice == Choice.A
    assert judgment.confirmation["original_choice"] == "b" and judgment.confirmation["kept"] is False
    assert judgment.confirmation["relied_principle"] == relied.pk
    # Answered once: a second confirmation changes nothing.
    judgment_confirm(judgment_id=judgment.pk, user=annotator, keep=False)
    judgment.refresh_from_db()
    assert judgment.choice == Choice.A


def test_agreeing_with_the_consensus_goes_straight_on(client, project, annotator, judge):
    project.options = {"confirm_on_consensus": True}
    project.save()
    verdicts(make_pair(project), judge, [Choice.A])
    client.force_login(annotator)
    _lease, response = submit(client, project, "a")
    assert b'id="confirm-form"' not in response.content


def test_ai_verdicts_only_after_submit(client, project, annotator, judge):
    project.options = {"show_ai_after_submit": True}
    project.save()
    comparison = make_pair(project)
    Judgment.objects.create(comparison=comparison, source="ai", judge=judge, choice=Choice.B, confidence=0.8)
    client.force_login(annotator)
    before = client.get(reverse("annotate-next", args=[project.slug]))
    assert b"oracle" not in before.content  # blind until the person answers
    _lease, after = submit(client, project, "a")
    assert b"What the AI judges said" in after.content and b"oracle" in after.content
    assert b"0.80" in after.content


def test_only_own_strict_judgments_can_be_confirmed(project, annotator, outsider, judge):
    comparison = make_pair(project)
    tie = Judgment.objects.create(comparison=comparison, source="human", annotator=annotator, choice=Choice.TIE)
    with pytest.raises(FeedbackError):
        judgment_confirm(judgment_id=tie.pk, user=annotator, keep=True)
    with pytest.raises(FeedbackError):
        judgment_confirm(judgment_id=tie.pk, user=outsider, keep=True)
