"""Read-side queries of the project overview: project-wide figures for managers, and one person's
own figures for everyone.

Every figure is an aggregate computed by the database, so the page costs the same handful of
queries whatever the number of prompts, items, judgments or people (tests assert it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Avg, Count, IntegerField, Max, Q, Sum, Value
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from annotate.models import (
    Assignment,
    AssignmentState,
    CandidateSet,
    Comparison,
    ComparisonStatus,
    JudgeRun,
    Judgment,
    Membership,
    Project,
    Resolution,
    ResolutionMethod,
    Role,
    RunStatus,
    Source,
)
from annotate.models.judging import ACTIVE_RUN_STATUSES

RECENT_JUDGE_RUNS = 5


def _percent(part: int, whole: int) -> int:
    """A whole percentage for a progress bar; 0 of 0 shows as 0 (nothing to do is not "done")."""
    return round(100 * part / whole) if whole else 0


def _start_of_day() -> datetime:
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def project_dashboard(*, project: Project) -> dict[str, Any]:
    """Project-wide figures for the managers' overview (7 queries, whatever the project's size).

    prompts; candidate sets by status; comparisons by status; human judgments counted toward the
    overlap against those needed (overlap x comparisons; judgments beyond the overlap do not count);
    resolutions by method; AI judge runs by status with the latest few; `active` is True while
    generation or a judge run is under way (the page then polls for fresh figures).
    """
    prompts = project.prompts.count()
    sets = CandidateSet.objects.filter(prompt__project=project).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=RunStatus.DONE)),
        failed=Count("id", filter=Q(status=RunStatus.FAILED)),
        running=Count("id", filter=Q(status=RunStatus.RUNNING)),
        queued=Count("id", filter=Q(status__in=[RunStatus.QUEUED, RunStatus.CREATED])),
    )
    overlap = project.overlap
    comparisons = Comparison.objects.filter(project=project).aggregate(
        total=Count("id"),
        open=Count("id", filter=Q(status=ComparisonStatus.OPEN)),
        complete=Count("id", filter=Q(status=ComparisonStatus.COMPLETE)),
        adjudication=Count("id", filter=Q(status=ComparisonStatus.ADJUDICATION)),
        resolved=Count("id", filter=Q(status=ComparisonStatus.RESOLVED)),
        pairs=Count("id", filter=Q(kind="pair")),
        best_of_n=Count("id", filter=Q(kind="best_of_n")),
        counted=Coalesce(Sum(Least("human_judgments", Value(overlap))), 0, output_field=IntegerField()),
        leases=Coalesce(Sum("open_leases"), 0, output_field=IntegerField()),
    )
    human_judgments = Judgment.objects.filter(
        comparison__project=project, source=Source.HUMAN, derived_from__isnull=True
    ).count()
    by_method = dict(
        Resolution.objects.filter(comparison__project=project)
        .values_list("method")
        .annotate(n=Count("id"))
        .values_list("method", "n")
    )
    runs = JudgeRun.objects.filter(project=project).aggregate(
        runs=Count("id"),
        active=Count("id", filter=Q(status__in=ACTIVE_RUN_STATUSES)),
        runs_done=Count("id", filter=Q(status=RunStatus.DONE)),
        runs_failed=Count("id", filter=Q(status=RunStatus.FAILED)),
        active_items=Coalesce(Sum("total", filter=Q(status__in=ACTIVE_RUN_STATUSES)), 0),
        active_done=Coalesce(Sum("done", filter=Q(status__in=ACTIVE_RUN_STATUSES)), 0),
    )
    recent_runs = list(
        JudgeRun.objects.filter(project=project)
        .select_related("judge")
        .order_by("-created_at", "-id")[:RECENT_JUDGE_RUNS]
    )
    needed = overlap * comparisons["total"]
    total = comparisons["total"]
    statuses = [
        (key, ComparisonStatus(key).label, comparisons[key], _percent(comparisons[key], total))
        for key in ("resolved", "complete", "adjudication", "open")
    ]
    return {
        "prompts": prompts,
        "sets": sets | {"finished": sets["done"] + sets["failed"], "percent": _percent(sets["done"], sets["total"])},
        "comparisons": comparisons
        | {"statuses": statuses, "finished_percent": _percent(total - comparisons["open"], total)},
        "judgments": {
            "human": human_judgments,
            "counted": comparisons["counted"],
            "needed": needed,
            "overlap": overlap,
            "percent": _percent(comparisons["counted"], needed),
        },
        "resolutions": [
            {"method": m.value, "label": m.label, "count": by_method.get(m.value, 0)} for m in ResolutionMethod
        ],
        "judge_runs": runs
        | {
            "total": runs["runs"],
            "done": runs["runs_done"],
            "failed": runs["runs_failed"],
            "recent": recent_runs,
            "active_percent": _percent(runs["active_done"], runs["active_items"]),
        },
        "active": bool(sets["running"] or sets["queued"] or runs["active"]),
    }


def annotator_figures(*, project: Project) -> list[dict[str, Any]]:
    """Per person who labels in the project (members with a role, plus anyone who judged or held an
    item): direct judgments, today's, skips, active leases, mean seconds per item, last judgment.
    Three queries whatever the number of people. Managers only: annotators never see others' work.
    """
    start = _start_of_day()
    judged = {
        row["annotator_id"]: row
        for row in Judgment.objects.filter(comparison__project=project, source=Source.HUMAN, derived_from__isnull=True)
        .values("annotator_id", "annotator__username")
        .annotate(
            total=Count("id"),
            today=Count("id", filter=Q(created_at__gte=start)),
            mean_ms=Avg("time_spent_ms"),
            last=Max("created_at"),
        )
    }
    leases = {
        row["user_id"]: row
        for row in Assignment.objects.filter(comparison__project=project)
        .values("user_id", "user__username")
        .annotate(
            skipped=Count("id", filter=Q(state=AssignmentState.SKIPPED)),
            active=Count("id", filter=Q(state=AssignmentState.ACTIVE)),
        )
    }
    roles: dict[int, dict[str, Any]] = {}
    for user_id, username, role in Membership.objects.filter(project=project).values_list(
        "user_id", "user__username", "role"
    ):
        entry = roles.setdefault(user_id, {"username": username, "roles": []})
        entry["roles"].append(Role(role).label)
    rows = []
    for user_id in set(judged) | set(leases) | set(roles):
        j, lease, member = judged.get(user_id, {}), leases.get(user_id, {}), roles.get(user_id, {})
        username = member.get("username") or j.get("annotator__username") or lease.get("user__username")
        mean_ms = j.get("mean_ms")
        rows.append(
            {
                "username": username,
                "roles": sorted(member.get("roles", [])),
                "judgments": j.get("total", 0),
                "today": j.get("today", 0),
                "skipped": lease.get("skipped", 0),
                "active": lease.get("active", 0),
                "mean_seconds": mean_ms / 1000 if mean_ms is not None else None,
                "last": j.get("last"),
            }
        )
    rows.sort(key=lambda r: (-r["judgments"], r["username"]))
    return rows


def my_figures(*, user: AbstractBaseUser, project: Project) -> dict[str, int]:
    """One person's own figures in the project: judgments in all and today, items skipped, and the
    open items they could still be given (not judged, not skipped by them). Three queries."""
    mine = Judgment.objects.filter(comparison__project=project, annotator=user, source=Source.HUMAN)
    counts = mine.filter(derived_from__isnull=True).aggregate(
        total=Count("id"), today=Count("id", filter=Q(created_at__gte=_start_of_day()))
    )
    skipped = Assignment.objects.filter(comparison__project=project, user=user, state=AssignmentState.SKIPPED)
    left = (
        Comparison.objects.filter(project=project, status=ComparisonStatus.OPEN)
        .exclude(pk__in=mine.values("comparison_id"))
        .exclude(pk__in=skipped.values("comparison_id"))
        .count()
    )
    return {"total": counts["total"], "today": counts["today"], "skipped": skipped.count(), "left": left}
