"""Managers' page for correction items: create them, see how many exist, export the triples."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from annotate import selectors
from annotate.models import Candidate, Comparison, ComparisonKind, Role
from annotate.services.corrections import correction_items_create


def corrections(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=(Role.MANAGER,))
    if request.method == "POST":
        created = correction_items_create(project=project)
        messages.success(request, f"Created {len(created)} correction item{'s' if len(created) != 1 else ''}.")
        return redirect("corrections", slug=project.slug)
    counts = Comparison.objects.filter(project=project, kind=ComparisonKind.CORRECTION).aggregate(
        items=Count("id"), open=Count("id", filter=Q(status="open"))
    )
    written = Candidate.objects.filter(prompt__project=project, parent__isnull=False).count()
    return render(request, "corrections/corrections.html", {"project": project, "counts": counts, "written": written})
