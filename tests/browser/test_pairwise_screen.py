"""The pairwise screen in a real browser: keys only, strength and rationale, skip, hostile output."""

import pytest
from playwright.sync_api import expect

from annotate.models import Assignment, Candidate, Judgment, Principle
from tests.factories import MembershipFactory, ProjectFactory, make_pair

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = """Here is my answer.

<script>window.__pwned = (window.__pwned || 0) + 1</script>
<img src=x onerror="window.__pwned = (window.__pwned || 0) + 1">
<a href="javascript:window.__pwned=1">click me</a> and [a markdown link](javascript:window.__pwned=1)
<b onmouseover="window.__pwned=1">bold?</b> &lt;script&gt;not a tag&lt;/script&gt; &amp; 5 &gt; 3

```html
<script>alert(1)</script>
```
"""


def open_item(page, live_server, login, project, user):
    login(page, user.username)
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    expect(page.get_by_text("Which response is better?")).to_be_visible()


def test_keys_only_with_strength_and_rationale(page, live_server, login, project, annotator, artifacts_dir):
    Principle.objects.create(project=project, name="honest", text="Which response is more honest?")
    make_pair(project)
    make_pair(project)
    open_item(page, live_server, login, project, annotator)
    page.keyboard.press("2")
    page.keyboard.press("e")
    page.keyboard.press("r")
    page.keyboard.type("Response 2 answers the question; 1 does not.")
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "pairwise-help.png"))
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_hidden()
    page.screenshot(path=str(artifacts_dir / "pairwise-filled.png"), full_page=True)
    page.keyboard.press("Enter")
    expect(page.locator("#done-today")).to_have_text("1")
    judgment = Judgment.objects.get(annotator=annotator)
    assert judgment.strength == "strong"
    assert judgment.rationale == "Response 2 answers the question; 1 does not."
    assert judgment.shown_right_id == (
        judgment.comparison.candidate_a_id if judgment.choice == "a" else judgment.comparison.candidate_b_id
    )


def test_skip_with_key_shows_another_item(page, live_server, login, project, annotator):
    make_pair(project)
    make_pair(project)
    open_item(page, live_server, login, project, annotator)
    first = Assignment.objects.get(user=annotator, state="active")
    page.keyboard.press("s")
    expect(page.locator("#judgment-form")).not_to_have_attribute("data-item", str(first.pk))
    first.refresh_from_db()
    assert first.state == "skipped"
    assert Judgment.objects.count() == 0


def test_hostile_model_output_is_inert(page, live_server, login, project, annotator, artifacts_dir):
    comparison = make_pair(project)
    Candidate.objects.filter(pk=comparison.candidate_a_id).update(text=HOSTILE)
    Candidate.objects.filter(pk=comparison.candidate_b_id).update(text="Plain & simple <i>answer</i>.")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_item(page, live_server, login, project, annotator)
    page.screenshot(path=str(artifacts_dir / "pairwise-hostile.png"), full_page=True)
    body = (
        page.locator(".response-body").first
        if "Here is my answer" in page.locator(".response-body").first.inner_text()
        else page.locator(".response-body").last
    )
    for link in body.locator("a").all():
        link.click(no_wait_after=True)
    body.locator("text=bold?").hover()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned === undefined")
    assert dialogs == []
    assert body.locator("script, img, [onerror], [onmouseover]").count() == 0
    assert body.locator('a[href^="javascript"]').count() == 0
    text = body.inner_text()
    assert "<script>not a tag</script>" in text and "& 5 > 3" in text
    assert "<script>alert(1)</script>" in body.locator("pre code").inner_text()


def test_another_projects_item_is_not_reachable_by_url(page, live_server, login, project, annotator):
    other = ProjectFactory()
    make_pair(other)
    stranger = MembershipFactory(project=other).user
    lease = None
    # The stranger holds a lease in their project; the annotator tries its URLs.
    from annotate.services.queue import assignment_claim

    lease = assignment_claim(project=other, user=stranger)
    login(page, annotator.username)
    response = page.goto(f"{live_server.url}/projects/{other.slug}/annotate/")
    assert response.status == 404
    response = page.goto(f"{live_server.url}/projects/{other.slug}/")
    assert response.status == 404
    page.goto(f"{live_server.url}/projects/{project.slug}/annotate/")
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector('[name=csrfmiddlewaretoken]').value;
            const body = new URLSearchParams({choice: 'left', submission_key: 'x', csrfmiddlewaretoken: token});
            return (await fetch(url, {method: 'POST', body})).status;
        }""",
        f"/projects/{other.slug}/annotate/{lease.pk}/submit/",
    )
    assert status == 404
    assert Judgment.objects.count() == 0
