"""Generation runs: one "generate" action of a data lead, so that its progress can be watched."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.models.candidates import CandidateSet, Strategy
from annotate.models.projects import Project
from annotate.models.specs import GeneratorSpec


class GenerationRun(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generation_runs")
    strategy = models.CharField(max_length=20, choices=Strategy.choices)
    generator = models.ForeignKey(
        GeneratorSpec,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty for multi-model runs: params['generators'] lists them.",
    )
    n = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Candidates per set (empty: the default).")
    params = models.JSONField(default=dict, blank=True)
    prompts_selected = models.PositiveIntegerField(default=0)
    prompts_skipped = models.PositiveIntegerField(
        default=0, help_text="Selected prompts that got no set (already had one, or nothing to correct)."
    )
    sets = models.ManyToManyField(CandidateSet, related_name="runs", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(strategy__in=Strategy.values), name="generationrun_strategy_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"generation run {self.pk} ({self.strategy}) in {self.project}"
