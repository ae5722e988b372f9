"""Projects, their principles and who may work in them."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Shown to annotators above every item.")
    candidates_per_prompt = models.PositiveSmallIntegerField(default=4)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Distinct people who must judge each comparison.")
    lease_minutes = models.PositiveSmallIntegerField(
        default=15, help_text="How long a claimed item stays reserved for one person."
    )
    require_rationale = models.BooleanField(default=False)
    options = models.JSONField(default=dict, blank=True, help_text="Routing thresholds and other options.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(overlap__gte=1), name="project_overlap_positive"),
            models.CheckConstraint(
                condition=models.Q(candidates_per_prompt__gte=2), name="project_candidates_at_least_two"
            ),
            models.CheckConstraint(condition=models.Q(lease_minutes__gte=1), name="project_lease_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Principle(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="principles")
    name = models.CharField(max_length=120)
    text = models.TextField()
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["project", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="principle_unique_name_per_project")]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    MANAGER = "manager", "Manager"
    ANNOTATOR = "annotator", "Annotator"
    ADJUDICATOR = "adjudicator", "Adjudicator"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "role"], name="membership_unique_role"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.role} · {self.project}"
