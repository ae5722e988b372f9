"""A manager's screens in a real browser, at a 13-inch laptop's size (1280x800): the overview,
prompt upload (a bad file, then a good one), adding a member with the keyboard only, an API token,
the generation and judging pages. Each screen is saved to the artifacts folder.

No model runs: candidate sets, generation runs and judge runs are made in the database.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token

from annotate.models import (
    Assignment,
    Comparison,
    GenerationRun,
    JudgeRun,
    JudgeSpec,
    Judgment,
    Membership,
    ModelKind,
    Prompt,
    RunStatus,
)
from tests.factories import CandidateSetFactory, MembershipFactory, PromptFactory, UserFactory, make_pair

pytestmark = pytest.mark.django_db(transaction=True)

LAPTOP = {"width": 1280, "height": 800}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": LAPTOP}


@pytest.fixture
def busy_project(project, manager, annotator):
    """A project with work in every state: items open / done / disputed, sets done and failed,
    judge runs running, done and failed."""
    for status in ("open", "open", "complete", "adjudication", "resolved"):
        item = make_pair(project, status=status)
        if status != "open":
            lease = Assignment.objects.create(
                comparison=item, user=annotator, state="submitted", swapped=False, expires_at=timezone.now()
            )
            Judgment.objects.create(
                comparison=item, source="human", annotator=annotator, assignment=lease, choice="a", time_spent_ms=4200
            )
            Comparison.objects.filter(pk=item.pk).update(human_judgments=1)
    failed = CandidateSetFactory(
        prompt=PromptFactory(project=project), status=RunStatus.FAILED, error="RuntimeError: out of memory"
    )
    CandidateSetFactory(prompt=PromptFactory(project=project), status=RunStatus.QUEUED)
    run = GenerationRun.objects.create(project=project, strategy="iid", prompts_selected=2)
    run.sets.add(failed)
    spec = JudgeSpec.objects.create(name="smollm2-judge", kind=ModelKind.TRANSFORMERS, model="/models/judge")
    JudgeRun.objects.create(
        project=project, judge=spec, judge_version="1", task="pairwise", status="done", total=5, done=5
    )
    JudgeRun.objects.create(
        project=project, judge=spec, judge_version="1", task="spa", status="failed", total=5, done=2, error="boom"
    )
    JudgeRun.objects.create(
        project=project, judge=spec, judge_version="1", task="principles", status="running", total=10, done=4
    )
    return project


A11Y_PROBLEMS = """() => {
  const problems = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button')) {
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim());
    if (!named) problems.push('unlabelled: ' + el.outerHTML.slice(0, 80));
    for (const ref of (el.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean)) {
      if (!document.getElementById(ref)) problems.push('aria-describedby to nothing: ' + ref);
    }
  }
  for (const th of document.querySelectorAll('th')) {
    if (!th.getAttribute('scope')) problems.push('th without scope: ' + th.innerText);
  }
  let previous = 0;
  for (const h of document.querySelectorAll('main h1, main h2, main h3, main h4')) {
    const level = Number(h.tagName[1]);
    if (level > previous + 1) problems.push('heading level skipped: ' + h.innerText);
    previous = level;
  }
  return problems;
}"""


def a11y_problems(page) -> list[str]:
    """Unlabelled controls, dangling aria-describedby, header cells without scope, skipped heading levels."""
    return page.evaluate(A11Y_PROBLEMS)


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def focused(page) -> dict:
    return page.evaluate(
        """() => { const el = document.activeElement; const style = getComputedStyle(el);
                   return {tag: el.tagName, name: el.name || '', text: (el.innerText || '').trim(),
                           outline: style.outlineStyle, outlineWidth: style.outlineWidth}; }"""
    )


def tab_to(page, predicate, limit: int = 40) -> dict:
    """Press Tab until the focused element matches; fail if it is not reachable."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if predicate(now):
            return now
    raise AssertionError("not reachable with Tab")


def test_overview(page, live_server, login, busy_project, manager, annotator, artifacts_dir):
    login(page, manager.username)
    page.goto(f"{live_server.url}/projects/{busy_project.slug}/")
    expect(page.get_by_role("heading", name="Comparisons")).to_be_visible()
    # Progress bars are labelled; the comparison statuses are spelled out.
    expect(page.get_by_label("Candidate sets generated")).to_have_attribute("value", "5")
    expect(page.get_by_role("img", name="Comparisons by status")).to_be_visible()
    expect(page.get_by_role("row", name="Needs adjudication")).to_contain_text("1")
    expect(page.get_by_label("Active runs")).to_have_attribute("value", "4")
    expect(page.get_by_role("row", name=annotator.username)).to_contain_text("4.2 s")
    expect(page.get_by_label("Judgments toward the overlap")).to_have_attribute("value", "3")
    for link in ("Upload prompts", "Candidate generation", "AI judges", "Members and roles", "API docs"):
        expect(page.get_by_role("navigation", name="Manage").get_by_role("link", name=link)).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "manager-overview.png"), full_page=True)
    assert no_horizontal_scroll(page)
    assert a11y_problems(page) == []
    page.screenshot(path=str(artifacts_dir / "manager-overview-first-screen.png"))

    # The annotator sees their own figures only.
    page.context.clear_cookies()
    login(page, annotator.username)
    page.goto(f"{live_server.url}/projects/{busy_project.slug}/")
    expect(page.get_by_role("heading", name="Your work")).to_be_visible()
    expect(page.get_by_role("heading", name="Comparisons")).to_have_count(0)
    expect(page.get_by_role("navigation", name="Manage")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "annotator-overview.png"), full_page=True)


def test_prompt_upload_lists_errors_per_line(page, live_server, login, project, manager, artifacts_dir, tmp_path):
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"id": "a", "prompt": "Fine"}\n{"id": "b"}\nnot json\n{"id": "a", "prompt": "Duplicate"}\n')
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "a", "prompt": "Fine"}\n{"id": "b", "messages": [{"role": "user", "content": "Hi"}]}\n')
    login(page, manager.username)
    page.goto(f"{live_server.url}/projects/{project.slug}/")
    page.get_by_role("link", name="Upload prompts").click()
    page.get_by_label("File").set_input_files(str(bad))
    page.get_by_role("button", name="Import").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Nothing was imported")
    rows = alert.get_by_role("row")
    expect(rows).to_have_count(4)  # header and one row per bad line
    lines = [rows.nth(i).get_by_role("cell").first.inner_text() for i in range(1, 4)]
    assert lines == ["2", "3", "4"]
    assert Prompt.objects.count() == 0
    page.screenshot(path=str(artifacts_dir / "manager-upload-errors.png"), full_page=True)
    assert no_horizontal_scroll(page)
    assert a11y_problems(page) == []

    page.get_by_label("File").set_input_files(str(good))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status")).to_contain_text("Imported 2 prompts")
    assert Prompt.objects.filter(project=project).count() == 2
    page.screenshot(path=str(artifacts_dir / "manager-upload-done.png"), full_page=True)


def test_add_member_with_the_keyboard_only(page, live_server, login, project, manager, artifacts_dir):
    UserFactory(username="newcomer")
    login(page, manager.username)
    page.goto(f"{live_server.url}/projects/{project.slug}/members/")
    now = tab_to(page, lambda el: el["name"] == "username")
    assert now["outline"] != "none" and now["outlineWidth"] != "0px"  # focus is visible
    page.keyboard.type("newcomer")
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "role"
    page.keyboard.type("Adj")  # a focused select picks the option whose label starts so
    page.keyboard.press("Tab")
    button = focused(page)
    assert button["tag"] == "BUTTON" and button["text"] == "Add"
    page.screenshot(path=str(artifacts_dir / "manager-members-keyboard.png"), full_page=True)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Added newcomer as adjudicator")
    expect(page.get_by_role("row", name="newcomer")).to_contain_text("Adjudicator")
    assert Membership.objects.get(project=project, user__username="newcomer").role == "adjudicator"
    page.screenshot(path=str(artifacts_dir / "manager-members.png"), full_page=True)
    assert a11y_problems(page) == []


def test_create_api_token(page, live_server, login, project, manager, artifacts_dir):
    login(page, manager.username)
    page.goto(f"{live_server.url}/account/tokens/")
    expect(page.get_by_role("heading", name="You have no token")).to_be_visible()
    page.get_by_role("button", name="Create token").click()
    key = page.get_by_role("textbox", name="Token").input_value()
    assert key == Token.objects.get(user=manager).key
    page.screenshot(path=str(artifacts_dir / "manager-token.png"), full_page=True)
    assert a11y_problems(page) == []
    page.goto(f"{live_server.url}/account/tokens/")
    expect(page.get_by_role("heading", name="You have a token")).to_be_visible()
    assert key not in page.content()  # shown once only


def test_generation_and_judging_pages(page, live_server, login, busy_project, manager, artifacts_dir):
    login(page, manager.username)
    page.goto(f"{live_server.url}/projects/{busy_project.slug}/")
    page.get_by_role("link", name="Candidate generation").click()
    expect(page.get_by_role("heading", name="Candidate generation", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Recent runs")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "manager-generation.png"), full_page=True)
    assert no_horizontal_scroll(page)
    assert a11y_problems(page) == []

    page.get_by_role("link", name="Start generation").click()
    expect(page.get_by_role("combobox", name="Strategy")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "manager-generation-new.png"), full_page=True)
    assert no_horizontal_scroll(page)
    assert a11y_problems(page) == []

    page.goto(f"{live_server.url}/projects/{busy_project.slug}/judging/")
    expect(page.get_by_role("heading", name="AI judges", level=1)).to_be_visible()
    runs = page.locator("#judging-runs")
    expect(runs.get_by_role("row")).to_have_count(4)
    expect(runs).to_contain_text("failed")
    expect(page.get_by_label("Progress of run", exact=False).first).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "manager-judging.png"), full_page=True)
    assert no_horizontal_scroll(page)
    assert a11y_problems(page) == []

    page.get_by_role("link", name="demonstration pool").click()
    expect(page.get_by_role("heading", name="Demonstration pool", level=1)).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "manager-demonstrations.png"), full_page=True)
    assert no_horizontal_scroll(page)
    assert a11y_problems(page) == []


def test_other_managers_pages_are_not_reachable_by_annotators(page, live_server, login, project, annotator):
    other = MembershipFactory(role="manager").project
    login(page, annotator.username)
    for path in (f"/projects/{project.slug}/upload/", f"/projects/{other.slug}/", f"/projects/{project.slug}/judging/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 404, path


def test_the_accessibility_check_finds_problems(page):
    page.set_content(
        "<main><h1>Title</h1><h3>Skipped a level</h3><input id='a' aria-describedby='nothing'>"
        "<label>Named <select></select></label><table><tr><th>No scope</th></tr></table></main>"
    )
    problems = a11y_problems(page)
    assert [p.split(":")[0] for p in problems] == [
        "unlabelled",
        "aria-describedby to nothing",
        "th without scope",
        "heading level skipped",
    ]
