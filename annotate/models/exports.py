"""Export jobs: datasets written asynchronously by a worker and downloaded by managers."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.models.candidates import RunStatus
from annotate.models.projects import Project


class ExportFormat(models.TextChoices):
    DPO = "dpo", "DPO JSONL (prompt / chosen / rejected)"


class ExportJob(models.Model):
    """One requested export; the worker moves it created -> queued -> running -> done | failed."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    format = models.CharField(max_length=10, choices=ExportFormat.choices, default=ExportFormat.DPO)
    params = models.JSONField(default=dict, blank=True, help_text="Options of the export, e.g. min_agreement.")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.CREATED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file_name = models.CharField(max_length=200, blank=True, help_text="Relative to the export folder.")
    rows = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-id"], name="exportjob_project_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=RunStatus.values), name="exportjob_status_valid"),
            models.CheckConstraint(condition=models.Q(format__in=ExportFormat.values), name="exportjob_format_valid"),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format}, {self.status}) of {self.project}"
