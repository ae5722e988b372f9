"""Candidate sets and candidates: the responses people and judges compare."""

from __future__ import annotations

from django.db import models

from annotate.models.prompts import Prompt
from annotate.models.specs import GeneratorSpec


class Strategy(models.TextChoices):
    IID = "iid", "i.i.d. temperature sampling"
    NC_PROMPT = "nc_prompt", "NC prompting (one call, N diverse responses)"
    NC_VALUES = "nc_values", "Value-conditioned NC (one value perspective per candidate)"
    MULTI_MODEL = "multi_model", "Several generators, one candidate each"
    MAXMIN = "maxmin", "Over-generate K, keep the N most spread out"
    CORRECTION = "correction", "Corrections of existing candidates"


class RunStatus(models.TextChoices):
    CREATED = "created", "Created"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class CandidateSet(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidate_sets")
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.IID)
    generator = models.ForeignKey(
        GeneratorSpec, null=True, blank=True, on_delete=models.PROTECT, related_name="candidate_sets"
    )
    n = models.PositiveSmallIntegerField(default=4)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.CREATED)
    error = models.TextField(blank=True)
    raw_output = models.TextField(blank=True, help_text="Unparsed model output, kept for inspection.")
    diversity = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=RunStatus.values), name="candidateset_status_valid"),
            models.CheckConstraint(
                condition=models.Q(strategy__in=Strategy.values), name="candidateset_strategy_valid"
            ),
            models.CheckConstraint(condition=models.Q(n__gte=2), name="candidateset_n_at_least_two"),
        ]

    def __str__(self) -> str:
        return f"set {self.pk} ({self.strategy}, {self.status}) for {self.prompt.external_id}"


class Candidate(models.Model):
    candidate_set = models.ForeignKey(CandidateSet, on_delete=models.CASCADE, related_name="candidates")
    # Denormalised from the set so that comparisons can be checked against their prompt.
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates")
    position = models.PositiveSmallIntegerField()
    text = models.TextField()
    generator = models.ForeignKey(
        GeneratorSpec, null=True, blank=True, on_delete=models.PROTECT, related_name="candidates"
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="corrections",
        help_text="For a correction: the candidate it improves.",
    )
    meta = models.JSONField(default=dict, blank=True, help_text="Tokens, finish reason, value perspective.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["candidate_set", "position"]
        constraints = [models.UniqueConstraint(fields=["candidate_set", "position"], name="candidate_unique_position")]

    def __str__(self) -> str:
        return f"candidate {self.pk} #{self.position} of set {self.candidate_set_id}"
