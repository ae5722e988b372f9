"""Every role x every endpoint: who may do what (API and the labeling pages).

Roles: anonymous, outsider (a user of another project), annotator, adjudicator, manager, staff
(a Django staff user with no membership: an admin). Refusals to signed-in users are 404 (a project
you have no role in looks like one that does not exist); anonymous API calls get 401/403, anonymous
pages redirect to the login page.
"""

from __future__ import annotations

from io import BytesIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotate.models import Assignment, ExportJob, RunStatus
from annotate.services.queue import assignment_claim
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_pair

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "outsider", "annotator", "adjudicator", "manager", "staff")
MEMBERS = {"annotator", "adjudicator", "manager", "staff"}
LABELLERS = MEMBERS
MANAGERS = {"manager", "staff"}


@pytest.fixture
def world(settings, tmp_path):
    settings.CONCORD_EXPORT_DIR = tmp_path
    project = ProjectFactory(overlap=3)
    users = {"anonymous": None, "outsider": UserFactory(), "staff": UserFactory(is_staff=True)}
    MembershipFactory(project=ProjectFactory(), user=users["outsider"])  # a member elsewhere
    for role in ("annotator", "adjudicator", "manager"):
        users[role] = UserFactory()
        MembershipFactory(project=project, user=users[role], role=role)
    items = [make_pair(project) for _ in range(8)]
    job = ExportJob.objects.create(project=project, status=RunStatus.DONE, file_name="x.jsonl", rows=0)
    (tmp_path / "x.jsonl").write_text("")
    return {"project": project, "users": users, "items": items, "job": job}


def api_client(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def own_lease(world, role):
    """A lease held by the caller when they may hold one, else one held by the annotator (so the
    URL is real and the refusal is about the role, not a missing row)."""
    user = world["users"][role]
    holder = user if role in LABELLERS else world["users"]["annotator"]
    return assignment_claim(project=world["project"], user=holder)


def call(world, role, endpoint):
    project, user = world["project"], world["users"][role]
    slug = project.slug
    client = api_client(user)
    if endpoint == "project-list":
        return client.get(reverse("api-project-list")), MEMBERS | {"outsider"}
    if endpoint == "project-detail":
        return client.get(reverse("api-project-detail", args=[slug])), MEMBERS
    if endpoint == "prompt-import":
        upload = SimpleUploadedFile("p.jsonl", b'{"id": "new-1", "prompt": "Hello?"}\n')
        return client.post(reverse("api-prompt-import", args=[slug]), {"file": upload}), MANAGERS
    if endpoint == "queue-claim":
        return client.post(reverse("api-queue-claim", args=[slug])), LABELLERS
    if endpoint in ("queue-submit", "queue-skip", "queue-release"):
        lease = own_lease(world, role)
        body = {"choice": "left"} if endpoint == "queue-submit" else None
        url = reverse(f"api-{endpoint}", args=[slug, lease.pk])
        return client.post(url, body, format="json"), LABELLERS
    if endpoint == "my-judgments":
        return client.get(reverse("api-my-judgments", args=[slug])), MEMBERS
    if endpoint == "comparison-detail":
        lease = own_lease(world, role)
        return client.get(reverse("api-comparison-detail", args=[slug, lease.comparison_id])), LABELLERS
    if endpoint == "export-list":
        return client.get(reverse("api-export-list", args=[slug])), MANAGERS
    if endpoint == "export-create":
        return client.post(reverse("api-export-list", args=[slug]), {"format": "dpo"}, format="json"), MANAGERS
    if endpoint == "export-detail":
        return client.get(reverse("api-export-detail", args=[slug, world["job"].pk])), MANAGERS
    if endpoint == "export-download":
        return client.get(reverse("api-export-download", args=[slug, world["job"].pk])), MANAGERS
    raise AssertionError(endpoint)


API_ENDPOINTS = (
    "project-list",
    "project-detail",
    "prompt-import",
    "queue-claim",
    "queue-submit",
    "queue-skip",
    "queue-release",
    "my-judgments",
    "comparison-detail",
    "export-list",
    "export-create",
    "export-detail",
    "export-download",
)


@pytest.mark.parametrize("endpoint", API_ENDPOINTS)
@pytest.mark.parametrize("role", ROLES)
def test_api_permissions(world, role, endpoint):
    response, allowed = call(world, role, endpoint)
    if role == "anonymous":
        assert response.status_code in (401, 403), response.status_code
    elif role in allowed:
        assert 200 <= response.status_code < 300, (response.status_code, getattr(response, "data", None))
    else:
        assert response.status_code == 404, response.status_code


def test_project_list_shows_only_own_projects(world):
    listed = api_client(world["users"]["outsider"]).get(reverse("api-project-list")).json()["results"]
    assert world["project"].slug not in [p["slug"] for p in listed] and len(listed) == 1
    everything = api_client(world["users"]["staff"]).get(reverse("api-project-list")).json()["results"]
    assert world["project"].slug in [p["slug"] for p in everything]


def test_project_detail_reports_the_callers_roles(world):
    url = reverse("api-project-detail", args=[world["project"].slug])
    assert api_client(world["users"]["adjudicator"]).get(url).json()["roles"] == ["adjudicator"]
    assert api_client(world["users"]["staff"]).get(url).json()["roles"] == ["manager"]


PAGES = ("annotate-next", "annotate-submit", "annotate-skip", "project-detail", "prompt-upload", "api-tokens")


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_page_permissions(client, world, role, page):
    project, user = world["project"], world["users"][role]
    if user is not None:
        client.force_login(user)
    allowed = {
        "annotate-next": LABELLERS,
        "annotate-submit": LABELLERS,
        "annotate-skip": LABELLERS,
        "project-detail": MEMBERS,
        "prompt-upload": MANAGERS,
        "api-tokens": MEMBERS | {"outsider"},
    }[page]
    if page in ("annotate-submit", "annotate-skip"):
        lease = own_lease(world, role)
        body = {"choice": "left", "submission_key": f"k-{role}"} if page == "annotate-submit" else {}
        response = client.post(reverse(page, args=[project.slug, lease.pk]), body)
    elif page == "api-tokens":
        response = client.get(reverse(page))
    else:
        response = client.get(reverse(page, args=[project.slug]))
    if role == "anonymous":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    elif role in allowed:
        assert response.status_code in (200, 302), response.status_code
        if page == "annotate-submit":
            assert Assignment.objects.get(pk=lease.pk).state == "submitted"
    else:
        assert response.status_code == 404, response.status_code


def test_members_without_a_role_for_an_action_learn_nothing(world):
    """The refusal is the same 404 as for a project that does not exist."""
    client = api_client(world["users"]["annotator"])
    refused = client.get(reverse("api-export-list", args=[world["project"].slug]))
    missing = client.get(reverse("api-export-list", args=["no-such-project"]))
    assert refused.status_code == missing.status_code == 404
    assert refused.json() == missing.json()


def test_import_stays_manager_only_with_a_real_file(world):
    upload = BytesIO(b'{"id": "z", "prompt": "q"}\n')
    upload.name = "p.jsonl"
    response = api_client(world["users"]["adjudicator"]).post(
        reverse("api-prompt-import", args=[world["project"].slug]), {"file": upload}
    )
    assert response.status_code == 404


def test_services_check_roles_too(world):
    """Defence in depth: the services refuse people without the role, whatever view calls them."""
    from django.core.exceptions import PermissionDenied

    from annotate.services.exports import export_job_create

    with pytest.raises(PermissionDenied):
        assignment_claim(project=world["project"], user=world["users"]["outsider"])
    with pytest.raises(PermissionDenied):
        export_job_create(project=world["project"], user=world["users"]["annotator"])
    assert assignment_claim(project=world["project"], user=world["users"]["staff"]) is not None
