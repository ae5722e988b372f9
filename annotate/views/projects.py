"""Project pages: the list, the overview with generation progress, prompt upload."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate import selectors
from annotate.models import Role
from annotate.services.generation import candidate_sets_create, candidate_sets_retry
from annotate.services.prompt_import import PromptImportError, prompts_import

MANAGERS = (Role.MANAGER,)
HTMX_STOP_POLLING = 286  # htmx stops an `every Ns` poll when it gets this status


def project_list(request: HttpRequest) -> HttpResponse:
    projects = selectors.projects_for_user(user=request.user)
    return render(request, "projects/list.html", {"projects": projects})


def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug)
    roles = selectors.user_roles(user=request.user, project=project)
    context = {
        "project": project,
        "roles": roles,
        "is_manager": Role.MANAGER in roles,
        "progress": selectors.project_progress(project=project),
        "failed_sets": selectors.candidate_sets_failed(project=project) if Role.MANAGER in roles else [],
        "my_judgments": selectors.judgments_of_user(user=request.user, project=project).count(),
    }
    return render(request, "projects/detail.html", context)


def generation_progress(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug)
    progress = selectors.project_progress(project=project)
    response = render(
        request,
        "projects/detail.html#generation-progress",
        {
            "project": project,
            "progress": progress,
            "is_manager": Role.MANAGER in selectors.user_roles(user=request.user, project=project),
            "failed_sets": selectors.candidate_sets_failed(project=project),
        },
    )
    if request.htmx and progress["sets_queued"] == 0 and progress["sets_running"] == 0:
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
