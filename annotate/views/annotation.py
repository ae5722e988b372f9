"""The annotator's screens: claim the next item, show it (pair or best-of-N), submit, skip."""

from __future__ import annotations

import contextlib
import uuid

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate import selectors
from annotate.models import Assignment, Choice, ComparisonKind, Role, Strength
from annotate.services import feedback
from annotate.services.corrections import correction_diff
from annotate.services.queue import (
    QueueError,
    Submission,
    assignment_claim,
    assignment_skip,
    judgment_submit,
)

LABELLERS = (Role.ANNOTATOR, Role.ADJUDICATOR, Role.MANAGER)
SHOWN_CHOICES = [("left", "Response 1"), ("right", "Response 2"), ("tie", "Tie"), ("both_bad", "Both bad")]
PRINCIPLE_CHOICES = [("left", "Response 1"), ("right", "Response 2"), ("tie", "Tie"), ("na", "Not relevant")]
TEMPLATES = {
    ComparisonKind.PAIR: "annotate/compare.html",
    ComparisonKind.BEST_OF_N: "annotate/best_of_n.html",
    ComparisonKind.CORRECTION: "annotate/correct.html",
}


class JudgmentForm(forms.Form):
    """A verdict in the terms the person saw: pairs send `choice` (left/right/tie/both_bad),
    best-of-N items send `best` (and optionally `worst`) as 1-based shown positions.
    The queue service maps them to the comparison's own terms."""

    choice = forms.ChoiceField(choices=SHOWN_CHOICES, required=False)
    best = forms.IntegerField(required=False, min_value=1, max_value=64)
    worst = forms.IntegerField(required=False, min_value=1, max_value=64)
    correction = forms.CharField(required=False, max_length=50_000, strip=False)
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

    def clean(self):
        data = super().clean()
        if not data.get("choice") and data.get("best") is None and not data.get("correction"):
            raise forms.ValidationError("Choose a response (or, for a correction, write one).")
        return data

    def principle_choices(self) -> dict[str, str]:
        """Per-principle verdicts as shown (left/right/tie/na), keyed by principle id."""
        return {
            str(p.pk): self.cleaned_data[f"principle_{p.pk}"]
            for p in self.principles
            if self.cleaned_data.get(f"principle_{p.pk}")
        }


def _item_context(project, lease: Assignment | None, user) -> dict:
    context = {
        "project": project,
        "lease": lease,
        "progress": selectors.annotator_progress(user=user, project=project),
    }
    if lease is None:
        return context
    comparison = lease.comparison
    context.update(prompt=comparison.prompt, submission_key=uuid.uuid4().hex)
    if comparison.kind == ComparisonKind.BEST_OF_N:
        context["responses"] = selectors.item_shown(comparison=comparison, lease=lease)
        return context
    if comparison.kind == ComparisonKind.CORRECTION:
        context["original"] = comparison.candidate_a
        return context
    a, b = comparison.candidate_a, comparison.candidate_b
    context.update(
        left=b if lease.swapped else a,
        right=a if lease.swapped else b,
        principles=list(project.principles.all()),
        principle_choices=PRINCIPLE_CHOICES,
        strengths=Strength.choices,
    )
    return context


def _render_item(request: HttpRequest, project, lease, status: int = 200, error: str = "") -> HttpResponse:
    context = _item_context(project, lease, request.user)
    context["error"] = error
    template = TEMPLATES.get(lease.comparison.kind if lease else ComparisonKind.PAIR, TEMPLATES[ComparisonKind.PAIR])
    return render(request, f"{template}#item" if request.htmx else template, context, status=status)


def _with_item(lease: Assignment) -> Assignment:
    return Assignment.objects.select_related(
        "comparison__prompt", "comparison__candidate_a", "comparison__candidate_b"
    ).get(pk=lease.pk)


def annotate_next(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
    lease = assignment_claim(project=project, user=request.user)
    return _render_item(request, project, _with_item(lease) if lease else None)


@require_POST
def annotate_submit(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
    form = JudgmentForm(request.POST, principles=project.principles.all(), require_rationale=project.require_rationale)
    if not form.is_valid():
        return _render_item(request, project, _own_lease(request, project, assignment_id), 400, _form_error(form))
    data = form.cleaned_data
    try:
        judgment = judgment_submit(
            assignment_id=assignment_id,
            user=request.user,
            project=project,
            submission=Submission(
                shown_choice=data["choice"] or "",
                best=data["best"],
                worst=data["worst"],
                correction_text=data["correction"],
                strength=data["strength"] or "",
                rationale=data["rationale"],
                principle_choices=form.principle_choices(),
                time_spent_ms=data["time_spent_ms"],
                submission_key=data["submission_key"],
            ),
        )
    except QueueError as exc:
        return _render_item(request, project, _own_lease(request, project, assignment_id), 400, str(exc))
    feedback = _feedback_context(project, judgment)
    if feedback is not None and not getattr(judgment, "replayed", False):
        template = "annotate/compare.html#feedback" if request.htmx else "annotate/compare.html"
        return render(request, template, feedback)
    if request.htmx:
        return annotate_next(request, slug)
    return redirect("annotate-next", slug=project.slug)


def _shown(choice: str, swapped: bool) -> str:
    if choice not in ("a", "b"):
        return dict(Choice.choices).get(choice, choice)
    return "Response 1" if (choice == "a") != swapped else "Response 2"


def _feedback_context(project, judgment) -> dict | None:
    """What to show after a pair verdict, per the project's options (None: go straight on)."""
    if judgment.comparison.kind != ComparisonKind.PAIR or judgment.assignment is None:
        return None
    options = project.options or {}
    swapped = judgment.assignment.swapped
    consensus = feedback.contradicts_consensus(judgment=judgment) if options.get("confirm_on_consensus") else None
    verdicts = feedback.ai_verdicts(comparison_id=judgment.comparison_id) if options.get("show_ai_after_submit") else []
    if consensus is None and not verdicts:
        return None
    return {
        "project": project,
        "lease": None,
        "feedback": True,
        "judgment": judgment,
        "your_choice": _shown(judgment.choice, swapped),
        "ai_verdicts": [
            {"judge": v.judge.name, "choice": _shown(v.choice, swapped), "confidence": v.confidence} for v in verdicts
        ],
        "consensus": consensus,
        "consensus_choice": _shown("a" if consensus and consensus.sign > 0 else "b", swapped) if consensus else "",
        "principles": list(project.principles.all()),
        "progress": selectors.annotator_progress(user=judgment.annotator, project=project),
    }


class ConfirmForm(forms.Form):
    decision = forms.ChoiceField(choices=[("keep", "Keep my choice"), ("change", "Change my choice")])
    principle = forms.IntegerField(required=False)


@require_POST
def annotate_confirm(request: HttpRequest, slug: str, judgment_id: int) -> HttpResponse:
    """The person's second look at a verdict that went against a principle consensus."""
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
    form = ConfirmForm(request.POST)
    if form.is_valid():
        with contextlib.suppress(feedback.FeedbackError):
            feedback.judgment_confirm(
                judgment_id=judgment_id,
                user=request.user,
                keep=form.cleaned_data["decision"] == "keep",
                relied_principle_id=form.cleaned_data["principle"],
            )
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


class DiffForm(forms.Form):
    correction = forms.CharField(required=False, max_length=50_000, strip=False)


@require_POST
def annotate_correction_diff(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    """The diff between the original answer and the person's draft (an htmx preview)."""
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=LABELLERS)
    lease = _own_lease(request, project, assignment_id)
    form = DiffForm(request.POST)
    if lease is None or lease.comparison.kind != ComparisonKind.CORRECTION or not form.is_valid():
        return HttpResponse(status=404)
    diff = correction_diff(original=lease.comparison.candidate_a.text, corrected=form.cleaned_data["correction"])
    return render(request, "annotate/correct.html#diff", {"diff": diff})
