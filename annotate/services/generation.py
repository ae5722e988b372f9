"""Candidate generation: creating sets, running them (called by the gpu task), retrying failures."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotate.models import Candidate, CandidateSet, GeneratorSpec, Project, Prompt, RunStatus, Strategy
from annotate.services.comparisons import comparisons_create_for_set
from annotate.services.specs import generator_spec_default, model_ref_from_spec
from rankers.generation import SetJob, StrategyError, provider_for, run_strategy
from rankers.types import SamplingParams

log = logging.getLogger(__name__)


def _enqueue(set_ids: list[int]) -> None:
    from annotate.tasks import gpu_generate_candidates

    batch = max(1, settings.CONCORD_GENERATION_BATCH_PROMPTS)
    for start in range(0, len(set_ids), batch):
        chunk = set_ids[start : start + batch]
        transaction.on_commit(lambda chunk=chunk: gpu_generate_candidates.delay(chunk))


def candidate_sets_create(
    *,
    project: Project,
    prompts: Iterable[Prompt] | None = None,
    strategy: str = Strategy.IID,
    generator: GeneratorSpec | None = None,
    n: int | None = None,
    params: dict | None = None,
    skip_prompts_with_sets: bool = True,
    dispatch: bool = True,
) -> list[CandidateSet]:
    """Create queued candidate sets and enqueue their generation once the transaction commits.

    With `dispatch=False` the sets stay queued until candidate_sets_dispatch_queued() sends them
    (a worker does that when it starts).
    """
    generator = generator or generator_spec_default()
    prompts = list(prompts if prompts is not None else project.prompts.all())
    if skip_prompts_with_sets:
        have = set(
            CandidateSet.objects.filter(prompt__in=prompts, strategy=strategy, generator=generator)
            .exclude(status=RunStatus.FAILED)
            .values_list("prompt_id", flat=True)
        )
        prompts = [p for p in prompts if p.pk not in have]
    with transaction.atomic():
        sets = CandidateSet.objects.bulk_create(
            [
                CandidateSet(
                    prompt=p,
                    strategy=strategy,
                    generator=generator,
                    n=n or project.candidates_per_prompt,
                    params={**generator.params, **(params or {})},
                    status=RunStatus.QUEUED,
                )
                for p in prompts
            ]
        )
        if dispatch:
            _enqueue([s.pk for s in sets])
    return sets


def candidate_sets_retry(*, project: Project, set_ids: Iterable[int] | None = None) -> int:
    """Put failed sets back in the queue. Returns how many were re-queued."""
    with transaction.atomic():
        qs = CandidateSet.objects.select_for_update().filter(prompt__project=project, status=RunStatus.FAILED)
        if set_ids is not None:
            qs = qs.filter(pk__in=list(set_ids))
        ids = list(qs.values_list("pk", flat=True))
        CandidateSet.objects.filter(pk__in=ids).update(status=RunStatus.QUEUED, error="")
        _enqueue(ids)
    return len(ids)


def _claim(set_ids: list[int], attempt_key: str | None = None) -> tuple[list[CandidateSet], str]:
    """Mark runnable sets as running under a claim token, and return them with the token.

    Runnable: queued sets; sets running under the same `attempt_key` (the broker redelivered the
    message of a worker that died: acks_late, same task id); and sets whose claim is older than the
    task's hard time limit (that attempt is dead). A set running under another live message is left
    alone, so a duplicate message never generates twice. Finished and failed sets are left alone.
    """
    token = attempt_key or uuid.uuid4().hex
    stale = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    runnable = Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING, started_at__lt=stale)
    if attempt_key:
        runnable |= Q(status=RunStatus.RUNNING, params___claim=attempt_key)
    with transaction.atomic():
        sets = list(
            CandidateSet.objects.select_for_update(of=("self",))
            .filter(runnable, pk__in=set_ids)
            .select_related("prompt", "generator")
        )
        now = timezone.now()
        for s in sets:
            s.status = RunStatus.RUNNING
            s.started_at = now
            s.attempts += 1
            s.params = {**s.params, "_claim": token}
            s.save(update_fields=["status", "started_at", "attempts", "params"])
    return sets, token


def candidate_sets_dispatch_queued(*, limit: int = 10_000) -> int:
    """Send a task message for every queued set (for example after the broker was down).

    Duplicate messages are harmless: a set is generated only by the attempt that claims it.
    """
    ids = list(CandidateSet.objects.filter(status=RunStatus.QUEUED).order_by("id").values_list("pk", flat=True)[:limit])
    with transaction.atomic():
        _enqueue(ids)
    return len(ids)


def _sampling(params: dict) -> SamplingParams:
    return SamplingParams(
        temperature=float(params.get("temperature", 0.8)),
        top_p=float(params.get("top_p", 0.95)),
        max_new_tokens=int(params.get("max_new_tokens", 128)),
        seed=params.get("seed"),
    )


def _finish(candidate_set: CandidateSet, token: str, result) -> None:
    """Write one set's outcome atomically, unless another attempt already finished it."""
    with transaction.atomic():
        locked = CandidateSet.objects.select_for_update().get(pk=candidate_set.pk)
        if locked.status != RunStatus.RUNNING or locked.params.get("_claim") != token:
            log.info("set %s was finished by another attempt; discarding this one", locked.pk)
            return
        locked.finished_at = timezone.now()
        locked.params = {k: v for k, v in locked.params.items() if k != "_claim"}
        if isinstance(result, Exception):
            locked.status = RunStatus.FAILED
            locked.error = f"{type(result).__name__}: {result}"
            locked.raw_output = getattr(result, "raw_output", "") or ""
            locked.save(update_fields=["status", "error", "raw_output", "finished_at", "params"])
            return
        locked.candidates.all().delete()
        Candidate.objects.bulk_create(
            [
                Candidate(
                    candidate_set=locked,
                    prompt_id=locked.prompt_id,
                    position=i,
                    text=draft.text,
                    generator_id=locked.generator_id,
                    meta={"n_tokens": draft.n_tokens, "finish_reason": draft.finish_reason, **draft.meta},
                )
                for i, draft in enumerate(result.candidates)
            ]
        )
        locked.raw_output = result.raw_output
        locked.status = RunStatus.DONE
        locked.error = ""
        locked.diversity = result_diversity(result)
        locked.save(update_fields=["status", "error", "raw_output", "finished_at", "params", "diversity"])
        comparisons_create_for_set(candidate_set=locked)


def result_diversity(result) -> dict:
    lengths = [len(c.text.split()) for c in result.candidates]
    return {"lengths": lengths, "mean_length": sum(lengths) / len(lengths) if lengths else 0}


def candidate_sets_generate(*, set_ids: list[int], attempt_key: str | None = None) -> dict[str, int]:
    """Generate the given sets (one batched model call per strategy and generator).

    Safe to run twice: finished sets are skipped, and a set is written only by the attempt that
    holds its claim. Errors are recorded on the sets (status failed), never lost.
    """
    sets, token = _claim(set_ids, attempt_key)
    groups: dict[tuple, list[CandidateSet]] = {}
    for s in sets:
        key = (
            s.strategy,
            s.generator_id or 0,
            tuple(sorted((k, str(v)) for k, v in s.params.items() if k != "_claim")),
        )
        groups.setdefault(key, []).append(s)
    done = failed = 0
    for (strategy, _gen, _params), members in groups.items():
        first = members[0]
        try:
            generator = first.generator or generator_spec_default()
            provider = provider_for(model_ref_from_spec(spec=generator), threads=settings.CONCORD_TORCH_THREADS)
            jobs = [SetJob(key=s.pk, messages=s.prompt.messages, n=s.n) for s in members]
            outcomes = run_strategy(strategy, provider, jobs, params=_sampling(first.params))
        except Exception as exc:  # recorded on the sets; the UI shows it
            log.exception("generation failed for sets %s", [s.pk for s in members])
            outcomes = {s.pk: exc for s in members}
        for s in members:
            outcome = outcomes.get(s.pk) or StrategyError("the strategy returned nothing for this set")
            _finish(s, token, outcome)
            if isinstance(outcome, Exception):
                failed += 1
            else:
                done += 1
    return {"done": done, "failed": failed, "skipped": len(set_ids) - len(sets)}
