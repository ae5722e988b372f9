"""The generation task: idempotent, failures recorded and retryable, a killed attempt taken over."""

import pytest

from annotate.models import Candidate, CandidateSet, Comparison, GeneratorSpec, ModelKind, RunStatus
from annotate.services import generation
from annotate.tasks import gpu_generate_candidates
from tests.factories import PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_spec(tiny_model_dir):
    return GeneratorSpec.objects.create(
        name="tiny",
        kind=ModelKind.TRANSFORMERS,
        model=str(tiny_model_dir),
        params={"temperature": 1.0, "max_new_tokens": 6, "device": "cpu"},
    )


def queued_sets(project, spec, count=2):
    prompts = [PromptFactory(project=project) for _ in range(count)]
    return generation.candidate_sets_create(project=project, prompts=prompts, generator=spec, n=3)


def test_task_generates_candidates_and_comparisons_once(project, tiny_spec, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sets = queued_sets(project, tiny_spec)
    assert len(callbacks) == 1  # one task message for the batch of prompts
    ids = [s.pk for s in sets]
    assert gpu_generate_candidates.apply(args=[ids]).get() == {"done": 2, "failed": 0, "skipped": 0}
    assert Candidate.objects.count() == 6
    assert Comparison.objects.count() == 6  # 3 pairs per prompt
    first_ids = set(Candidate.objects.values_list("pk", flat=True))
    # Running the same message again changes nothing.
    assert gpu_generate_candidates.apply(args=[ids]).get() == {"done": 0, "failed": 0, "skipped": 2}
    assert set(Candidate.objects.values_list("pk", flat=True)) == first_ids
    assert Comparison.objects.count() == 6
    for s in CandidateSet.objects.all():
        assert s.status == RunStatus.DONE and s.attempts == 1
        assert [c.position for c in s.candidates.all()] == [0, 1, 2]


def test_failure_is_recorded_and_retry_completes(project, tiny_spec, tmp_path):
    broken = GeneratorSpec.objects.create(name="broken", kind=ModelKind.TRANSFORMERS, model=str(tmp_path / "missing"))
    sets = queued_sets(project, broken, count=1)
    result = generation.candidate_sets_generate(set_ids=[sets[0].pk])
    assert result["failed"] == 1
    failed = CandidateSet.objects.get(pk=sets[0].pk)
    assert failed.status == RunStatus.FAILED and failed.error
    assert Candidate.objects.count() == 0
    # A failed set is not re-run by a duplicate message...
    assert generation.candidate_sets_generate(set_ids=[failed.pk])["skipped"] == 1
    # ...but an explicit retry (after fixing the spec) completes it.
    failed.generator = tiny_spec
    failed.save()
    assert generation.candidate_sets_retry(project=project) == 1
    assert generation.candidate_sets_generate(set_ids=[failed.pk])["done"] == 1
    failed.refresh_from_db()
    assert failed.status == RunStatus.DONE and failed.error == "" and failed.attempts == 2


def test_attempt_killed_mid_task_is_taken_over_and_completed_once(project, tiny_spec):
    (cset,) = queued_sets(project, tiny_spec, count=1)
    # A worker claims the set and dies before writing anything (SIGKILL: no cleanup runs).
    claimed, _token = generation._claim([cset.pk], attempt_key="task-1")
    assert claimed[0].status == RunStatus.RUNNING
    # A duplicate message (another task id) leaves the running set alone...
    assert generation.candidate_sets_generate(set_ids=[cset.pk], attempt_key="task-2")["skipped"] == 1
    # ...and the broker's redelivery of the same message (acks_late, same task id) takes over.
    assert generation.candidate_sets_generate(set_ids=[cset.pk], attempt_key="task-1")["done"] == 1
    assert Candidate.objects.filter(candidate_set=cset).count() == 3
    # A late write under a claim that no longer holds is discarded.
    generation._finish(claimed[0], "an-older-claim", generation.StrategyError("late"))
    cset.refresh_from_db()
    assert cset.status == RunStatus.DONE and Candidate.objects.filter(candidate_set=cset).count() == 3


@pytest.mark.model
def test_default_model_generates_real_text(project):
    sets = generation.candidate_sets_create(
        project=project, prompts=[PromptFactory(project=project)], n=2, params={"max_new_tokens": 8, "seed": 1}
    )
    generation.candidate_sets_generate(set_ids=[sets[0].pk])
    cset = CandidateSet.objects.get(pk=sets[0].pk)
    assert cset.status == RunStatus.DONE, cset.error
    texts = [c.text for c in cset.candidates.all()]
    assert len(texts) == 2 and all(t.strip() for t in texts)


def test_sets_created_without_a_broker_are_dispatched_once(project, tiny_spec, django_capture_on_commit_callbacks):
    sets = generation.candidate_sets_create(
        project=project, prompts=[PromptFactory(project=project)], generator=tiny_spec, n=2, dispatch=False
    )
    assert CandidateSet.objects.get(pk=sets[0].pk).status == RunStatus.CREATED
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert generation.candidate_sets_dispatch_queued() == 1
        assert generation.candidate_sets_dispatch_queued() == 0  # a second worker starting sends nothing
    assert len(callbacks) == 1
    assert CandidateSet.objects.get(pk=sets[0].pk).status == RunStatus.QUEUED
