"""Read-side queries. Permission-aware lookups raise Http404 so that outsiders learn nothing."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from annotate.models import (
    CandidateSet,
    Comparison,
    Judgment,
    Membership,
    Project,
    Role,
    RunStatus,
    Source,
)


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
