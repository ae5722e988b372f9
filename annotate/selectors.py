"""Read-side queries. Permission-aware lookups raise Http404 so that outsiders learn nothing."""

from __future__ import annotations

import math

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Avg, Count, FloatField, Prefetch, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import Http404

from annotate.models import (
    Candidate,
    CandidateSet,
    Comparison,
    GenerationRun,
    GeneratorSpec,
    Judgment,
    Membership,
    Project,
    Prompt,
    Role,
    RunStatus,
    Source,
    Strategy,
)

RUNNABLE_STATUSES = (RunStatus.CREATED, RunStatus.QUEUED, RunStatus.RUNNING)


def user_roles(*, user: AbstractBaseUser, project: Project) -> set[str]:
    if not user.is_authenticated:
        return set()
    roles = set(Membership.objects.filter(project=project, user=user).values_list("role", flat=True))
    if user.is_staff:
        roles.add(Role.MANAGER)
    return roles


def projects_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_get_for_user(*, user: AbstractBaseUser, slug: str, roles: tuple[str, ...] | None = None) -> Project:
    """The project, if `user` is a member (with one of `roles` when given) or staff; else Http404."""
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    have = user_roles(user=user, project=project)
    if not have or (roles is not None and not have & set(roles)):
        raise Http404("No such project.")
    return project


def project_progress(*, project: Project) -> dict[str, int]:
    sets = CandidateSet.objects.filter(prompt__project=project).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=RunStatus.DONE)),
        failed=Count("id", filter=Q(status=RunStatus.FAILED)),
        running=Count("id", filter=Q(status=RunStatus.RUNNING)),
        queued=Count("id", filter=Q(status__in=[RunStatus.QUEUED, RunStatus.CREATED])),
    )
    comparisons = Comparison.objects.filter(project=project).aggregate(
        total=Count("id"),
        complete=Count("id", filter=~Q(status="open")),
    )
    return {
        "prompts": project.prompts.count(),
        "sets_total": sets["total"],
        "sets_done": sets["done"],
        "sets_failed": sets["failed"],
        "sets_running": sets["running"],
        "sets_queued": sets["queued"],
        "comparisons": comparisons["total"],
        "comparisons_complete": comparisons["complete"],
        "human_judgments": Judgment.objects.filter(comparison__project=project, source=Source.HUMAN).count(),
    }


def candidate_sets_failed(*, project: Project, limit: int = 20) -> QuerySet[CandidateSet]:
    return (
        CandidateSet.objects.filter(prompt__project=project, status=RunStatus.FAILED)
        .select_related("prompt")
        .order_by("-finished_at")[:limit]
    )


def judgments_of_user(*, user: AbstractBaseUser, project: Project) -> QuerySet[Judgment]:
    """A person's own judgments only (annotators never see anyone else's)."""
    return Judgment.objects.filter(comparison__project=project, annotator=user, source=Source.HUMAN)


def annotator_progress(*, user: AbstractBaseUser, project: Project) -> dict[str, int]:
    """What one person has done today in a project, and how many open items they could still get."""
    from django.utils import timezone

    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = Judgment.objects.filter(comparison__project=project, annotator=user, source=Source.HUMAN)
    seen = mine.values("comparison_id")
    left = (
        Comparison.objects.filter(project=project, status="open")
        .exclude(pk__in=seen)
        .exclude(assignments__user=user, assignments__state="skipped")
        .count()
    )
    return {"done_today": mine.filter(created_at__gte=start_of_day).count(), "done_total": mine.count(), "left": left}


# --- Candidate generation --------------------------------------------------------------------

_SET_COUNTS = {
    "sets_total": Count("sets", distinct=True),
    "sets_done": Count("sets", filter=Q(sets__status=RunStatus.DONE), distinct=True),
    "sets_failed": Count("sets", filter=Q(sets__status=RunStatus.FAILED), distinct=True),
    "sets_running": Count("sets", filter=Q(sets__status=RunStatus.RUNNING), distinct=True),
    "sets_queued": Count("sets", filter=Q(sets__status__in=[RunStatus.QUEUED, RunStatus.CREATED]), distinct=True),
}


def generator_specs() -> QuerySet[GeneratorSpec]:
    return GeneratorSpec.objects.order_by("name")


def generation_runs_for_project(*, project: Project, limit: int = 10) -> QuerySet[GenerationRun]:
    """The project's latest generation runs, each with its sets counted by status."""
    return (
        GenerationRun.objects.filter(project=project)
        .select_related("generator", "created_by")
        .annotate(**_SET_COUNTS)
        .order_by("-created_at", "-id")[:limit]
    )


def generation_run_get(*, project: Project, run_id: int) -> GenerationRun:
    run = (
        GenerationRun.objects.filter(project=project, pk=run_id)
        .select_related("generator", "created_by")
        .annotate(**_SET_COUNTS)
        .first()
    )
    if run is None:
        raise Http404("No such generation run.")
    return run


def generation_run_progress(*, run: GenerationRun) -> dict:
    """Counts by status of a run annotated by generation_run_get / generation_runs_for_project."""
    total = run.sets_total
    finished = run.sets_done + run.sets_failed
    return {
        "total": total,
        "done": run.sets_done,
        "failed": run.sets_failed,
        "running": run.sets_running,
        "queued": run.sets_queued,
        "finished": finished,
        "complete": run.sets_running == 0 and run.sets_queued == 0,
        "percent": round(100 * finished / total) if total else 100,
    }


def generation_run_failed_sets(*, run: GenerationRun, limit: int = 20) -> QuerySet[CandidateSet]:
    return run.sets.filter(status=RunStatus.FAILED).select_related("prompt").order_by("-finished_at", "-id")[:limit]


def candidate_sets_for_project(
    *,
    project: Project,
    strategy: str = "",
    status: str = "",
    generator_id: int | None = None,
    run_id: int | None = None,
) -> QuerySet[CandidateSet]:
    qs = CandidateSet.objects.filter(prompt__project=project).select_related("prompt", "generator")
    if strategy:
        qs = qs.filter(strategy=strategy)
    if status:
        qs = qs.filter(status=status)
    if generator_id:
        qs = qs.filter(generator_id=generator_id)
    if run_id:
        qs = qs.filter(runs__id=run_id)
    return qs.order_by("-created_at", "-id")


def candidate_set_get(*, project: Project, set_id: int) -> CandidateSet:
    """A set of the project with its candidates (and their generators and parents) prefetched."""
    candidates = Candidate.objects.select_related("generator", "parent").order_by("position")
    cset = (
        CandidateSet.objects.filter(prompt__project=project, pk=set_id)
        .select_related("prompt", "generator")
        .prefetch_related(Prefetch("candidates", queryset=candidates))
        .first()
    )
    if cset is None:
        raise Http404("No such candidate set.")
    return cset


def prompts_by_external_ids(*, project: Project, external_ids: list[str]) -> tuple[list[Prompt], list[str]]:
    """The project's prompts with these external ids, and the ids that matched none."""
    found = list(Prompt.objects.filter(project=project, external_id__in=external_ids))
    known = {p.external_id for p in found}
    return found, [e for e in external_ids if e not in known]


def _diversity_figure(key: str):
    return Cast(KT(f"diversity__{key}"), FloatField())


def strategy_comparison(*, project: Project) -> list[dict]:
    """Per strategy and generator: sets by status and the mean diversity figures of finished sets,
    with 95% confidence half-widths (normal approximation over sets)."""
    done = Q(status=RunStatus.DONE)
    measured = done & Q(diversity__has_key="mean_pairwise_distance")
    distance, distinct, length = (
        _diversity_figure("mean_pairwise_distance"),
        _diversity_figure("distinct_2"),
        _diversity_figure("mean_length"),
    )
    rows = (
        CandidateSet.objects.filter(prompt__project=project)
        .values("strategy", "generator_id", "generator__name")
        .annotate(
            sets=Count("id"),
            done=Count("id", filter=done),
            failed=Count("id", filter=Q(status=RunStatus.FAILED)),
            pending=Count("id", filter=Q(status__in=RUNNABLE_STATUSES)),
            parse_failures=Count("id", filter=Q(status=RunStatus.FAILED, error__startswith="NCParseError")),
            measured=Count("id", filter=measured),
            distance=Avg(distance, filter=measured),
            distance_sq=Avg(distance * distance, filter=measured),
            distinct_2=Avg(distinct, filter=measured),
            distinct_2_sq=Avg(distinct * distinct, filter=measured),
            mean_length=Avg(length, filter=done),
        )
    )
    order = {value: i for i, value in enumerate(Strategy.values)}
    out = []
    for row in rows:
        m = row["measured"]
        attempted = row["done"] + row["failed"]
        out.append(
            {
                "strategy": row["strategy"],
                "strategy_label": Strategy(row["strategy"]).label,
                "generator": row["generator__name"] or ("several" if row["strategy"] == Strategy.MULTI_MODEL else "?"),
                "sets": row["sets"],
                "done": row["done"],
                "failed": row["failed"],
                "pending": row["pending"],
                "parse_failures": row["parse_failures"],
                "success_rate": row["done"] / attempted if attempted else None,
                "measured": m,
                "distance": row["distance"],
                "distance_ci": _ci95(row["distance"], row["distance_sq"], m),
                "distinct_2": row["distinct_2"],
                "distinct_2_ci": _ci95(row["distinct_2"], row["distinct_2_sq"], m),
                "mean_length": row["mean_length"],
            }
        )
    out.sort(key=lambda r: (order.get(r["strategy"], 99), r["generator"]))
    return out


def _ci95(mean: float | None, mean_sq: float | None, n: int) -> float | None:
    if mean is None or mean_sq is None or n < 2:
        return None
    variance = max(0.0, mean_sq - mean * mean) * n / (n - 1)
    return 1.96 * math.sqrt(variance / n)
