"""Read-side queries. Permission-aware lookups raise Http404 so that outsiders learn nothing."""

from __future__ import annotations

import math

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Avg, Count, FloatField, Prefetch, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import Http404

from annotate.models import (
    Assignment,
    Candidate,
    CandidateSet,
    Comparison,
    ComparisonKind,
    ExportJob,
    GenerationRun,
    GeneratorSpec,
    Judgment,
    Membership,
    Principle,
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
    """The project, if `user` is a member (with one of `roles` when given) or staff; else Http404.

    The caller's roles are left on `project.my_roles`. One query for members (this runs on every
    API request, so it is kept lean).
    """
    if not user.is_authenticated:
        raise Http404("No such project.")
    if user.is_staff:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise Http404("No such project.")
        have = user_roles(user=user, project=project)
    else:
        memberships = list(Membership.objects.filter(project__slug=slug, user=user).select_related("project"))
        if not memberships:
            raise Http404("No such project.")
        project = memberships[0].project
        have = {m.role for m in memberships}
    if not have or (roles is not None and not have & set(roles)):
        raise Http404("No such project.")
    project.my_roles = have
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


# --- Queue, items and roles (issue 5) ---------------------------------------------------------
# Who may label: everyone with a role in the project (staff count as managers).
LABELLER_ROLES = (Role.ANNOTATOR, Role.ADJUDICATOR, Role.MANAGER)
# Items whose judgments an adjudicator may see (they are there to settle them).
ADJUDICATION_STATUSES = ("adjudication", "resolved")


def roles_in(*, user: AbstractBaseUser, project: Project) -> set[str]:
    """The person's roles in the project, reusing what `project_get_for_user` already looked up."""
    cached = getattr(project, "my_roles", None)
    return set(cached) if cached is not None else user_roles(user=user, project=project)


def lease_get_for_user(*, user: AbstractBaseUser, project: Project, assignment_id: int) -> Assignment:
    """The person's own lease in this project (any state), with what is needed to show it; else Http404."""
    lease = (
        Assignment.objects.filter(pk=assignment_id, user=user, comparison__project=project)
        .select_related("comparison__prompt", "comparison__candidate_a", "comparison__candidate_b")
        .first()
    )
    if lease is None:
        raise Http404("No such lease.")
    return lease


def comparison_access(*, user: AbstractBaseUser, project: Project, comparison: Comparison) -> str:
    """How `user` may see `comparison`: "full" (every judgment, human and AI, and candidate
    provenance) or "blind" (the item as they were shown it, and their own judgments only).
    Raises Http404 when they may not see it at all.

    Managers (and staff): full. Adjudicators: full on items in adjudication or resolved. Annotators,
    and adjudicators elsewhere: blind, and only items they hold, held or judged.
    """
    roles = user_roles(user=user, project=project)
    if Role.MANAGER in roles:
        return "full"
    if Role.ADJUDICATOR in roles and comparison.status in ADJUDICATION_STATUSES:
        return "full"
    if roles & set(LABELLER_ROLES) and (
        Assignment.objects.filter(comparison=comparison, user=user).exists()
        or Judgment.objects.filter(comparison=comparison, annotator=user, source=Source.HUMAN).exists()
    ):
        return "blind"
    raise Http404("No such comparison.")


def comparison_get_for_user(*, user: AbstractBaseUser, project: Project, comparison_id: int) -> tuple[Comparison, str]:
    """The comparison and the access mode of `comparison_access`; Http404 when it is not visible."""
    comparison = (
        Comparison.objects.filter(pk=comparison_id, project=project)
        .select_related("prompt", "candidate_a__generator", "candidate_b__generator", "candidate_set")
        .first()
    )
    if comparison is None:
        raise Http404("No such comparison.")
    return comparison, comparison_access(user=user, project=project, comparison=comparison)


def judgments_visible(*, user: AbstractBaseUser, comparison: Comparison, access: str) -> QuerySet[Judgment]:
    """Judgments of `comparison` the person may see: all with "full" access, else only their own
    (blind labeling: never another person's verdict nor an AI verdict)."""
    qs = Judgment.objects.filter(comparison=comparison).select_related("annotator", "judge").order_by("id")
    if access == "full":
        return qs
    return qs.filter(annotator=user, source=Source.HUMAN)


def lease_latest(*, user: AbstractBaseUser, comparison: Comparison) -> Assignment | None:
    return Assignment.objects.filter(comparison=comparison, user=user).order_by("-id").first()


def item_shown(*, comparison: Comparison, lease: Assignment | None) -> list[dict]:
    """The responses in the order this person is (or was) shown them, as [{position, text}, ...].

    Positions are 1-based; for a pair, 1 is left and 2 is right. No candidate ids, generators or
    verdicts: this is what a blind labeler may see.
    """
    if comparison.kind == "best_of_n":
        order = list(lease.display_order) if lease and lease.display_order else None
        candidates = {c.pk: c for c in Candidate.objects.filter(candidate_set_id=comparison.candidate_set_id)}
        ids = order or sorted(candidates, key=lambda pk: candidates[pk].position)
        texts = [candidates[pk].text for pk in ids if pk in candidates]
    else:
        a, b = comparison.candidate_a, comparison.candidate_b
        texts = [b.text, a.text] if lease is not None and lease.swapped else [a.text, b.text]
    return [{"position": i, "text": text} for i, text in enumerate(texts, start=1)]


def item_view(*, lease: Assignment, project: Project) -> dict:
    """A leased item as its person sees it (blind): prompt, responses in their order, guidelines.

    Reads plain values, not model instances: this runs on every claim.
    """
    kind, messages, text_a, text_b, candidate_set_id = (
        Comparison.objects.filter(pk=lease.comparison_id, project=project)
        .values_list("kind", "prompt__messages", "candidate_a__text", "candidate_b__text", "candidate_set_id")
        .get()
    )
    if kind == "best_of_n":
        texts = dict(Candidate.objects.filter(candidate_set_id=candidate_set_id).values_list("pk", "text"))
        responses = [texts[pk] for pk in lease.display_order if pk in texts]
    else:
        responses = [text_b, text_a] if lease.swapped else [text_a, text_b]
    return {
        "lease": lease.pk,
        "comparison": lease.comparison_id,
        "kind": kind,
        "expires_at": lease.expires_at,
        "prompt": messages,
        "responses": [{"position": i, "text": text} for i, text in enumerate(responses, start=1)],
        "guidelines": project.guidelines,
        "principles": list(principles_of(project=project).values("id", "name", "text")),
        "require_rationale": project.require_rationale,
    }


def judgment_own_view(*, judgment: Judgment) -> dict:
    """A person's own judgment in the terms they were shown: left / right for pairs, positions
    (1-based, as shown) for best-of-N picks. Needs `judgment.comparison` (select it along)."""
    shown_choice = None
    if judgment.choice in ("tie", "both_bad"):
        shown_choice = judgment.choice
    elif judgment.choice in ("a", "b") and judgment.shown_left_id is not None:
        comparison = judgment.comparison
        winner = comparison.candidate_a_id if judgment.choice == "a" else comparison.candidate_b_id
        shown_choice = "left" if winner == judgment.shown_left_id else "right"
    order = list(judgment.display_order or [])

    def position(candidate_id: int | None) -> int | None:
        return order.index(candidate_id) + 1 if candidate_id in order else None

    return {
        "id": judgment.pk,
        "comparison": judgment.comparison_id,
        "choice": judgment.choice,
        "shown_choice": shown_choice,
        "best": position(judgment.best_candidate_id),
        "worst": position(judgment.worst_candidate_id),
        "strength": judgment.strength,
        "rationale": judgment.rationale,
        "time_spent_ms": judgment.time_spent_ms,
        "submission_key": judgment.submission_key,
        "derived_from": judgment.derived_from_id,
        "created_at": judgment.created_at,
    }


def comparison_view(*, user: AbstractBaseUser, project: Project, comparison_id: int) -> dict:
    """What `user` may see of a comparison (see `comparison_access`); Http404 when nothing."""
    comparison, access = comparison_get_for_user(user=user, project=project, comparison_id=comparison_id)
    judgments = list(judgments_visible(user=user, comparison=comparison, access=access))
    view = {
        "id": comparison.pk,
        "kind": comparison.kind,
        "access": access,
        "prompt": comparison.prompt.messages,
        "responses": item_shown(comparison=comparison, lease=lease_latest(user=user, comparison=comparison)),
        "my_judgments": [j for j in judgments if j.annotator_id == user.pk and j.source == Source.HUMAN],
    }
    if access == "full":
        if comparison.kind == "best_of_n":
            candidates = Candidate.objects.filter(candidate_set_id=comparison.candidate_set_id).select_related(
                "generator"
            )
        else:
            candidates = [comparison.candidate_a, comparison.candidate_b]
        view |= {
            "status": comparison.status,
            "priority": comparison.priority,
            "human_judgments": comparison.human_judgments,
            "open_leases": comparison.open_leases,
            "prompt_external_id": comparison.prompt.external_id,
            "candidates": [
                {
                    "id": c.pk,
                    "position": c.position,
                    "text": c.text,
                    "generator": c.generator.name if c.generator_id else None,
                }
                for c in candidates
            ],
            "judgments": judgments,
        }
    return view


def principles_of(*, project: Project) -> QuerySet[Principle]:
    return Principle.objects.filter(project=project).order_by("position", "id")


def export_jobs_of(*, project: Project) -> QuerySet[ExportJob]:
    return ExportJob.objects.filter(project=project).select_related("requested_by", "project")


def export_job_get(*, project: Project, job_id: int) -> ExportJob:
    job = ExportJob.objects.filter(project=project, pk=job_id).first()
    if job is None:
        raise Http404("No such export.")
    return job


def token_of(*, user: AbstractBaseUser):
    """The person's API token, or None."""
    from rest_framework.authtoken.models import Token

    return Token.objects.filter(user=user).first()


def queue_violations(*, project: Project) -> dict[str, int]:
    """Invariants of the labeling queue, counted from the rows (all must be 0). For tests,
    benchmarks and operators.

    double_assignments: (item, person) pairs holding the item more than once (active / submitted /
      skipped leases) or with more than one human judgment.
    overlap_violations: items with more direct human judgments plus active leases than the overlap.
    counter_drift: items whose open_leases / human_judgments differ from their rows.
    lost_submissions: submitted leases with no human judgment of that person on that item.
    """
    from django.db.models import Exists, F, IntegerField, OuterRef, Subquery
    from django.db.models.functions import Coalesce

    def count_of(qs):
        counted = qs.values("comparison_id").annotate(n=Count("id")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

    held_twice = (
        Assignment.objects.filter(comparison__project=project, state__in=["active", "submitted", "skipped"])
        .values("comparison_id", "user_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    judged_twice = (
        Judgment.objects.filter(comparison__project=project, source=Source.HUMAN)
        .values("comparison_id", "annotator_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    items = Comparison.objects.filter(project=project).annotate(
        active=count_of(Assignment.objects.filter(comparison=OuterRef("pk"), state="active")),
        direct=count_of(
            Judgment.objects.filter(comparison=OuterRef("pk"), source=Source.HUMAN, derived_from__isnull=True)
        ),
    )
    overlap = items.annotate(total=F("active") + F("direct")).filter(total__gt=project.overlap).count()
    drift = items.exclude(open_leases=F("active")).count() + items.exclude(human_judgments=F("direct")).count()
    judged = Judgment.objects.filter(
        comparison=OuterRef("comparison_id"), annotator=OuterRef("user_id"), source=Source.HUMAN
    )
    lost = Assignment.objects.filter(comparison__project=project, state="submitted").exclude(Exists(judged)).count()
    return {
        "double_assignments": held_twice + judged_twice,
        "overlap_violations": overlap,
        "counter_drift": drift,
        "lost_submissions": lost,
    }


def item_type_counts(*, project: Project) -> dict:
    """Best-of-N and correction items of a project (all and open), and human corrections written."""
    counts = {
        row["kind"]: row
        for row in Comparison.objects.filter(
            project=project, kind__in=[ComparisonKind.BEST_OF_N, ComparisonKind.CORRECTION]
        )
        .values("kind")
        .annotate(items=Count("id"), open=Count("id", filter=Q(status="open")))
    }
    empty = {"items": 0, "open": 0}
    return {
        "best_of_n": counts.get(ComparisonKind.BEST_OF_N, empty),
        "corrections": counts.get(ComparisonKind.CORRECTION, empty),
        "written": Candidate.objects.filter(
            prompt__project=project, parent__isnull=False, meta__source="human"
        ).count(),
    }
