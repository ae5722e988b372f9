"""REST API v1: the queue over HTTP, blind labeling, exports, tokens, the OpenAPI schema and docs."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from drf_spectacular.validation import validate_schema
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.api import serializers as s
from annotate.models import (
    Assignment,
    AssignmentState,
    ExportJob,
    JudgeSpec,
    Judgment,
    ModelKind,
    Principle,
    RunStatus,
    Source,
)
from annotate.services.best_of_n import comparison_create_best_of_n
from tests.factories import (
    CandidateFactory,
    CandidateSetFactory,
    MembershipFactory,
    ProjectFactory,
    PromptFactory,
    UserFactory,
    make_pair,
)

pytestmark = pytest.mark.django_db


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def claim(client, project):
    return client.post(reverse("api-queue-claim", args=[project.slug]))


def submit(client, project, lease_id, body):
    return client.post(reverse("api-queue-submit", args=[project.slug, lease_id]), body, format="json")


# --- the queue over HTTP ---------------------------------------------------------------------------


def test_claim_submit_flow_with_token(project, annotator):
    item = make_pair(project)
    principle = Principle.objects.create(project=project, name="helpful", text="Be helpful.")
    api = api_for(annotator)
    response = claim(api, project)
    assert response.status_code == 200
    body = response.json()
    assert s.ItemSerializer(data=body).is_valid(), "claim answers ItemSerializer's shape"
    assert body["comparison"] == item.pk and body["kind"] == "pair"
    assert body["prompt"] == item.prompt.messages
    lease = Assignment.objects.get(pk=body["lease"])
    shown = ["Answer B", "Answer A"] if lease.swapped else ["Answer A", "Answer B"]
    assert [r["text"] for r in body["responses"]] == shown
    assert body["principles"] == [{"id": principle.pk, "name": "helpful", "text": "Be helpful."}]
    # Blind: nothing identifies candidates, generators or other verdicts.
    assert set(body) == {
        "lease",
        "comparison",
        "kind",
        "expires_at",
        "prompt",
        "responses",
        "guidelines",
        "principles",
        "require_rationale",
    }
    assert claim(api, project).json()["lease"] == body["lease"]  # claim is idempotent
    verdict = {
        "choice": "left",
        "strength": "strong",
        "rationale": "clearer",
        "time_spent_ms": 4200,
        "submission_key": "abc-1",
        "principle_choices": {str(principle.pk): "right"},
    }
    first = submit(api, project, body["lease"], verdict)
    assert first.status_code == 201, first.json()
    assert first.json()["shown_choice"] == "left" and first.json()["submission_key"] == "abc-1"
    again = submit(api, project, body["lease"], verdict)
    assert again.status_code == 200 and again.json() == first.json()
    assert Judgment.objects.count() == 1
    assert claim(api, project).status_code == 204  # nothing left for this person


def test_skip_and_release_over_http(project, annotator):
    make_pair(project)
    api = api_for(annotator)
    lease = claim(api, project).json()["lease"]
    released = api.post(reverse("api-queue-release", args=[project.slug, lease]))
    assert released.status_code == 200 and released.json()["state"] == AssignmentState.RELEASED
    again = claim(api, project).json()["lease"]
    assert again != lease
    skipped = api.post(reverse("api-queue-skip", args=[project.slug, again]))
    assert skipped.status_code == 200 and skipped.json()["state"] == AssignmentState.SKIPPED
    assert claim(api, project).status_code == 204
    # Submitting a closed lease is a conflict, not a server error.
    closed = submit(api, project, again, {"choice": "left"})
    assert closed.status_code == 409 and closed.json()["code"] == "LeaseClosed"


def test_best_of_n_over_http(project, annotator):
    cset = CandidateSetFactory(prompt=PromptFactory(project=project), n=4)
    for i in range(4):
        CandidateFactory(candidate_set=cset, position=i, text=f"Option {i}")
    comparison_create_best_of_n(candidate_set=cset)
    api = api_for(annotator)
    body = claim(api, project).json()
    assert body["kind"] == "best_of_n" and [r["position"] for r in body["responses"]] == [1, 2, 3, 4]
    wrong = submit(api, project, body["lease"], {"choice": "left"})
    assert wrong.status_code == 400 and "choice" in wrong.json()
    out_of_range = submit(api, project, body["lease"], {"best": 5})
    assert out_of_range.status_code == 400 and "best" in out_of_range.json()
    ok = submit(api, project, body["lease"], {"best": 2, "worst": 4, "submission_key": "b1"})
    assert ok.status_code == 201, ok.json()
    assert (ok.json()["best"], ok.json()["worst"], ok.json()["choice"]) == (2, 4, "pick")
    mine = api.get(reverse("api-my-judgments", args=[project.slug])).json()["results"]
    assert len(mine) == 1 + 5  # the pick and the 2N-3 pairwise outcomes it implies
    assert sum(j["derived_from"] == ok.json()["id"] for j in mine) == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "choice"),
        ({"choice": "up"}, "choice"),
        ({"choice": "left", "best": 1}, "choice"),
        ({"worst": 2}, "best"),
        ({"best": 0}, "best"),
        ({"choice": "left", "strength": "huge"}, "strength"),
        ({"choice": "left", "time_spent_ms": -1}, "time_spent_ms"),
        ({"choice": "left", "time_spent_ms": "soon"}, "time_spent_ms"),
        ({"choice": "left", "submission_key": "k" * 65}, "submission_key"),
        ({"choice": "left", "rationale": "x" * 5001}, "rationale"),
        ({"choice": "left", "principle_choices": {"helpful": "left"}}, "principle_choices"),
        ({"choice": "left", "principle_choices": {"1": "up"}}, "principle_choices"),
        ({"choice": "left", "principle_choices": ["left"]}, "principle_choices"),
        ({"choice": "left", "principle_choices": {"999999": "left"}}, "principle_choices"),
        ({"choice": "left", "best": 2}, "choice"),
    ],
)
def test_bad_submissions_get_field_errors_never_5xx(project, annotator, body, field):
    make_pair(project)
    api = api_for(annotator)
    lease = claim(api, project).json()["lease"]
    response = submit(api, project, lease, body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Judgment.objects.count() == 0


def test_garbage_bodies_are_4xx(project, annotator):
    make_pair(project)
    api = api_for(annotator)
    lease = claim(api, project).json()["lease"]
    url = reverse("api-queue-submit", args=[project.slug, lease])
    assert api.post(url, "{not json", content_type="application/json").status_code == 400
    assert api.post(url, json.dumps([1, 2]), content_type="application/json").status_code == 400
    assert api.post(url, "choice=left", content_type="text/plain").status_code == 415
    assert submit(api, project, 987654321, {"choice": "left"}).status_code == 404
    huge = 10**25  # beyond bigint: still a 404, not a database error
    assert submit(api, project, huge, {"choice": "left"}).status_code == 404
    assert api.get(reverse("api-comparison-detail", args=[project.slug, huge])).status_code == 404
    principle_huge = {"choice": "left", "principle_choices": {str(huge): "left"}}
    assert submit(api, project, lease, principle_huge).status_code == 400
    mine = reverse("api-my-judgments", args=[project.slug])
    assert api.get(mine, {"cursor": "bz1ub3Rhbm51bWJlcg=="}).status_code == 404  # o=notanumber
    assert api.get(mine, {"cursor": "%%%"}).status_code < 500
    assert api.get(mine, {"page_size": "lots"}).status_code == 200  # ignored, default size
    assert api.get("/api/v1/projects/no-such-project/").status_code == 404


def test_rationale_required_is_a_field_error(annotator, project):
    project.require_rationale = True
    project.save()
    make_pair(project)
    api = api_for(annotator)
    lease = claim(api, project).json()["lease"]
    response = submit(api, project, lease, {"choice": "tie", "rationale": "   "})
    assert response.status_code == 400 and "rationale" in response.json()


def test_someone_elses_lease_is_404(project, annotator):
    make_pair(project)
    lease = claim(api_for(annotator), project).json()["lease"]
    other = UserFactory()
    MembershipFactory(project=project, user=other)
    api = api_for(other)
    assert submit(api, project, lease, {"choice": "left"}).status_code == 404
    assert api.post(reverse("api-queue-skip", args=[project.slug, lease])).status_code == 404
    assert api.post(reverse("api-queue-release", args=[project.slug, lease])).status_code == 404
    # And one's own lease through another project's URL is 404 as well.
    elsewhere = ProjectFactory()
    MembershipFactory(project=elsewhere, user=annotator)
    assert submit(api_for(annotator), elsewhere, lease, {"choice": "left"}).status_code == 404


# --- my judgments and blind labeling ---------------------------------------------------------------


def test_my_judgments_are_only_mine_and_cursor_paginated(project):
    project.overlap = 2
    project.save()
    me, other = UserFactory(), UserFactory()
    for user in (me, other):
        MembershipFactory(project=project, user=user)
    for _ in range(3):
        make_pair(project)
    for user in (me, other):
        api = api_for(user)
        for i in range(3):
            lease = claim(api, project).json()["lease"]
            assert submit(api, project, lease, {"choice": "tie", "submission_key": f"{user.pk}-{i}"}).status_code == 201
    api = api_for(me)
    url = reverse("api-my-judgments", args=[project.slug])
    page = api.get(url, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    rest = api.get(page["next"]).json()
    ids = [j["id"] for j in page["results"] + rest["results"]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    assert set(ids) == set(Judgment.objects.filter(annotator=me).values_list("id", flat=True))


def test_comparison_detail_is_blind_for_annotators_and_full_for_managers(project, manager):
    project.overlap = 2
    project.save()
    first, second = UserFactory(), UserFactory()
    for user in (first, second):
        MembershipFactory(project=project, user=user)
    item = make_pair(project)
    judge = JudgeSpec.objects.create(name="judge-x", kind=ModelKind.TRANSFORMERS)
    Judgment.objects.create(comparison=item, source=Source.AI, judge=judge, choice="a", confidence=0.9)
    lease = claim(api_for(first), project).json()["lease"]
    submit(api_for(first), project, lease, {"choice": "left", "rationale": "first's reason"})
    second_api = api_for(second)
    second_lease = claim(second_api, project).json()["lease"]
    url = reverse("api-comparison-detail", args=[project.slug, item.pk])
    blind = second_api.get(url)
    assert blind.status_code == 200
    body = blind.json()
    assert body["access"] == "blind" and body["my_judgments"] == []
    text = json.dumps(body)
    assert "first's reason" not in text and "judge-x" not in text and "0.9" not in text
    assert "judgments" not in body and "candidates" not in body
    lease_obj = Assignment.objects.get(pk=second_lease)
    shown = ["Answer B", "Answer A"] if lease_obj.swapped else ["Answer A", "Answer B"]
    assert [r["text"] for r in body["responses"]] == shown  # as this person sees it
    # After submitting, they see their own judgment and still nobody else's.
    submit(second_api, project, second_lease, {"choice": "right", "rationale": "second's reason"})
    body = second_api.get(url).json()
    assert [j["rationale"] for j in body["my_judgments"]] == ["second's reason"]
    assert "first's reason" not in json.dumps(body) and "judge-x" not in json.dumps(body)
    # A manager sees everything.
    full = api_for(manager).get(url).json()
    assert full["access"] == "full"
    assert {j["source"] for j in full["judgments"]} == {"human", "ai"}
    assert {j["rationale"] for j in full["judgments"] if j["source"] == "human"} == {
        "first's reason",
        "second's reason",
    }
    assert [c["id"] for c in full["candidates"]] == [item.candidate_a_id, item.candidate_b_id]


def test_annotators_cannot_open_items_they_never_had(project, annotator):
    item = make_pair(project)
    response = api_for(annotator).get(reverse("api-comparison-detail", args=[project.slug, item.pk]))
    assert response.status_code == 404


def test_adjudicators_see_verdicts_only_on_items_in_adjudication(project):
    project.overlap = 1
    project.save()
    labeller, adjudicator = UserFactory(), UserFactory()
    MembershipFactory(project=project, user=labeller)
    MembershipFactory(project=project, user=adjudicator, role="adjudicator")
    disputed = make_pair(project)
    lease = claim(api_for(labeller), project).json()["lease"]
    submit(api_for(labeller), project, lease, {"choice": "left", "rationale": "mine"})
    url = reverse("api-comparison-detail", args=[project.slug, disputed.pk])
    assert api_for(adjudicator).get(url).status_code == 404
    disputed.status = "adjudication"
    disputed.save(update_fields=["status"])
    full = api_for(adjudicator).get(url).json()
    assert full["access"] == "full" and [j["rationale"] for j in full["judgments"]] == ["mine"]


# --- export jobs ---------------------------------------------------------------------------------------


def test_export_job_writes_dpo_and_managers_download_it(
    project, manager, annotator, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.CONCORD_EXPORT_DIR = tmp_path
    item = make_pair(project)
    api = api_for(annotator)
    body = claim(api, project).json()
    lease = Assignment.objects.get(pk=body["lease"])
    submit(api, project, body["lease"], {"choice": "right" if lease.swapped else "left"})  # prefers A
    boss = api_for(manager)
    with django_capture_on_commit_callbacks(execute=True):
        created = boss.post(reverse("api-export-list", args=[project.slug]), {"format": "dpo"}, format="json")
    assert created.status_code == 202
    job = ExportJob.objects.get(pk=created.json()["id"])
    assert job.status == RunStatus.DONE and job.rows == 1
    detail = boss.get(reverse("api-export-detail", args=[project.slug, job.pk])).json()
    assert detail["status"] == "done" and detail["download_url"].endswith(f"/exports/{job.pk}/download/")
    download = boss.get(detail["download_url"], HTTP_ACCEPT="application/x-ndjson")
    assert download.status_code == 200
    rows = [json.loads(line) for line in b"".join(download.streaming_content).decode().splitlines()]
    assert rows[0]["comparison_id"] == item.pk
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "Answer A"}]
    listed = boss.get(reverse("api-export-list", args=[project.slug])).json()["results"]
    assert [j["id"] for j in listed] == [job.pk]
    # Annotators get nothing: not the list, not the file.
    assert api.get(reverse("api-export-list", args=[project.slug])).status_code == 404
    assert api.get(detail["download_url"]).status_code == 404


def test_export_not_ready_and_bad_requests(project, manager, settings, tmp_path):
    settings.CONCORD_EXPORT_DIR = tmp_path
    boss = api_for(manager)
    queued = boss.post(reverse("api-export-list", args=[project.slug]), {}, format="json")  # not run: no commit
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    url = reverse("api-export-download", args=[project.slug, queued.json()["id"]])
    assert boss.get(url).status_code == 409
    bad = boss.post(reverse("api-export-list", args=[project.slug]), {"format": "csv", "min_agreement": 2})
    assert bad.status_code == 400 and set(bad.json()) == {"format", "min_agreement"}


def test_export_task_is_idempotent(project, manager, settings, tmp_path):
    from annotate.services.exports import export_job_run

    settings.CONCORD_EXPORT_DIR = tmp_path
    job = ExportJob.objects.create(project=project, requested_by=manager, status=RunStatus.QUEUED)
    first = export_job_run(job_id=job.pk)
    assert first.status == RunStatus.DONE and first.attempts == 1
    assert export_job_run(job_id=job.pk).attempts == 1  # done stays done
    assert export_job_run(job_id=123456789) is None


# --- schema, docs, tokens ------------------------------------------------------------------------------


def test_openapi_schema_validates_and_lists_every_endpoint(annotator):
    response = api_for(annotator).get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    paths = set(schema["paths"])
    for path in (
        "/api/v1/projects/",
        "/api/v1/projects/{slug}/",
        "/api/v1/projects/{slug}/prompts/import/",
        "/api/v1/projects/{slug}/queue/claim/",
        "/api/v1/projects/{slug}/queue/{lease_id}/submit/",
        "/api/v1/projects/{slug}/queue/{lease_id}/skip/",
        "/api/v1/projects/{slug}/queue/{lease_id}/release/",
        "/api/v1/projects/{slug}/judgments/mine/",
        "/api/v1/projects/{slug}/comparisons/{comparison_id}/",
        "/api/v1/projects/{slug}/exports/",
        "/api/v1/projects/{slug}/exports/{job_id}/",
        "/api/v1/projects/{slug}/exports/{job_id}/download/",
    ):
        assert path in paths, path
    assert "tokenAuth" in json.dumps(schema["components"]["securitySchemes"])


def test_schema_and_docs_need_login(client):
    assert APIClient().get(reverse("api-schema")).status_code in (401, 403)
    response = client.get(reverse("api-docs"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_swagger_ui_is_served_without_a_cdn(client, annotator):
    client.force_login(annotator)
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    # No external address at all (a bare "cdn" substring can occur in the random CSRF token).
    assert "https://" not in html and "http://" not in html and '="//' not in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    bundle = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert bundle.status_code == 200


def test_token_page_creates_shows_once_and_revokes(client, annotator, project):
    make_pair(project)
    client.force_login(annotator)
    url = reverse("api-tokens")
    assert b"You have no token" in client.get(url).content
    created = client.post(url, {"action": "create"})
    assert created.status_code == 201
    key = Token.objects.get(user=annotator).key
    assert key.encode() in created.content
    assert key.encode() not in client.get(url).content  # shown only once
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert claim(api, project).status_code == 200
    replaced = client.post(url, {"action": "create"})
    new_key = Token.objects.get(user=annotator).key
    assert new_key != key and new_key.encode() in replaced.content
    assert claim(api, project).status_code == 401  # the old token stopped working
    assert client.post(url, {"action": "revoke"}).status_code == 302
    assert not Token.objects.filter(user=annotator).exists()
    assert client.post(url, {"action": "nope"}).status_code == 400


def test_token_page_needs_login(client):
    response = client.get(reverse("api-tokens"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
