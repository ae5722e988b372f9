"""Comparisons (items people and judges label), judgments, leases and resolutions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotate.models.candidates import Candidate, CandidateSet
from annotate.models.projects import Project
from annotate.models.prompts import Prompt
from annotate.models.specs import JudgeSpec


class ComparisonKind(models.TextChoices):
    PAIR = "pair", "Pair"
    BEST_OF_N = "best_of_n", "Best of N"
    CORRECTION = "correction", "Correct an answer"


class ComparisonStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETE = "complete", "Enough judgments"
    ADJUDICATION = "adjudication", "Needs adjudication"
    RESOLVED = "resolved", "Resolved"


class Comparison(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    kind = models.CharField(max_length=12, choices=ComparisonKind.choices, default=ComparisonKind.PAIR)
    candidate_a = models.ForeignKey(
        Candidate, null=True, blank=True, on_delete=models.CASCADE, related_name="comparisons_as_a"
    )
    candidate_b = models.ForeignKey(
        Candidate, null=True, blank=True, on_delete=models.CASCADE, related_name="comparisons_as_b"
    )
    candidate_set = models.ForeignKey(
        CandidateSet,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="comparisons",
        help_text="For best-of-N items: the set whose candidates are shown.",
    )
    status = models.CharField(max_length=12, choices=ComparisonStatus.choices, default=ComparisonStatus.OPEN)
    priority = models.IntegerField(default=0, help_text="Higher is served first.")
    human_judgments = models.PositiveSmallIntegerField(
        default=0, help_text="Human judgments submitted through the queue (derived best-of-N outcomes not counted)."
    )
    # Denormalised count of this item's active leases, changed only under this row's lock by
    # annotate.services.queue, so that claiming is an index range scan instead of a COUNT per item.
    open_leases = models.PositiveSmallIntegerField(default=0, help_text="Active leases (kept by the queue).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [
            models.Index(fields=["project", "status", "-priority", "id"], name="comparison_queue_idx"),
            # The claim query walks this index in its ORDER BY: in progress first (more people
            # started), then priority, then age; only open items are in it.
            models.Index(
                F("project"),
                (F("human_judgments") + F("open_leases")).desc(),
                F("priority").desc(),
                F("id"),
                name="comparison_claim_idx",
                condition=Q(status="open"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="pair", candidate_a__isnull=False, candidate_b__isnull=False)
                    & ~Q(candidate_a=F("candidate_b"))
                )
                | Q(kind="best_of_n", candidate_set__isnull=False)
                | Q(kind="correction", candidate_a__isnull=False, candidate_b__isnull=True),
                name="comparison_shape_valid",
            ),
            models.UniqueConstraint(
                fields=["candidate_a", "candidate_b"], condition=Q(kind="pair"), name="comparison_unique_pair"
            ),
            models.CheckConstraint(condition=Q(status__in=ComparisonStatus.values), name="comparison_status_valid"),
            models.UniqueConstraint(
                fields=["candidate_set"], condition=Q(kind="best_of_n"), name="comparison_unique_best_of_n"
            ),
        ]

    def __str__(self) -> str:
        return f"comparison {self.pk} ({self.kind}) of prompt {self.prompt.external_id}"


class Choice(models.TextChoices):
    """A verdict in the comparison's own terms: A is candidate_a, B is candidate_b."""

    A = "a", "A better"
    B = "b", "B better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"
    NA = "na", "No verdict (NA)"
    INCONSISTENT = "inconsistent", "Inconsistent (judge orders disagree)"
    PICK = "pick", "Best-of-N pick (see best and worst candidate)"
    CORRECTED = "corrected", "Corrected (see the correction candidate)"


class Strength(models.TextChoices):
    SLIGHT = "slight", "Slight"
    CLEAR = "clear", "Clear"
    STRONG = "strong", "Strong"


class Source(models.TextChoices):
    HUMAN = "human", "Human"
    AI = "ai", "AI judge"


class AssignmentState(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """A lease of one comparison to one person, with the left/right order they are shown."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    state = models.CharField(max_length=10, choices=AssignmentState.choices, default=AssignmentState.ACTIVE)
    swapped = models.BooleanField(help_text="True when candidate B is shown on the left.")
    display_order = models.JSONField(default=list, blank=True, help_text="Best-of-N: candidate ids as shown.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "expires_at"]),
            models.Index(fields=["user", "state"]),
        ]
        constraints = [
            # A person holds an item at most once and never gets back one they judged or skipped
            # (released and expired leases do not count: the item may come back to them).
            models.UniqueConstraint(
                fields=["comparison", "user"],
                condition=Q(state__in=["active", "submitted", "skipped"]),
                name="assignment_once_per_person",
            ),
            models.CheckConstraint(condition=Q(state__in=AssignmentState.values), name="assignment_state_valid"),
        ]

    def __str__(self) -> str:
        return f"lease {self.pk}: {self.user} on comparison {self.comparison_id} ({self.state})"


class Judgment(models.Model):
    """One verdict on a comparison, by a person or by an AI judge."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgments")
    source = models.CharField(max_length=6, choices=Source.choices)
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="judgments"
    )
    judge = models.ForeignKey(JudgeSpec, null=True, blank=True, on_delete=models.PROTECT, related_name="judgments")
    judge_version = models.CharField(max_length=40, blank=True)
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgments"
    )
    choice = models.CharField(max_length=12, choices=Choice.choices)
    best_candidate = models.ForeignKey(
        Candidate,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Best-of-N: the chosen candidate.",
    )
    correction = models.ForeignKey(
        Candidate,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Correction items: the candidate this person wrote.",
    )
    worst_candidate = models.ForeignKey(Candidate, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    shown_left = models.ForeignKey(
        Candidate,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The candidate that was displayed on the left (first).",
    )
    shown_right = models.ForeignKey(Candidate, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    display_order = models.JSONField(default=list, blank=True)
    strength = models.CharField(max_length=8, choices=Strength.choices, blank=True)
    principle_choices = models.JSONField(default=dict, blank=True, help_text="Principle id -> choice.")
    probabilities = models.JSONField(default=dict, blank=True, help_text="AI: P(A), P(B), P(NA) per order.")
    confirmation = models.JSONField(
        default=dict,
        blank=True,
        help_text="When the verdict contradicted a principle consensus: what the person did about it.",
    )
    confidence = models.FloatField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    submission_key = models.CharField(max_length=64, blank=True)
    derived_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="derived",
        help_text="A pairwise outcome implied by this best-of-N pick (see annotate.services.best_of_n).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "annotator"], condition=Q(source="human"), name="judgment_one_per_person"
            ),
            models.UniqueConstraint(
                fields=["annotator", "submission_key"],
                condition=~Q(submission_key=""),
                name="judgment_unique_submission_key",
            ),
            models.CheckConstraint(
                condition=(
                    Q(source="human", annotator__isnull=False, judge__isnull=True)
                    | Q(source="ai", annotator__isnull=True, judge__isnull=False)
                ),
                name="judgment_source_matches_author",
            ),
            models.CheckConstraint(condition=Q(choice__in=Choice.values), name="judgment_choice_valid"),
        ]

    def __str__(self) -> str:
        who = self.annotator or self.judge
        return f"{who} → {self.choice} on comparison {self.comparison_id}"


class ResolutionMethod(models.TextChoices):
    AGREEMENT = "agreement", "Unanimous agreement"
    MAJORITY = "majority", "Majority vote"
    ADJUDICATION = "adjudication", "Adjudicated"
    PSEUDO_LABEL = "pseudo_label", "AI pseudo-label"


class Resolution(models.Model):
    comparison = models.OneToOneField(Comparison, on_delete=models.CASCADE, related_name="resolution")
    choice = models.CharField(max_length=12, choices=Choice.choices)
    method = models.CharField(max_length=14, choices=ResolutionMethod.choices)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    provenance = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(method__in=ResolutionMethod.values), name="resolution_method_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.comparison_id}: {self.choice} ({self.method})"
