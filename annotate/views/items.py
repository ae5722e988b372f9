"""Managers' page for the other item types: best-of-N items and correction items."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from annotate import selectors
from annotate.models import ComparisonKind, Role
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
    return render(
        request,
        "items/items.html",
        {"project": project, **selectors.item_type_counts(project=project)},
    )
