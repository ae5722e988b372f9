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
)

LABELLERS = (Role.ANNOTATOR, Role.ADJUDICATOR, Role.MANAGER)


class JudgmentForm(forms.Form):
    """Pairs send `choice`; best-of-N items send `best` (and optionally `worst`), positions as shown."""

    choice = forms.ChoiceField(
        choices=[("left", "Left"), ("right", "Right"), ("tie", "Tie"), ("both_bad", "Both bad")], required=False
    )
    best = forms.IntegerField(required=False, min_value=1, max_value=64)
    worst = forms.IntegerField(required=False, min_value=1, max_value=64)
    strength = forms.ChoiceField(choices=[("", "—"), *Strength.choices], required=False)
    rationale = forms.CharField(required=False, max_length=5000)
    time_spent_ms = forms.IntegerField(required=False, min_value=0, max_value=24 * 3600 * 1000)
    submission_key = forms.CharField(max_length=64)

    def clean(self):
        data = super().clean()
        if not data.get("choice") and data.get("best") is None:
            raise forms.ValidationError("Choose a response.")
        return data


def _item_context(project, lease: Assignment | None) -> dict:
    if lease is None:
        return {"project": project, "lease": None}
    comparison = lease.comparison
    context = {
        "project": project,
        "lease": lease,
        "prompt": comparison.prompt,
        "submission_key": uuid.uuid4().hex,
    }
    if comparison.kind == "best_of_n":
        context["responses"] = selectors.item_shown(comparison=comparison, lease=lease)
        return context
    a, b = comparison.candidate_a, comparison.candidate_b
    context["left"], context["right"] = (b, a) if lease.swapped else (a, b)
    return context


def _render_item(request: HttpRequest, project, lease, status: int = 200, error: str = "") -> HttpResponse:
    context = _item_context(project, lease)
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
    form = JudgmentForm(request.POST)
    if not form.is_valid():
        lease = _own_lease(request, project, assignment_id)
        return _render_item(request, project, lease, status=400, error=_form_error(form))
    data = form.cleaned_data
    try:
        judgment_submit(
            assignment_id=assignment_id,
            user=request.user,
            project=project,
            submission=Submission(
                shown_choice=data["choice"] or "",
                best=data["best"],
                worst=data["worst"],
                strength=data["strength"] or "",
                rationale=data["rationale"],
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
        assignment_skip(assignment_id=assignment_id, user=request.user, project=project)
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
