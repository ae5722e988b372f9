"""The judging screens: permissions, starting runs, htmx polling, honest consistency figures."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import (
    Choice,
    DemonstrationPool,
    JudgeRun,
    JudgeSpec,
    JudgeTask,
    Judgment,
    ModelKind,
    RunStatus,
    Source,
)
from annotate.services.judging import DEFAULT_JUDGE_NAME
from tests.factories import make_pair

pytestmark = pytest.mark.django_db


@pytest.fixture
def spec():
    return JudgeSpec.objects.create(name="local-judge", kind=ModelKind.TRANSFORMERS, model="/models/x")


def _verdicts(project, spec, choice, order_choices, n=4):
    for _ in range(n):
        Judgment.objects.create(
            comparison=make_pair(project),
            source=Source.AI,
            judge=spec,
            judge_version=spec.version,
            choice=choice,
            confidence=0.9,
            probabilities={
                "ab": {"first": 0.9, "second": 0.05, "na": 0.05, "mass": 0.8},
                "ba": {"first": 0.9, "second": 0.05, "na": 0.05, "mass": 0.7},
                "order_choices": order_choices,
            },
        )


@pytest.mark.parametrize("name", ["judging", "judging-runs", "demonstrations"])
def test_only_managers_see_the_judging_pages(client, project, annotator, outsider, manager, name):
    url = reverse(name, args=[project.slug])
    for user in (outsider, annotator):
        client.force_login(user)
        assert client.get(url).status_code == 404
    client.force_login(manager)
    assert client.get(url).status_code == 200


def test_non_managers_cannot_start_judges(client, project, annotator, spec):
    client.force_login(annotator)
    response = client.post(reverse("judging-start", args=[project.slug]), {"judge": spec.pk, "task": "pairwise"})
    assert response.status_code == 404 and not JudgeRun.objects.exists()


def test_a_judge_at_chance_is_called_out(client, project, manager, spec):
    _verdicts(project, spec, Choice.INCONSISTENT, ["a", "b"])  # always picks the first position
    client.force_login(manager)
    page = client.get(reverse("judging", args=[project.slug])).content.decode()
    assert "local-judge is at chance as an A/B judge" in page
    assert "None of these verdicts becomes a label" in page
    assert "100 %" in page  # inconsistent on all of them, first position every time


def test_a_consistent_judge_is_not_called_out(client, project, manager, spec):
    _verdicts(project, spec, Choice.A, ["a", "a"])  # a wins whichever is shown first
    client.force_login(manager)
    page = client.get(reverse("judging", args=[project.slug])).content.decode()
    assert "at chance" not in page
    assert "50 %" in page  # picks the first position half of the time: no position bias


def test_overview_query_count_does_not_grow_with_runs(client, project, manager, spec, django_assert_max_num_queries):
    _verdicts(project, spec, Choice.A, ["a", "a"], n=2)
    client.force_login(manager)
    url = reverse("judging", args=[project.slug])
    client.get(url)
    for task in (JudgeTask.PAIRWISE, JudgeTask.LIKELIHOOD, JudgeTask.LISTWISE):
        JudgeRun.objects.create(project=project, judge=spec, judge_version="1", task=task, status=RunStatus.DONE)
    _verdicts(project, spec, Choice.B, ["b", "b"], n=3)
    with django_assert_max_num_queries(20):
        assert client.get(url).status_code == 200


def test_start_queues_one_task_and_defaults_to_the_built_in_judge(
    client, project, manager, django_capture_on_commit_callbacks
):
    make_pair(project)
    client.force_login(manager)
    url = reverse("judging-start", args=[project.slug])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url, {"judge": "", "task": "pairwise", "reference": "none"})
    assert response.status_code == 302 and len(callbacks) == 1
    run = JudgeRun.objects.get()
    assert run.judge.name == DEFAULT_JUDGE_NAME and run.status == RunStatus.QUEUED and run.total == 1
    assert run.created_by == manager


def test_start_refuses_spa_without_a_reference(client, project, manager, spec):
    client.force_login(manager)
    response = client.post(
        reverse("judging-start", args=[project.slug]),
        {"judge": spec.pk, "task": "spa", "reference": "none"},
        follow=True,
    )
    assert "SPA needs a reference model" in response.content.decode()
    assert not JudgeRun.objects.exists()


def test_runs_fragment_polls_while_a_run_is_active(client, project, manager, spec):
    client.force_login(manager)
    url = reverse("judging-runs", args=[project.slug])
    idle = client.get(url, headers={"HX-Request": "true"})
    assert idle.status_code == 286 and b'id="judging-runs"' in idle.content and b"<html" not in idle.content
    run = JudgeRun.objects.create(project=project, judge=spec, judge_version="1", task=JudgeTask.PAIRWISE, total=10)
    busy = client.get(url, headers={"HX-Request": "true"})
    assert busy.status_code == 200 and b'hx-trigger="every 2s"' in busy.content and b"0 / 10" in busy.content
    run.status, run.error = RunStatus.FAILED, "OSError: the model folder is missing"
    run.save()
    page = client.get(reverse("judging", args=[project.slug])).content.decode()
    assert "the model folder is missing" in page and reverse("judging-retry", args=[project.slug, run.pk]) in page


def test_retry_requeues_a_failed_run(client, project, manager, spec, django_capture_on_commit_callbacks):
    run = JudgeRun.objects.create(
        project=project, judge=spec, judge_version="1", task=JudgeTask.PAIRWISE, status=RunStatus.FAILED, error="x"
    )
    client.force_login(manager)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(reverse("judging-retry", args=[project.slug, run.pk]))
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.error == "" and len(callbacks) == 1


def test_routing_settings_form(client, project, manager):
    client.force_login(manager)
    url = reverse("judging-settings", args=[project.slug])
    data = {
        "min_confidence": 0.8,
        "audit_rate": 0.1,
        "min_votes": 2,
        "spa_flag_percent": 20,
        "spa_beta": 0.1,
        "agreement_rule": "lcs",
        "demo_k": 3,
        "demo_min_tau": 0.9,
    }
    client.post(url, data)
    project.refresh_from_db()
    assert project.options["routing"]["agreement_rule"] == "lcs" and project.options["routing"]["min_votes"] == 2
    response = client.post(url, {**data, "audit_rate": 5}, follow=True)
    assert "Settings not saved" in response.content.decode()
    project.refresh_from_db()
    assert project.options["routing"]["audit_rate"] == 0.1


def test_adding_a_server_judge(client, project, manager):
    client.force_login(manager)
    url = reverse("judge-create", args=[project.slug])
    response = client.post(url, {"name": "big", "kind": "openai", "model": "qwen", "params": ""}, follow=True)
    assert "needs the server" in response.content.decode() and not JudgeSpec.objects.filter(name="big").exists()
    client.post(
        url,
        {
            "name": "big",
            "kind": "openai",
            "model": "qwen",
            "endpoint": "http://gpu-box:8000/v1",
            "api_key_env": "GPU_BOX_KEY",
            "params": '{"top_logprobs": 10}',
        },
    )
    spec = JudgeSpec.objects.get(name="big")
    assert spec.api_key_env == "GPU_BOX_KEY" and spec.params == {"top_logprobs": 10}


def test_demonstrations_page_adds_and_removes_versions(client, project, manager):
    client.force_login(manager)
    url = reverse("demonstrations", args=[project.slug])
    bad = client.post(url, {"prompt": "Best fruit?", "candidates": "Apple\n---\nMango", "ranking": "I like both"})
    assert bad.status_code == 400 and not DemonstrationPool.objects.filter(version__gt=0).exists()
    client.post(url, {"prompt": "Best fruit?", "candidates": "Apple\n---\nMango, ripe", "ranking": "[2] > [1]"})
    pool = DemonstrationPool.objects.get(project=project)
    demo = pool.demonstrations.get()
    assert pool.version == 1 and demo.candidates == ["Apple", "Mango, ripe"] and demo.ranking == [1, 0]
    assert demo.created_by == manager
    page = client.get(url).content.decode()
    assert "Version 1" in page and "[2] &gt; [1]" in page
    client.post(reverse("demonstration-remove", args=[project.slug, demo.pk]))
    pool.refresh_from_db()
    demo.refresh_from_db()
    assert pool.version == 2 and demo.removed_in == 2


def test_project_page_links_managers_to_the_judges(client, project, manager, annotator):
    client.force_login(manager)
    assert (
        reverse("judging", args=[project.slug])
        in client.get(reverse("project-detail", args=[project.slug])).content.decode()
    )
    client.force_login(annotator)
    assert (
        reverse("judging", args=[project.slug])
        not in client.get(reverse("project-detail", args=[project.slug])).content.decode()
    )


def test_consistency_figures_include_agreement_with_people(project, spec, annotator):
    from annotate.selectors_judging import judge_consistency

    _verdicts(project, spec, Choice.A, ["a", "a"], n=3)
    first, second, _third = Judgment.objects.filter(source=Source.AI).order_by("id")
    for judgment, human in ((first, Choice.A), (second, Choice.B)):
        Judgment.objects.create(comparison=judgment.comparison, source=Source.HUMAN, annotator=annotator, choice=human)
    (row,) = judge_consistency(project=project)
    assert row["compared_with_humans"] == 2 and row["human_agreement"] == 0.5
    assert row["label_mass"] == pytest.approx(0.75) and row["mean_confidence"] == pytest.approx(0.9)
    assert row["consistent_rate"] == 1 and row["first_position_rate"] == 0.5 and not row["at_chance"]
