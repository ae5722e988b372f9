"""Each strategy through the service and the task path: sets, candidates, parents, generators, diversity,
failures recorded, time limits, the per-worker provider cache."""

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from annotate.models import Candidate, CandidateSet, Comparison, GeneratorSpec, ModelKind, RunStatus, Strategy
from annotate.services import generation
from annotate.tasks import gpu_generate_candidates
from tests.chat_server import ChatServer
from tests.factories import PromptFactory

pytestmark = pytest.mark.django_db

MULTI_TURN = [
    {"role": "user", "content": "I want to start running."},
    {"role": "assistant", "content": "Start with run-walk sessions."},
    {"role": "user", "content": "Make me a two-week plan."},
]


@pytest.fixture
def tiny_spec(tiny_model_dir):
    return GeneratorSpec.objects.create(
        name="tiny",
        kind=ModelKind.TRANSFORMERS,
        model=str(tiny_model_dir),
        params={"temperature": 1.0, "max_new_tokens": 6, "device": "cpu"},
    )


@pytest.fixture
def server():
    srv = ChatServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def http_spec(server):
    return GeneratorSpec.objects.create(
        name="served",
        kind=ModelKind.OPENAI,
        model="served-model",
        endpoint=server.url,
        params={"temperature": 0.7, "max_new_tokens": 20, "backoff_s": 0.01},
    )


def generate(project, strategy, spec=None, count=2, n=3, params=None, prompts=None):
    prompts = prompts or [PromptFactory(project=project) for _ in range(count)]
    sets = generation.candidate_sets_create(
        project=project, prompts=prompts, strategy=strategy, generator=spec, n=n, params=params
    )
    result = gpu_generate_candidates.apply(args=[[s.pk for s in sets]]).get()
    return [CandidateSet.objects.get(pk=s.pk) for s in sets], result


def assert_diversity(cset):
    figures = cset.diversity
    assert figures["embedding_model"] == "all-MiniLM-L6-v2"
    assert 0.0 <= figures["mean_pairwise_distance"] <= 2.0
    assert 0.0 <= figures["distinct_2"] <= 1.0
    assert len(figures["lengths"]) == len(figures["n_tokens"]) == cset.candidates.count()


def test_iid_sets_store_diversity(project, tiny_spec):
    sets, result = generate(project, Strategy.IID, tiny_spec)
    assert result == {"done": 2, "failed": 0, "skipped": 0}
    for cset in sets:
        assert cset.status == RunStatus.DONE and cset.candidates.count() == 3
        assert_diversity(cset)


def test_nc_values_records_each_candidates_perspective(project, tiny_spec):
    sets, _ = generate(project, Strategy.NC_VALUES, tiny_spec, n=4)
    values = [c.meta["value"] for c in sets[0].candidates.order_by("position")]
    assert values == ["traditional", "secular-rational", "survival", "self-expression"]
    assert_diversity(sets[0])


def test_nc_prompt_parse_failure_marks_the_set_failed_with_raw_output(project, tiny_spec):
    sets, result = generate(project, Strategy.NC_PROMPT, tiny_spec, n=4)
    assert result["failed"] == 2
    for cset in sets:
        assert cset.status == RunStatus.FAILED and cset.error.startswith("NCParseError: expected 4 responses")
        assert cset.candidates.count() == 0  # never silently fewer candidates
        assert cset.raw_output is not None


def test_nc_prompt_from_a_model_that_follows_the_format(project, http_spec, server):
    server.responder = lambda body: "\n".join(f"Response {x}: view {x}." for x in "ABCD")
    prompt = PromptFactory(project=project, messages=MULTI_TURN)
    sets, result = generate(project, Strategy.NC_PROMPT, http_spec, n=4, prompts=[prompt])
    assert result["done"] == 1
    assert [c.text for c in sets[0].candidates.order_by("position")] == [f"view {x}." for x in "ABCD"]
    assert sets[0].raw_output.startswith("Response A:")
    # Multi-turn: the model saw the whole conversation, the instruction added to the last turn only.
    sent = server.requests[0]["messages"]
    assert sent[:2] == MULTI_TURN[:2] and sent[2]["content"].startswith("Make me a two-week plan.\n\n")
    assert_diversity(sets[0])


def test_multi_model_one_candidate_from_each_generator(project, tiny_spec, http_spec):
    params = {"generators": [tiny_spec.pk, http_spec.pk]}
    sets, result = generate(project, Strategy.MULTI_MODEL, None, n=None, params=params)
    assert result["done"] == 2
    cset = sets[0]
    assert cset.generator is None and cset.n == 2
    assert [c.generator_id for c in cset.candidates.order_by("position")] == [tiny_spec.pk, http_spec.pk]
    assert Comparison.objects.filter(prompt=cset.prompt).count() == 1
    with pytest.raises(generation.GenerationError):
        generation.candidate_sets_create(project=project, strategy=Strategy.MULTI_MODEL, params={"generators": [1]})
    with pytest.raises(generation.GenerationError, match="no generator"):
        generation.candidate_sets_create(
            project=project, strategy=Strategy.MULTI_MODEL, params={"generators": [tiny_spec.pk, 987654]}
        )


def test_maxmin_keeps_n_of_k(project, tiny_spec):
    sets, _ = generate(project, Strategy.MAXMIN, tiny_spec, n=3, params={"oversample": 6})
    candidates = list(sets[0].candidates.order_by("position"))
    assert len(candidates) == 3 and {c.meta["pool_size"] for c in candidates} == {6}
    assert '"selected"' in sets[0].raw_output
    assert_diversity(sets[0])


def test_corrections_name_their_parents_and_are_compared_with_them(project, tiny_spec):
    originals, _ = generate(project, Strategy.IID, tiny_spec, count=2, n=3)
    no_source = PromptFactory(project=project)
    prompts = [s.prompt for s in originals] + [no_source]
    sets = generation.candidate_sets_create(
        project=project, prompts=prompts, strategy=Strategy.CORRECTION, generator=tiny_spec
    )
    assert len(sets) == 2  # the prompt with nothing to correct is skipped
    gpu_generate_candidates.apply(args=[[s.pk for s in sets]]).get()
    by_prompt = {s.prompt_id: s for s in originals}
    for cset in sets:
        original = by_prompt[cset.prompt_id]
        cset.refresh_from_db()
        assert cset.status == RunStatus.DONE, cset.error
        corrections = list(cset.candidates.order_by("position"))
        assert [c.parent_id for c in corrections] == list(
            original.candidates.order_by("position").values_list("pk", flat=True)
        )
        pairs = Comparison.objects.filter(candidate_b__candidate_set=cset)
        assert {(p.candidate_a_id, p.candidate_b_id) for p in pairs} == {(c.parent_id, c.pk) for c in corrections}


def test_provider_errors_are_recorded_on_the_set(project, http_spec, server):
    server.fail_next(400, {"error": {"message": "context length exceeded"}})
    sets, result = generate(project, Strategy.IID, http_spec, count=1, n=2)
    assert result["failed"] == 1
    assert "context length exceeded" in sets[0].error and sets[0].status == RunStatus.FAILED


def test_soft_time_limit_records_failures_and_retry_completes(project, tiny_spec, monkeypatch):
    prompts = [PromptFactory(project=project) for _ in range(2)]
    iid = generation.candidate_sets_create(project=project, prompts=prompts, generator=tiny_spec, n=2)
    nc = generation.candidate_sets_create(
        project=project, prompts=prompts, strategy=Strategy.NC_VALUES, generator=tiny_spec, n=2
    )
    ids = [s.pk for s in iid + nc]

    def too_slow(*args, **kwargs):  # what Celery's soft limit signal does inside the task
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(generation, "run_strategy", too_slow)
    assert generation.candidate_sets_generate(set_ids=ids) == {"done": 0, "failed": 4, "skipped": 0}
    for cset in CandidateSet.objects.filter(pk__in=ids):
        assert cset.status == RunStatus.FAILED and "soft time limit" in cset.error
    monkeypatch.undo()
    assert generation.candidate_sets_retry(project=project) == 4
    assert generation.candidate_sets_generate(set_ids=ids)["done"] == 4
    assert Candidate.objects.filter(candidate_set__in=ids).count() == 8


def test_set_abandoned_again_and_again_is_failed_not_looped(project, tiny_spec, settings):
    settings.CONCORD_GENERATION_MAX_TAKEOVERS = 3
    (cset,) = generation.candidate_sets_create(project=project, prompts=[PromptFactory(project=project)], n=2)
    for _ in range(3):  # the same message's workers claim it and die (hard time limit, OOM, SIGKILL)
        claimed, _token = generation._claim([cset.pk], attempt_key="task-1")
        assert len(claimed) == 1
    # The broker redelivers once more: the fourth attempt gives up instead of running it again.
    assert generation._claim([cset.pk], attempt_key="task-1")[0] == []
    cset.refresh_from_db()
    assert cset.status == RunStatus.FAILED and cset.error.startswith("abandoned: 3 attempts")
    assert "_claim" not in cset.params and "_takeovers" not in cset.params
    cset.generator = tiny_spec
    cset.save()
    assert generation.candidate_sets_retry(project=project) == 1
    assert generation.candidate_sets_generate(set_ids=[cset.pk])["done"] == 1


def test_stale_running_set_can_be_retried(project, tiny_spec, settings):
    from datetime import timedelta

    from django.utils import timezone

    sets = generation.candidate_sets_create(project=project, prompts=[PromptFactory(project=project)], n=2)
    generation._claim([sets[0].pk])
    assert generation.candidate_sets_retry(project=project) == 0  # still running: maybe alive
    CandidateSet.objects.filter(pk=sets[0].pk).update(
        started_at=timezone.now() - timedelta(seconds=settings.CONCORD_GENERATION_HARD_LIMIT_S + 120)
    )
    assert generation.candidate_sets_retry(project=project) == 1
    assert CandidateSet.objects.get(pk=sets[0].pk).status == RunStatus.QUEUED


def test_provider_cache_is_per_spec_and_follows_edits(tiny_spec, http_spec):
    first = generation._provider(tiny_spec)
    assert generation._provider(GeneratorSpec.objects.get(pk=tiny_spec.pk)) is first
    assert generation._provider(http_spec) is not first
    tiny_spec.params = {**tiny_spec.params, "max_new_tokens": 9}
    tiny_spec.save()
    assert generation._provider(tiny_spec) is not first


def test_invalid_settings_are_refused_before_queueing(project):
    with pytest.raises(generation.GenerationError):
        generation.candidate_sets_create(project=project, strategy=Strategy.MAXMIN, params={"oversample": 1})
    with pytest.raises(generation.GenerationError):
        generation.candidate_sets_create(project=project, params={"temperature": 9})
    assert CandidateSet.objects.count() == 0


def test_run_records_selection_and_skips(project, tiny_spec, manager):
    prompts = [PromptFactory(project=project) for _ in range(3)]
    generation.candidate_sets_create(project=project, prompts=prompts[:1], generator=tiny_spec, n=2)
    run = generation.generation_run_start(
        project=project, strategy=Strategy.IID, generator=tiny_spec, prompts=prompts, n=2, user=manager
    )
    assert run.prompts_selected == 3 and run.prompts_skipped == 1 and run.sets.count() == 2
    assert run.created_by == manager and run.generator == tiny_spec
