"""Log in, compare two responses with the keyboard only, submit; the next item arrives in place."""

import pytest
from playwright.sync_api import expect

from annotate.models import Judgment
from tests.factories import make_pair

pytestmark = pytest.mark.django_db(transaction=True)


def test_keyboard_comparison_and_submit(page, live_server, login, project, annotator, artifacts_dir):
    first = make_pair(project)
    make_pair(project)
    login(page, annotator.username)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    expect(page.get_by_text("Which response is better?")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "compare.png"), full_page=True)
    page.evaluate("window.__sameDocument = true")

    left_text = page.locator('[data-side="left"]').inner_text()
    page.keyboard.press("1")
    expect(page.locator('input[name="choice"][value="left"]')).to_be_checked()
    page.keyboard.press("Enter")

    # htmx swaps in the next item: same document, a different comparison.
    expect(page.locator("#item")).to_contain_text("Which response is better?")
    page.wait_for_function("document.querySelectorAll('input[name=choice]:checked').length === 0")
    assert page.evaluate("window.__sameDocument") is True

    judgment = Judgment.objects.get(annotator=annotator)
    assert judgment.comparison_id in {first.pk, first.pk + 1}
    assert judgment.shown_left.text.strip() == left_text.strip()
    assert judgment.time_spent_ms is not None and judgment.time_spent_ms >= 0
    expected = "a" if judgment.shown_left_id == judgment.comparison.candidate_a_id else "b"
    assert judgment.choice == expected
