"""Creating projects and managing who works in them."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotate.models import Membership, Principle, Project, Role


def project_create(
    *,
    name: str,
    slug: str,
    created_by: AbstractBaseUser | None = None,
    guidelines: str = "",
    principles: list[tuple[str, str]] | None = None,
    **options,
) -> Project:
    with transaction.atomic():
        project = Project.objects.create(name=name, slug=slug, guidelines=guidelines, created_by=created_by, **options)
        Principle.objects.bulk_create(
            [Principle(project=project, name=n, text=t, position=i) for i, (n, t) in enumerate(principles or [])]
        )
        if created_by is not None:
            Membership.objects.create(project=project, user=created_by, role=Role.MANAGER)
    return project


def membership_add(*, project: Project, user: AbstractBaseUser, role: str = Role.ANNOTATOR) -> Membership:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(Role.values)}")
    membership, _ = Membership.objects.get_or_create(project=project, user=user, role=role)
    return membership


def membership_remove(*, project: Project, membership_id: int) -> None:
    """Remove one role of one person. A project keeps at least one manager."""
    with transaction.atomic():
        membership = Membership.objects.select_for_update().get(pk=membership_id, project=project)
        if membership.role == Role.MANAGER:
            managers = Membership.objects.select_for_update().filter(project=project, role=Role.MANAGER)
            if managers.count() <= 1:
                raise ValueError("A project needs at least one manager.")
        membership.delete()
