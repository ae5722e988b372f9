"""Managers' page for the other item types: best-of-N items and correction items."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from annotate import selectors
from annotate.models import Candidate, Comparison, ComparisonKind, Role
from annotate.services.best_of_n import comparisons_create_best_of_n
from annotate.services.corrections import correction_items_create


def item_types(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=(Role.MANAGER,))
    if request.method == "POST":
        if request.POST.get("kind") == ComparisonKind.BEST_OF_N:
            created = comparisons_create_best_of_n(project=project)
            messages.success(request, f"Created {created} best-of-N item{'s' if created != 1 else ''}.")
        else:
            created = len(correction_items_create(project=project))
            messages.success(request, f"Created {created} correction item{'s' if created != 1 else ''}.")
        return redirect("item-types", slug=project.slug)
    counts = {
        row["kind"]: row
        for row in Comparison.objects.filter(project=project)
        .values("kind")
        .annotate(items=Count("id"), open=Count("id", filter=Q(status="open")))
    }
    written = Candidate.objects.filter(prompt__project=project, parent__isnull=False, meta__source="human").count()
    return render(
        request,
        "items/items.html",
        {
            "project": project,
            "best_of_n": counts.get(ComparisonKind.BEST_OF_N, {"items": 0, "open": 0}),
            "corrections": counts.get(ComparisonKind.CORRECTION, {"items": 0, "open": 0}),
            "written": written,
        },
    )
