"""Read-side queries. Permission-aware lookups raise Http404 so that outsiders learn nothing."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from annotate.models import (
    Assignment,
    Candidate,
    CandidateSet,
    Comparison,
    ExportJob,
    Judgment,
    Membership,
    Principle,
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
