"""Candidate generation: creating sets, running them (called by the gpu task), retrying failures.

A set's life: queued -> running (claimed under a fresh token) -> done / failed. Every strategy of
rankers.generation runs here; the strategy's settings live in the set's params (see
rankers.generation.StrategyOptions), plus:

- multi_model: params["generators"] is the list of GeneratorSpec ids, in order; candidate i comes from
  generator i mod k, and the set itself has no single generator.
- correction: params["source_set"] is the finished set whose candidates are rewritten (resolved when
  the set is created: the prompt's latest finished set of another strategy, or of
  params["source_strategy"]); every new candidate's parent is the candidate it rewrites.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from annotate.models import (
    Candidate,
    CandidateSet,
    Comparison,
    ComparisonKind,
    GenerationRun,
    GeneratorSpec,
    Project,
    Prompt,
    RunStatus,
    Strategy,
)
from annotate.services.comparisons import comparisons_create_for_set
from annotate.services.specs import generator_spec_default, model_ref_from_spec
from rankers import diversity
from rankers.generation import (
    Provider,
    SetJob,
    SetResult,
    SourceCandidate,
    StrategyError,
    StrategyOptions,
    provider_for,
    run_strategy,
)
from rankers.types import ModelRef, SamplingParams

log = logging.getLogger(__name__)

RUNNABLE = (RunStatus.QUEUED, RunStatus.RUNNING)
# Keys of a set's params that belong to that set alone: sets that differ only in these still share
# one batched model call. Keys starting with "_" are bookkeeping of the task.
PER_SET_PARAMS = frozenset({"source_set"})


class GenerationError(ValueError):
    """A generation request that cannot be queued (bad strategy settings, unknown generators)."""


def _enqueue(set_ids: list[int]) -> None:
    from annotate.tasks import gpu_generate_candidates

    batch = max(1, settings.CONCORD_GENERATION_BATCH_PROMPTS)
    for start in range(0, len(set_ids), batch):
        chunk = set_ids[start : start + batch]
        transaction.on_commit(lambda chunk=chunk: gpu_generate_candidates.delay(chunk))


def _validate(*, strategy: str, params: dict) -> None:
    if strategy not in Strategy.values:
        raise GenerationError(f"unknown strategy {strategy!r}")
    source = params.get("source_strategy")
    if source and (source not in Strategy.values or source == Strategy.CORRECTION):
        raise GenerationError(f"corrections cannot rewrite sets of strategy {source!r}")
    try:
        StrategyOptions.from_params(params)
        sampling = _sampling(params)
    except (TypeError, ValueError) as exc:
        raise GenerationError(str(exc)) from exc
    if not 0 <= sampling.temperature <= 5 or not 0 < sampling.top_p <= 1 or not 1 <= sampling.max_new_tokens <= 32768:
        raise GenerationError("temperature must be in [0, 5], top_p in (0, 1], max_new_tokens in [1, 32768]")


def _multi_model_generators(params: dict) -> list[GeneratorSpec]:
    ids = params.get("generators")
    if not isinstance(ids, list) or len(ids) < 2:
        raise GenerationError("multi_model needs params['generators']: a list of at least two generator ids")
    try:
        ids = [int(i) for i in ids]
    except (TypeError, ValueError) as exc:
        raise GenerationError("params['generators'] must list generator ids") from exc
    specs = GeneratorSpec.objects.in_bulk(ids)
    missing = [i for i in ids if i not in specs]
    if missing:
        raise GenerationError(f"no generator with id {missing}")
    return [specs[i] for i in ids]


def _correction_sources(*, prompts: list[Prompt], source_strategy: str | None) -> dict[int, CandidateSet]:
    """The latest finished non-correction set (of `source_strategy` when given) of each prompt."""
    qs = CandidateSet.objects.filter(prompt__in=prompts, status=RunStatus.DONE).exclude(strategy=Strategy.CORRECTION)
    if source_strategy:
        qs = qs.filter(strategy=source_strategy)
    latest: dict[int, CandidateSet] = {}
    for s in qs.order_by("prompt_id", "-finished_at", "-id"):
        latest.setdefault(s.prompt_id, s)
    return latest


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

    With `dispatch=False` the sets are only created (status CREATED) until
    candidate_sets_dispatch_queued() sends them (every worker does that when it starts).

    Prompts that already have a (not failed) set of this strategy and generator are skipped unless
    `skip_prompts_with_sets` is false; for corrections, prompts with nothing to correct are skipped.
    Raises GenerationError when the strategy's settings are invalid.
    """
    params = dict(params or {})
    _validate(strategy=strategy, params=params)
    base_params: dict[str, Any] = {}
    if strategy == Strategy.MULTI_MODEL:
        generators = _multi_model_generators(params)
        params["generators"] = [g.pk for g in generators]
        generator = None
        n = n or len(generators)
    else:
        generator = generator or generator_spec_default()
        base_params = dict(generator.params)
    n = n or project.candidates_per_prompt
    if n < 2:
        raise GenerationError("a candidate set needs at least two candidates")
    prompts = list(prompts if prompts is not None else project.prompts.all())
    if skip_prompts_with_sets:
        have = set(
            CandidateSet.objects.filter(prompt__in=prompts, strategy=strategy, generator=generator)
            .exclude(status=RunStatus.FAILED)
            .values_list("prompt_id", flat=True)
        )
        prompts = [p for p in prompts if p.pk not in have]
    per_prompt: dict[int, tuple[int, dict]] = {p.pk: (n, {}) for p in prompts}
    if strategy == Strategy.CORRECTION:
        sources = _correction_sources(prompts=prompts, source_strategy=params.get("source_strategy"))
        sizes = dict(
            Candidate.objects.filter(candidate_set__in=list(sources.values()))
            .values("candidate_set")
            .annotate(count=Count("id"))
            .values_list("candidate_set", "count")
        )
        per_prompt = {}
        for p in prompts:
            source = sources.get(p.pk)
            count = min(n, sizes.get(source.pk, 0)) if source else 0
            if count >= 2:
                per_prompt[p.pk] = (count, {"source_set": source.pk})
        prompts = [p for p in prompts if p.pk in per_prompt]
    with transaction.atomic():
        sets = CandidateSet.objects.bulk_create(
            [
                CandidateSet(
                    prompt=p,
                    strategy=strategy,
                    generator=generator,
                    n=per_prompt[p.pk][0],
                    params={**base_params, **params, **per_prompt[p.pk][1]},
                    # CREATED: no message sent yet (see candidate_sets_dispatch_queued).
                    status=RunStatus.QUEUED if dispatch else RunStatus.CREATED,
                )
                for p in prompts
            ]
        )
        if dispatch:
            _enqueue([s.pk for s in sets])
    return sets


def generation_run_start(
    *,
    project: Project,
    strategy: str,
    generator: GeneratorSpec | None = None,
    prompts: Iterable[Prompt] | None = None,
    n: int | None = None,
    params: dict | None = None,
    skip_prompts_with_sets: bool = True,
    user: AbstractBaseUser | None = None,
) -> GenerationRun:
    """Queue candidate sets for the given prompts (all of the project's when None) and record the run."""
    prompts = list(prompts if prompts is not None else project.prompts.all())
    with transaction.atomic():
        sets = candidate_sets_create(
            project=project,
            prompts=prompts,
            strategy=strategy,
            generator=generator,
            n=n,
            params=params,
            skip_prompts_with_sets=skip_prompts_with_sets,
        )
        first = sets[0] if sets else None
        run = GenerationRun.objects.create(
            project=project,
            strategy=strategy,
            generator=None if strategy == Strategy.MULTI_MODEL else (generator or generator_spec_default()),
            n=n,
            params={k: v for k, v in (first.params if first else params or {}).items() if k not in PER_SET_PARAMS},
            prompts_selected=len(prompts),
            prompts_skipped=len(prompts) - len(sets),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        run.sets.add(*sets)
    return run


def candidate_sets_retry(*, project: Project, set_ids: Iterable[int] | None = None) -> int:
    """Put failed sets back in the queue, and sets left running by a worker that is long gone
    (started more than the hard time limit ago). Returns how many were re-queued."""
    stale = timezone.now() - timedelta(seconds=settings.CONCORD_GENERATION_HARD_LIMIT_S + 60)
    with transaction.atomic():
        qs = CandidateSet.objects.select_for_update(of=("self",)).filter(
            Q(status=RunStatus.FAILED) | Q(status=RunStatus.RUNNING, started_at__lt=stale),
            prompt__project=project,
        )
        if set_ids is not None:
            qs = qs.filter(pk__in=list(set_ids))
        retried = list(qs)
        for s in retried:
            s.status = RunStatus.QUEUED
            s.error = ""
            s.params = _without_bookkeeping(s.params)
            s.save(update_fields=["status", "error", "params"])
        _enqueue([s.pk for s in retried])
    return len(retried)


def generation_run_retry(*, run: GenerationRun) -> int:
    return candidate_sets_retry(project=run.project, set_ids=run.sets.values_list("pk", flat=True))


def _without_bookkeeping(params: dict) -> dict:
    return {k: v for k, v in params.items() if not k.startswith("_")}


def _claim(set_ids: list[int], attempt_key: str | None = None) -> tuple[list[CandidateSet], str]:
    """Mark runnable sets as running under a claim token, and return them with the token.

    Runnable: queued sets; sets running under the same `attempt_key` (the broker redelivered the
    message of a worker that died: acks_late keeps the task id); and sets whose claim is older than
    the hard time limit (that attempt is dead). A set running under another, live message is left
    alone, so a duplicate message never generates it twice. Finished and failed sets are left alone.
    A set taken over CONCORD_GENERATION_MAX_TAKEOVERS times in a row (say it always hits the hard
    time limit) is marked failed instead, so that it can be retried by hand rather than loop.
    """
    token = attempt_key or uuid.uuid4().hex
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CONCORD_GENERATION_HARD_LIMIT_S + 60)
    runnable = Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING, started_at__lt=stale)
    if attempt_key:
        runnable |= Q(status=RunStatus.RUNNING, params___claim=attempt_key)
    claimed = []
    with transaction.atomic():
        sets = list(
            CandidateSet.objects.select_for_update(of=("self",))
            .filter(runnable, pk__in=set_ids)
            .select_related("prompt", "generator")
        )
        for s in sets:
            takeovers = int(s.params.get("_takeovers", 0)) + (1 if s.status == RunStatus.RUNNING else 0)
            if takeovers >= settings.CONCORD_GENERATION_MAX_TAKEOVERS:
                s.status = RunStatus.FAILED
                s.finished_at = now
                s.error = (
                    f"abandoned: {takeovers} attempts in a row ended without a result "
                    "(worker killed, or over the hard time limit)"
                )
                s.params = _without_bookkeeping(s.params)
                s.save(update_fields=["status", "finished_at", "error", "params"])
                continue
            s.status = RunStatus.RUNNING
            s.started_at = now
            s.attempts += 1
            s.params = {**s.params, "_claim": token, "_takeovers": takeovers}
            s.save(update_fields=["status", "started_at", "attempts", "params"])
            claimed.append(s)
    return claimed, token


def candidate_sets_dispatch_queued(*, limit: int = 10_000) -> int:
    """Send the task messages of sets created without one (status CREATED), once.

    `make run` seeds the demo before the broker is up; every worker calls this when it starts. The
    sets move to QUEUED under a row lock, so two workers starting together never both send them.
    """
    with transaction.atomic():
        sets = list(
            CandidateSet.objects.select_for_update(of=("self",), skip_locked=True)
            .filter(status=RunStatus.CREATED)
            .order_by("id")[:limit]
        )
        ids = [s.pk for s in sets]
        CandidateSet.objects.filter(pk__in=ids).update(status=RunStatus.QUEUED)
        _enqueue(ids)
    return len(ids)


def _sampling(params: dict) -> SamplingParams:
    seed = params.get("seed")
    return SamplingParams(
        temperature=float(params.get("temperature", 0.8)),
        top_p=float(params.get("top_p", 0.95)),
        max_new_tokens=int(params.get("max_new_tokens", 128)),
        seed=int(seed) if seed not in (None, "") else None,
    )


# One provider per generator spec per worker process: local models stay loaded between tasks. The key
# includes the resolved ModelRef, so editing a spec's model or options gives a fresh provider.
_providers: dict[tuple[int, ModelRef], Provider] = {}


def _provider(spec: GeneratorSpec) -> Provider:
    ref = model_ref_from_spec(spec=spec)
    key = (spec.pk, ref)
    if key not in _providers:
        _providers[key] = provider_for(ref, threads=settings.CONCORD_TORCH_THREADS)
    return _providers[key]


def _diversity(results: dict[int, SetResult]) -> dict[int, dict]:
    """Diversity of every finished set; embeddings for all of them in one call."""
    texts = {key: [c.text for c in r.candidates] for key, r in results.items()}
    try:
        vectors = diversity.embed([t for ts in texts.values() for t in ts])
    except Exception as exc:  # the set is still good; say why the embedding figures are missing
        log.exception("embedding failed")
        return {key: {**diversity.text_diversity(ts), "embedding_error": str(exc)[:300]} for key, ts in texts.items()}
    out, offset = {}, 0
    for key, ts in texts.items():
        out[key] = diversity.set_diversity(ts, embeddings=vectors[offset : offset + len(ts)])
        offset += len(ts)
    return out


def _correction_comparisons(candidate_set: CandidateSet) -> None:
    """Each correction is compared with the candidate it rewrites (Aligner: correction > original)."""
    pairs = [
        Comparison(
            project_id=candidate_set.prompt.project_id,
            prompt_id=candidate_set.prompt_id,
            kind=ComparisonKind.PAIR,
            candidate_a_id=c.parent_id,
            candidate_b=c,
        )
        for c in candidate_set.candidates.exclude(parent=None)
    ]
    Comparison.objects.bulk_create(pairs, ignore_conflicts=True)


def _finish(candidate_set: CandidateSet, token: str, result, figures: dict | None = None) -> bool:
    """Write one set's outcome atomically, unless another attempt already finished it."""
    with transaction.atomic():
        locked = CandidateSet.objects.select_for_update(of=("self",)).select_related("prompt").get(pk=candidate_set.pk)
        if locked.status != RunStatus.RUNNING or locked.params.get("_claim") != token:
            log.info("set %s was finished by another attempt; discarding this one", locked.pk)
            return False
        locked.finished_at = timezone.now()
        locked.params = _without_bookkeeping(locked.params)
        if isinstance(result, BaseException):
            locked.status = RunStatus.FAILED
            locked.error = f"{type(result).__name__}: {result}"
            locked.raw_output = getattr(result, "raw_output", "") or ""
            locked.save(update_fields=["status", "error", "raw_output", "finished_at", "params"])
            return True
        locked.candidates.all().delete()
        Candidate.objects.bulk_create(
            [
                Candidate(
                    candidate_set=locked,
                    prompt_id=locked.prompt_id,
                    position=i,
                    text=draft.text,
                    generator_id=draft.generator_key if draft.generator_key is not None else locked.generator_id,
                    parent_id=draft.parent_key,
                    meta={"n_tokens": draft.n_tokens, "finish_reason": draft.finish_reason, **draft.meta},
                )
                for i, draft in enumerate(result.candidates)
            ]
        )
        locked.raw_output = result.raw_output
        locked.status = RunStatus.DONE
        locked.error = ""
        locked.diversity = {
            **(figures or diversity.text_diversity([c.text for c in result.candidates])),
            "n_tokens": [c.n_tokens for c in result.candidates],
        }
        locked.save(update_fields=["status", "error", "raw_output", "finished_at", "params", "diversity"])
        if locked.strategy == Strategy.CORRECTION:
            _correction_comparisons(locked)
        else:
            comparisons_create_for_set(candidate_set=locked)
    return True


def _jobs(members: list[CandidateSet]) -> list[SetJob]:
    sources: dict[int, list[SourceCandidate]] = {}
    source_ids = {s.params.get("source_set") for s in members if s.strategy == Strategy.CORRECTION}
    if source_ids - {None}:
        for c in Candidate.objects.filter(candidate_set__in=source_ids - {None}).order_by("candidate_set", "position"):
            sources.setdefault(c.candidate_set_id, []).append(SourceCandidate(key=c.pk, text=c.text))
    return [
        SetJob(
            key=s.pk,
            messages=s.prompt.messages,
            n=s.n,
            sources=sources.get(s.params.get("source_set"), []),
        )
        for s in members
    ]


def _run_group(strategy: str, members: list[CandidateSet]) -> dict[int, Any]:
    first = members[0]
    params = first.params
    providers: dict[int, Provider] = {}
    provider = None
    if strategy == Strategy.MULTI_MODEL:
        for spec in _multi_model_generators(params):
            providers[spec.pk] = _provider(spec)
    else:
        provider = _provider(first.generator or generator_spec_default())
    outcomes = run_strategy(
        strategy,
        provider,
        _jobs(members),
        params=_sampling(params),
        batch_size=int(params.get("batch_size") or settings.CONCORD_GENERATION_BATCH_SIZE),
        options=StrategyOptions.from_params(params),
        providers=providers,
    )
    return {s.pk: outcomes.get(s.pk) or StrategyError("the strategy returned nothing for this set") for s in members}


def candidate_sets_generate(*, set_ids: list[int], attempt_key: str | None = None) -> dict[str, int]:
    """Generate the given sets (one batched model call per strategy, generator and settings).

    Safe to run twice: finished sets are skipped, and a set is written only by the attempt that
    holds its claim. Errors are recorded on the sets (status failed), never lost. Past the task's
    soft time limit the sets not yet written are recorded as failed, and the task returns.
    """
    sets, token = _claim(set_ids, attempt_key)
    groups: dict[tuple, list[CandidateSet]] = {}
    for s in sets:
        shared = sorted((k, str(v)) for k, v in s.params.items() if not k.startswith("_") and k not in PER_SET_PARAMS)
        groups.setdefault((s.strategy, s.generator_id or 0, tuple(shared)), []).append(s)
    done = failed = 0
    finished: set[int] = set()
    try:
        for (strategy, _gen, _params), members in groups.items():
            try:
                outcomes = _run_group(strategy, members)
                good = {pk: r for pk, r in outcomes.items() if isinstance(r, SetResult)}
                figures = _diversity(good) if good else {}
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:  # recorded on the sets; the UI shows it
                log.exception("generation failed for sets %s", [s.pk for s in members])
                outcomes, figures = {s.pk: exc for s in members}, {}
            for s in members:
                outcome = outcomes[s.pk]
                if _finish(s, token, outcome, figures.get(s.pk)):
                    if isinstance(outcome, BaseException):
                        failed += 1
                    else:
                        done += 1
                finished.add(s.pk)
    except SoftTimeLimitExceeded:
        # Celery raises this in the task when its soft limit passes: record what is left as failed
        # (retryable) while there is still time, rather than be killed at the hard limit.
        limit = settings.CONCORD_GENERATION_SOFT_LIMIT_S
        log.warning("soft time limit (%s s) in generation of sets %s", limit, set_ids)
        error = SoftTimeLimitExceeded(f"generation ran past the soft time limit ({limit} s); retry the set")
        for s in sets:
            if s.pk not in finished:
                failed += int(_finish(s, token, error))
    return {"done": done, "failed": failed, "skipped": len(set_ids) - len(sets)}
