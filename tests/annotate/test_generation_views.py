"""The data lead's generation pages: permissions, starting runs, progress polling, browsing, comparison."""

import pytest
from django.urls import reverse

from annotate.models import CandidateSet, GenerationRun, GeneratorSpec, ModelKind, RunStatus, Strategy
from annotate.services import generation
from tests.factories import CandidateFactory, CandidateSetFactory, MembershipFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def spec():
    return GeneratorSpec.objects.create(name="tiny", kind=ModelKind.TRANSFORMERS, model="/nowhere", params={})


def done_set(project, strategy=Strategy.IID, distance=0.3, distinct=0.8, generator=None):
    cset = CandidateSetFactory(
        prompt=PromptFactory(project=project),
        strategy=strategy,
        generator=generator,
        diversity={"mean_pairwise_distance": distance, "distinct_2": distinct, "mean_length": 40, "lengths": [40, 40]},
    )
    CandidateFactory(candidate_set=cset, position=0)
    CandidateFactory(candidate_set=cset, position=1)
    return cset


@pytest.mark.parametrize(
    "name", ["generation-overview", "generation-new", "candidate-set-list"], ids=["overview", "new", "sets"]
)
def test_only_managers_see_generation_pages(client, project, annotator, outsider, name):
    url = reverse(name, args=[project.slug])
    assert client.get(url).status_code == 302  # login required
    for user in (annotator, outsider):
        client.force_login(user)
        assert client.get(url).status_code == 404


def test_set_detail_of_another_project_is_404(manager_client, project):
    other = done_set(PromptFactory().project)
    url = reverse("candidate-set-detail", args=[project.slug, other.pk])
    assert manager_client.get(url).status_code == 404


def test_project_page_links_managers_to_generation(manager_client, project, client, annotator):
    url = reverse("project-detail", args=[project.slug])
    overview = reverse("generation-overview", args=[project.slug])
    assert overview in manager_client.get(url).content.decode()
    client.force_login(annotator)
    assert overview not in client.get(url).content.decode()


def test_start_run_for_all_prompts(manager_client, project, spec, django_capture_on_commit_callbacks):
    prompts = [PromptFactory(project=project) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = manager_client.post(
            reverse("generation-new", args=[project.slug]),
            {"strategy": Strategy.NC_VALUES, "generator": spec.pk, "scope": "missing", "n": 4, "temperature": 0.7},
        )
    run = GenerationRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("generation-run", args=[project.slug, run.pk])
    assert run.sets.count() == 3 and run.strategy == Strategy.NC_VALUES and run.generator == spec
    assert {s.prompt_id for s in run.sets.all()} == {p.pk for p in prompts}
    assert all(s.params["temperature"] == 0.7 and s.n == 4 for s in run.sets.all())
    assert len(callbacks) == 1  # one task for the batch (CONCORD_GENERATION_BATCH_PROMPTS=4)


def test_start_run_for_selected_prompts_with_custom_values(manager_client, project, spec):
    a, b, _c = (PromptFactory(project=project) for _ in range(3))
    response = manager_client.post(
        reverse("generation-new", args=[project.slug]),
        {
            "strategy": Strategy.NC_VALUES,
            "generator": spec.pk,
            "scope": "selected",
            "prompt_ids": f"{a.external_id}, {b.external_id}",
            "values": "collectivist: Answer as a collectivist would.\nindividualist: Answer as an individualist.",
        },
    )
    assert response.status_code == 302
    sets = CandidateSet.objects.all()
    assert {s.prompt_id for s in sets} == {a.pk, b.pk}
    assert sets[0].params["values"][0] == {"name": "collectivist", "instruction": "Answer as a collectivist would."}


def test_start_run_errors_are_shown(manager_client, project, spec):
    url = reverse("generation-new", args=[project.slug])
    response = manager_client.post(url, {"strategy": Strategy.IID, "scope": "selected", "prompt_ids": "nope"})
    assert response.status_code == 400 and "No prompt with id: nope" in response.content.decode()
    response = manager_client.post(url, {"strategy": Strategy.MULTI_MODEL, "scope": "all", "generators": [spec.pk]})
    assert response.status_code == 400 and "at least two generators" in response.content.decode()
    response = manager_client.post(url, {"strategy": Strategy.MAXMIN, "scope": "all", "oversample": 1})
    assert response.status_code == 400
    assert not CandidateSet.objects.exists() and not GenerationRun.objects.exists()


def test_annotator_cannot_start_generation(client, project, annotator):
    client.force_login(annotator)
    response = client.post(reverse("generation-new", args=[project.slug]), {"strategy": "iid", "scope": "all"})
    assert response.status_code == 404 and not CandidateSet.objects.exists()


def test_run_progress_polls_until_complete(manager_client, project, spec):
    prompts = [PromptFactory(project=project) for _ in range(2)]
    run = generation.generation_run_start(project=project, strategy=Strategy.IID, generator=spec, prompts=prompts)
    url = reverse("generation-run", args=[project.slug, run.pk])
    page = manager_client.get(url)
    assert page.status_code == 200 and 'hx-get="' + url in page.content.decode()
    assert "<html" in page.content.decode()
    fragment = manager_client.get(url, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in body and 'id="run-progress"' in body
    assert "0 done" in body and "2 queued" in body
    first, second = run.sets.order_by("pk")
    CandidateSet.objects.filter(pk=first.pk).update(status=RunStatus.DONE)
    CandidateSet.objects.filter(pk=second.pk).update(status=RunStatus.FAILED, error="NCParseError: expected 4")
    fragment = manager_client.get(url, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert fragment.status_code == 286  # htmx stops polling
    assert "hx-get" not in body and "1 failed" in body and "NCParseError: expected 4" in body
    retry = manager_client.post(reverse("generation-run-retry", args=[project.slug, run.pk]))
    assert retry.status_code == 302 and CandidateSet.objects.get(pk=second.pk).status == RunStatus.QUEUED


def test_set_list_query_count_does_not_grow(manager_client, project, django_assert_max_num_queries):
    url = reverse("candidate-set-list", args=[project.slug])
    for _ in range(3):
        done_set(project)
    with django_assert_max_num_queries(12) as few:
        assert manager_client.get(url).status_code == 200
    for _ in range(20):
        done_set(project)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = manager_client.get(url)
    assert response.content.decode().count('name="prompt"') == 23


def test_set_list_filters(manager_client, project):
    done_set(project, strategy=Strategy.IID)
    nc = done_set(project, strategy=Strategy.NC_VALUES)
    response = manager_client.get(reverse("candidate-set-list", args=[project.slug]), {"strategy": "nc_values"})
    body = response.content.decode()
    assert nc.prompt.external_id in body and "1 set." in body


def test_set_detail_renders_model_output_safely(manager_client, project):
    cset = done_set(project)
    cset.raw_output = "<script>alert(1)</script>raw"
    cset.save()
    candidate = cset.candidates.first()
    candidate.text = "**bold** <script>alert(2)</script>"
    candidate.save()
    body = manager_client.get(reverse("candidate-set-detail", args=[project.slug, cset.pk])).content.decode()
    assert "<strong>bold</strong>" in body
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;raw" in body
    assert "0.300" in body  # its diversity


def test_failed_set_can_be_retried_from_its_page(manager_client, project):
    cset = CandidateSetFactory(prompt=PromptFactory(project=project), status=RunStatus.FAILED, error="boom")
    url = reverse("candidate-set-detail", args=[project.slug, cset.pk])
    assert "boom" in manager_client.get(url).content.decode()
    response = manager_client.post(reverse("candidate-set-retry", args=[project.slug, cset.pk]))
    assert response.status_code == 302
    cset.refresh_from_db()
    assert cset.status == RunStatus.QUEUED and cset.error == ""


def test_overview_compares_strategies_in_a_table_and_a_plot(manager_client, project, spec):
    for d in (0.2, 0.3):
        done_set(project, Strategy.IID, distance=d, distinct=0.6, generator=spec)
    for d in (0.5, 0.6, 0.7):
        done_set(project, Strategy.NC_VALUES, distance=d, distinct=0.9, generator=spec)
    CandidateSetFactory(
        prompt=PromptFactory(project=project),
        strategy=Strategy.NC_PROMPT,
        status=RunStatus.FAILED,
        error="NCParseError: expected 4 responses",
    )
    body = manager_client.get(reverse("generation-overview", args=[project.slug])).content.decode()
    assert "<svg" in body and "<circle" in body and "Diversity of candidate sets by strategy" in body
    assert "0.250" in body and "0.600" in body  # mean distances of iid and nc_values
    assert "(1 unparsable)" in body
    assert "0%" in body  # nc_prompt success rate


def test_overview_with_no_sets(manager_client, project):
    body = manager_client.get(reverse("generation-overview", args=[project.slug])).content.decode()
    assert "No candidate sets yet" in body


def test_adjudicator_and_staff(client, project):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("generation-overview", args=[project.slug])).status_code == 200
    adjudicator = UserFactory()
    MembershipFactory(project=project, user=adjudicator, role="adjudicator")
    client.force_login(adjudicator)
    assert client.get(reverse("generation-overview", args=[project.slug])).status_code == 404
