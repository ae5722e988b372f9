"""Best-of-N and correction screens, and the after-submit confirmation, in a real browser."""

import pytest
from playwright.sync_api import expect

from annotate.models import Candidate, Choice, Comparison, JudgeSpec, Judgment, ModelKind, Principle
from annotate.models.judging import PrincipleVerdict
from annotate.services.best_of_n import comparison_create_best_of_n
from annotate.services.corrections import correction_items_create
from tests.factories import CandidateFactory, CandidateSetFactory, PromptFactory, make_pair

pytestmark = pytest.mark.django_db(transaction=True)


def open_queue(page, live_server, login, project, user):
    login(page, user.username)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")


def test_best_of_four_with_keys(page, live_server, login, project, annotator, artifacts_dir):
    cset = CandidateSetFactory(prompt=PromptFactory(project=project), n=4)
    for i in range(4):
        CandidateFactory(candidate_set=cset, position=i, text=f"Candidate number {i}")
    comparison_create_best_of_n(candidate_set=cset)
    open_queue(page, live_server, login, project, annotator)
    expect(page.get_by_text("Which response is best?")).to_be_visible()
    page.keyboard.press("3")
    page.keyboard.press("Shift+Digit1")
    page.keyboard.press("r")
    page.keyboard.type("Three is the clearest.")
    page.keyboard.press("Escape")
    page.screenshot(path=str(artifacts_dir / "best-of-n.png"), full_page=True)
    best_text = page.locator('[data-position="3"]').inner_text().strip()
    worst_text = page.locator('[data-position="1"]').inner_text().strip()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Nothing to do right now")).to_be_visible()
    pick = Judgment.objects.get(annotator=annotator, choice=Choice.PICK)
    assert pick.best_candidate.text == best_text and pick.worst_candidate.text == worst_text
    assert pick.rationale == "Three is the clearest."
    # best beats the other 3; worst loses to the other 2 remaining: 2N-3 = 5 pair outcomes
    assert Judgment.objects.filter(derived_from=pick).count() == 5


def test_correction_with_live_diff(page, live_server, login, project, annotator, artifacts_dir):
    pair = make_pair(project)
    Comparison.objects.filter(pk=pair.pk).update(status="complete")
    correction_items_create(project=project, candidate_ids=[pair.candidate_a_id])
    open_queue(page, live_server, login, project, annotator)
    expect(page.get_by_label("Your corrected answer")).to_be_visible()
    page.keyboard.press("c")
    page.keyboard.press("End")
    page.keyboard.type(" Now with a source.")
    expect(page.locator("#diff")).to_contain_text("+Answer A Now with a source.")
    page.screenshot(path=str(artifacts_dir / "correction.png"), full_page=True)
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("Nothing to do right now")).to_be_visible()
    correction = Candidate.objects.get(parent=pair.candidate_a)
    assert correction.text == "Answer A Now with a source."
    assert "+Answer A Now with a source." in correction.meta["diff"]


def test_confirm_after_contradicting_a_consensus(page, live_server, login, project, annotator, artifacts_dir):
    project.options = {"confirm_on_consensus": True, "show_ai_after_submit": True}
    project.save()
    comparison = make_pair(project)
    make_pair(project)
    judge = JudgeSpec.objects.create(name="oracle-judge", kind=ModelKind.OPENAI, model="m", endpoint="http://x.test/v1")
    principle = Principle.objects.create(project=project, name="honest", text="Which is more honest?")
    PrincipleVerdict.objects.create(
        comparison=comparison, principle=principle, judge=judge, judge_version="1", choice=Choice.A
    )
    Judgment.objects.create(comparison=comparison, source="ai", judge=judge, choice=Choice.A, confidence=0.9)
    open_queue(page, live_server, login, project, annotator)
    lease = annotator.assignments.get(state="active")
    if lease.comparison_id != comparison.pk:  # the other item came first: answer it, then ours
        page.keyboard.press("0")
        page.keyboard.press("Enter")
        expect(page.locator("#next-link, #judgment-form").first).to_be_visible()
        if page.locator("#next-link").count():
            page.keyboard.press("n")
        lease = annotator.assignments.get(state="active")
    expect(page.get_by_text("Which response is better?")).to_be_visible()
    page.keyboard.press("2" if not lease.swapped else "1")  # candidate B: against the consensus
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-form")).to_be_visible()
    expect(page.get_by_text("oracle-judge")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "confirm-consensus.png"), full_page=True)
    page.get_by_label("Keep").check()
    page.get_by_label("The principle I relied on").select_option(label="honest")
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.locator("#confirm-form")).to_have_count(0)
    judgment = Judgment.objects.get(annotator=annotator, comparison=comparison)
    assert judgment.choice == Choice.B and judgment.confirmation["kept"] is True
    assert judgment.confirmation["relied_principle"] == principle.pk
