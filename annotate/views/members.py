"""Managers' page: who works in a project, in which role."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotate import selectors
from annotate.models import Membership, Role
from annotate.services.projects import membership_add, membership_remove


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)

    def clean_username(self):
        name = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=name).first()
        if user is None:
            raise forms.ValidationError(f"No user named '{name}'.")
        return user


def members(request: HttpRequest, slug: str) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=(Role.MANAGER,))
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership_add(project=project, user=form.cleaned_data["username"], role=form.cleaned_data["role"])
        messages.success(request, f"Added {form.cleaned_data['username']} as {form.cleaned_data['role']}.")
        return redirect("project-members", slug=project.slug)
    memberships = Membership.objects.filter(project=project).select_related("user").order_by("user__username", "role")
    return render(
        request,
        "projects/members.html",
        {"project": project, "form": form, "memberships": memberships},
        status=400 if form.errors else 200,
    )


@require_POST
def member_remove(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, slug=slug, roles=(Role.MANAGER,))
    try:
        membership_remove(project=project, membership_id=membership_id)
    except Membership.DoesNotExist:
        messages.error(request, "No such membership.")
    except ValueError as exc:
        messages.error(request, str(exc))
    return redirect("project-members", slug=project.slug)
