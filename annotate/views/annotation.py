"""The annotator's pairwise screen: claim the next item, submit a verdict, skip."""

from __future__ import annotations

import contextlib
import uuid

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate import selectors
from annotate.models import Assignment, Role, Strength
from annotate.services.queue import (
    QueueError,
    Submission,
    assignment_claim,
    assignment_skip,
    judgment_submit,
    shown_to_choice,
)

LABELLERS = (Role.ANNOTATOR, Role.ADJUDICATOR, Role.MANAGER)


SHOWN_CHOICES = [("left", "Response 1"), ("right", "Response 2"), ("tie", "Tie"), ("both_bad", "Both bad")]
PRINCIPLE_CHOICES = [("left", "Response 1"), ("right", "Response 2"), ("tie", "Tie"), ("na", "Not relevant")]


class JudgmentForm(forms.Form):
    """A verdict in the terms the person saw (left/right); the service maps it to A/B."""

    choice = forms.ChoiceField(choices=SHOWN_CHOICES)
    strength = forms.ChoiceField(choices=[("", "—"), *Strength.choices], required=False)
    rationale = forms.CharField(required=False, max_length=5000)
    time_spent_ms = forms.IntegerField(required=False, min_value=0, max_value=24 * 3600 * 1000)
    submission_key = forms.CharField(max_length=64)

    def __init__(self, *args, principles=(), require_rationale: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.principles = list(principles)
        for principle in self.principles:
            self.fields[f"principle_{principle.pk}"] = forms.ChoiceField(choices=PRINCIPLE_CHOICES, required=False)
        if require_rationale:
            self.fields["rationale"].required = True

    def principle_choices(self, *, swapped: bool) -> dict[str, str]:
        """Per-principle verdicts in A/B terms, keyed by principle id."""
        out = {}
        for principle in self.principles:
            value = self.cleaned_data.get(f"principle_{principle.pk}")
            if value in ("tie", "na"):
                out[str(principle.pk)] = value
            elif value:
                out[str(principle.pk)] = shown_to_choice(shown_choice=value, swapped=swapped)
        return out


def _item_context(project, lease: Assignment | None, user) -> dict:
    base = {
        "project": project,
        "lease": lease,
        "progress": selectors.annotator_progress(user=user, project=project),
        "principles": list(project.principles.all()),
        "principle_choices": PRINCIPLE_CHOICES,
        "strengths": Strength.choices,
    }
    if lease is None:
        return base
    comparison = lease.comparison
    a, b = comparison.candidate_a, comparison.candidate_b
    left, right = (b, a) if lease.swapped else (a, b)
    return {
        **base,
        "prompt": comparison.prompt,
        "left": left,
        "right": right,
        "submission_key": uuid.uuid4().hex,
    }


def _render_item(request: HttpRequest, project, lease, status: int = 200, error: str = "") -> HttpResponse:
    context = _item_context(project, lease, request.user)
    context["error"] = error
    template = "annotate/compare.html#item" if request.htmx else "annotate/compare.html"
    return render(request, template, context, status=status)


def annotate_next(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
    lease = assignment_claim(project=project, user=request.user)
    if lease is not None:
        lease = Assignment.objects.select_related(
            "comparison__prompt", "comparison__candidate_a", "comparison__candidate_b"
        ).get(pk=lease.pk)
    return _render_item(request, project, lease)


@require_POST
def annotate_submit(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
    lease = _own_lease(request, project, assignment_id)
    form = JudgmentForm(request.POST, principles=project.principles.all(), require_rationale=project.require_rationale)
    if not form.is_valid():
        return _render_item(request, project, lease, status=400, error=_form_error(form))
    data = form.cleaned_data
    try:
        judgment_submit(
            assignment_id=assignment_id,
            user=request.user,
            submission=Submission(
                shown_choice=data["choice"],
                strength=data["strength"] or "",
                rationale=data["rationale"],
                principle_choices=form.principle_choices(swapped=bool(lease and lease.swapped)),
                time_spent_ms=data["time_spent_ms"],
                submission_key=data["submission_key"],
            ),
        )
    except QueueError as exc:
        lease = _own_lease(request, project, assignment_id)
        return _render_item(request, project, lease, status=400, error=str(exc))
    if request.htmx:
        return annotate_next(request, slug)
    return redirect("annotate-next", slug=project.slug)


@require_POST
def annotate_skip(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
    # A lease that is not theirs or already closed: just show the next item.
    with contextlib.suppress(QueueError):
        assignment_skip(assignment_id=assignment_id, user=request.user)
    if request.htmx:
        return annotate_next(request, slug)
    return redirect("annotate-next", slug=project.slug)


def _own_lease(request: HttpRequest, project, assignment_id: int) -> Assignment | None:
    return (
        Assignment.objects.select_related("comparison__prompt", "comparison__candidate_a", "comparison__candidate_b")
        .filter(pk=assignment_id, user=request.user, comparison__project=project, state="active")
        .first()
    )


def _form_error(form: forms.Form) -> str:
    return "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items())
