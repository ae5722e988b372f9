"""Project pages: the list, the overview with generation progress, prompt upload."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate import selectors, selectors_dashboard
from annotate.models import Role
from annotate.services.generation import candidate_sets_create, candidate_sets_retry
from annotate.services.prompt_import import PromptImportError, prompts_import

MANAGERS = (Role.MANAGER,)
HTMX_STOP_POLLING = 286  # htmx stops an `every Ns` poll when it gets this status


def project_list(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_for_user(user=request.user)
    return render(request, "projects/list.html", {"projects": projects})


def _overview_context(request: HttpRequest, project) -> dict:
    roles = selectors.roles_in(user=request.user, project=project)
    is_manager = Role.MANAGER in roles
    context = {
        "project": project,
        "roles": sorted(Role(r).label for r in roles),
        "is_manager": is_manager,
        "mine": selectors_dashboard.my_figures(user=request.user, project=project),
    }
    if is_manager:
        context |= {
            "dash": selectors_dashboard.project_dashboard(project=project),
            "people": selectors_dashboard.annotator_figures(project=project),
            "failed_sets": selectors.candidate_sets_failed(project=project, limit=5),
        }
    return context


def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The project overview: everyone's own figures; managers also see project-wide counts and
    progress, per-person figures and links to every manager page."""
    project = selectors.project_get_for_user(user=request.user, slug=slug)
    return render(request, "projects/detail.html", _overview_context(request, project))


def generation_progress(request: HttpRequest, slug: str) -> HttpResponse:
    """The overview's figures alone (the htmx poll while generation or judging runs); managers only.
    Tells htmx to stop polling once nothing is under way."""
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    context = _overview_context(request, project)
    if not request.htmx:
        return render(request, "projects/detail.html", context)
    response = render(request, "projects/detail.html#figures", context)
    if not context["dash"]["active"]:
        response.status_code = HTMX_STOP_POLLING
    return response


@require_POST
def generation_start(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    sets = candidate_sets_create(project=project)
    messages.success(request, f"Queued generation of {len(sets)} candidate sets.")
    return redirect("project-detail", slug=project.slug)


@require_POST
def generation_retry(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    count = candidate_sets_retry(project=project)
    messages.success(request, f"Re-queued {count} failed candidate sets.")
    return redirect("project-detail", slug=project.slug)


class PromptUploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL or CSV: id, prompt or messages, optional metadata.")
    skip_existing = forms.BooleanField(required=False, label="Skip ids the project already has")


def prompt_upload(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=MANAGERS)
    form = PromptUploadForm(request.POST or None, request.FILES or None)
    errors = []
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            report = prompts_import(
                project=project,
                content=upload.read(),
                filename=upload.name,
                skip_existing=form.cleaned_data["skip_existing"],
            )
        except PromptImportError as exc:
            errors = exc.errors
        else:
            messages.success(request, f"Imported {report.created} prompts ({report.skipped} skipped).")
            return redirect("project-detail", slug=project.slug)
    status = 400 if errors else 200
    return render(request, "projects/upload.html", {"project": project, "form": form, "errors": errors}, status=status)
