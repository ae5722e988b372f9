"""AI judging: runs, per-candidate likelihood scores, set rankings and their agreement, per-principle
verdicts, SPA pairs, versioned demonstration pools and the routing decision of each comparison.

Pairwise AI verdicts themselves are `Judgment` rows (source "ai"), with the raw probabilities of
both orders in `Judgment.probabilities`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotate.models.candidates import Candidate, CandidateSet, RunStatus
from annotate.models.comparisons import Choice, Comparison
from annotate.models.projects import Principle, Project
from annotate.models.specs import JudgeSpec

ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class JudgeTask(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise A/B/NA verdicts (both orders)"
    PRINCIPLES = "principles", "Per-principle oracle (every pair x principle)"
    LIKELIHOOD = "likelihood", "White-box likelihood ranking (CycleAlign)"
    LISTWISE = "listwise", "Black-box listwise ranking (CycleAlign)"
    SPA = "spa", "Implicit reward against a reference model (SPA)"


class JudgeRun(models.Model):
    """One judge working through a project for one task; the page a data lead watches polls this row."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judge_runs")
    judge = models.ForeignKey(JudgeSpec, on_delete=models.PROTECT, related_name="runs")
    judge_version = models.CharField(max_length=40)
    reference = models.ForeignKey(
        JudgeSpec,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reference_runs",
        help_text="SPA: the fixed reference model (pi_ref).",
    )
    reference_version = models.CharField(max_length=40, blank=True)
    task = models.CharField(max_length=12, choices=JudgeTask.choices)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="Work items (pairs, pair x principle, candidates, sets).")
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    stats = models.JSONField(default=dict, blank=True, help_text="Figures computed when the run finished.")
    params = models.JSONField(default=dict, blank=True)
    claim = models.CharField(max_length=32, blank=True, help_text="Token of the attempt that owns the run.")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="judgerun_status_valid"),
            models.CheckConstraint(condition=Q(task__in=JudgeTask.values), name="judgerun_task_valid"),
            models.UniqueConstraint(
                fields=["project", "judge", "task"],
                condition=Q(status__in=ACTIVE_RUN_STATUSES),
                name="judgerun_one_active_per_judge_task",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.judge} {self.task} on {self.project} ({self.status} {self.done}/{self.total})"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES


class CandidateScore(models.Model):
    """log p(candidate | prompt) under one model version: kept so that rankings and SPA labels can be
    recomputed without running the model again."""

    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="scores")
    scorer = models.ForeignKey(JudgeSpec, on_delete=models.PROTECT, related_name="candidate_scores")
    scorer_version = models.CharField(max_length=40)
    sum_logprob = models.FloatField()
    mean_logprob = models.FloatField()
    n_tokens = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["candidate", "scorer", "scorer_version"], name="candidatescore_one_per_model_version"
            )
        ]

    def __str__(self) -> str:
        return f"candidate {self.candidate_id} under {self.scorer_id}@{self.scorer_version}: {self.mean_logprob:.3f}"


class RankingMethod(models.TextChoices):
    LIKELIHOOD = "likelihood", "White-box (mean log-likelihood)"
    LISTWISE = "listwise", "Black-box (listwise prompt)"


class SetRanking(models.Model):
    """A ranking of one candidate set by one ranker. `ranking` lists candidate ids, best first; it is
    empty when the ranker failed (`error` says why, `raw_output` keeps its answer)."""

    candidate_set = models.ForeignKey(CandidateSet, on_delete=models.CASCADE, related_name="rankings")
    judge = models.ForeignKey(JudgeSpec, on_delete=models.PROTECT, related_name="set_rankings")
    judge_version = models.CharField(max_length=40)
    method = models.CharField(max_length=12, choices=RankingMethod.choices)
    ranking = models.JSONField(default=list, blank=True)
    scores = models.JSONField(default=dict, blank=True, help_text="White-box: candidate id -> mean log-prob.")
    pool_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="Black-box: the demonstration pool version the call used."
    )
    demonstrations = models.JSONField(default=list, blank=True, help_text="Black-box: ids of the demonstrations.")
    raw_output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["candidate_set", "method", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["candidate_set", "judge", "judge_version", "method"], name="setranking_one_per_ranker"
            ),
            models.CheckConstraint(condition=Q(method__in=RankingMethod.values), name="setranking_method_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.method} ranking of set {self.candidate_set_id} by {self.judge_id}: {self.ranking}"


class SetAgreement(models.Model):
    """How far two rankings of one set agree under a rule; `agreed_pairs` are the pseudo-labels
    ([winner id, loser id])."""

    candidate_set = models.ForeignKey(CandidateSet, on_delete=models.CASCADE, related_name="agreements")
    first = models.ForeignKey(SetRanking, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(SetRanking, on_delete=models.CASCADE, related_name="+")
    rule = models.CharField(max_length=20)
    kendall_tau = models.FloatField(null=True, blank=True)
    share = models.FloatField(help_text="Agreed pairs / all pairs of the set.")
    agreed_pairs = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["first", "second", "rule"], name="setagreement_unique"),
            models.CheckConstraint(condition=~Q(first=F("second")), name="setagreement_two_rankings"),
        ]

    def __str__(self) -> str:
        return f"set {self.candidate_set_id} {self.rule}: tau={self.kendall_tau}"


class PrincipleVerdict(models.Model):
    """The per-principle oracle's verdict on one pair (the input of the discretion metrics)."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="principle_verdicts")
    principle = models.ForeignKey(Principle, on_delete=models.CASCADE, related_name="verdicts")
    judge = models.ForeignKey(JudgeSpec, on_delete=models.PROTECT, related_name="principle_verdicts")
    judge_version = models.CharField(max_length=40)
    choice = models.CharField(max_length=12, choices=Choice.choices)
    probabilities = models.JSONField(default=dict, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "principle", "judge", "judge_version"], name="principleverdict_unique"
            ),
            models.CheckConstraint(condition=Q(choice__in=Choice.values), name="principleverdict_choice_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.principle_id} on comparison {self.comparison_id}: {self.choice}"


class SpaPair(models.Model):
    """SPA self-label of a pair: implicit rewards r = log pi - log pi_ref, margin, confidence, flag."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="spa_pairs")
    policy = models.ForeignKey(JudgeSpec, on_delete=models.PROTECT, related_name="+")
    policy_version = models.CharField(max_length=40)
    reference = models.ForeignKey(JudgeSpec, on_delete=models.PROTECT, related_name="+")
    reference_version = models.CharField(max_length=40)
    reward_a = models.FloatField()
    reward_b = models.FloatField()
    chosen = models.CharField(max_length=12, choices=Choice.choices)
    margin = models.FloatField(help_text="r_w - r_l (>= 0).")
    confidence = models.FloatField(help_text="sigmoid(beta * margin).")
    beta = models.FloatField(default=0.1)
    flagged = models.BooleanField(default=False, help_text="Margin in the bottom K % of the project's pairs.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "policy", "policy_version", "reference", "reference_version"],
                name="spapair_unique",
            ),
            models.CheckConstraint(condition=Q(chosen__in=["a", "b", "na"]), name="spapair_chosen_valid"),
        ]

    def __str__(self) -> str:
        return f"SPA {self.chosen} on comparison {self.comparison_id} (margin {self.margin:.2f})"


class DemonstrationPool(models.Model):
    """In-context examples of the black-box ranker. Every change bumps `version`; a demonstration
    belongs to version v when added_in <= v and (removed_in is empty or removed_in > v)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="demonstration_pools")
    name = models.CharField(max_length=80, default="default")
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="demonstrationpool_unique_name")]

    def __str__(self) -> str:
        return f"{self.project} / {self.name} v{self.version}"


class DemonstrationSource(models.TextChoices):
    STATIC = "static", "Written by the data lead"
    AGREEMENT = "agreement", "Both rankers agreed"
    HUMAN = "human", "Resolved by people"


class Demonstration(models.Model):
    pool = models.ForeignKey(DemonstrationPool, on_delete=models.CASCADE, related_name="demonstrations")
    source = models.CharField(max_length=10, choices=DemonstrationSource.choices)
    messages = models.JSONField(help_text="The conversation.")
    candidates = models.JSONField(help_text="Candidate texts.")
    ranking = models.JSONField(help_text="Candidate indices (0-based), best first.")
    candidate_set = models.ForeignKey(
        CandidateSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="demonstrations"
    )
    added_in = models.PositiveIntegerField()
    removed_in = models.PositiveIntegerField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pool", "added_in", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=DemonstrationSource.values), name="demonstration_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(removed_in__isnull=True) | Q(removed_in__gt=F("added_in")),
                name="demonstration_removed_after_added",
            ),
            models.UniqueConstraint(
                fields=["pool", "candidate_set"],
                condition=Q(candidate_set__isnull=False, removed_in__isnull=True),
                name="demonstration_one_live_per_set",
            ),
        ]

    def __str__(self) -> str:
        return f"demo {self.pk} ({self.source}) v{self.added_in}-{self.removed_in or ''}"


class Route(models.TextChoices):
    PSEUDO_LABEL = "pseudo_label", "Pseudo-labelled by AI"
    AUDIT = "audit", "Pseudo-labelled, sampled for a human audit"
    HUMAN = "human", "Sent to people"


class RoutingDecision(models.Model):
    """Why a comparison was pseudo-labelled, audited or sent to people, from which AI evidence."""

    comparison = models.OneToOneField(Comparison, on_delete=models.CASCADE, related_name="routing")
    route = models.CharField(max_length=14, choices=Route.choices)
    reasons = models.JSONField(default=list, blank=True)
    pseudo_choice = models.CharField(max_length=12, choices=Choice.choices, blank=True)
    priority_boost = models.IntegerField(default=0, help_text="Added to the comparison's priority by routing.")
    evidence = models.JSONField(default=list, blank=True)
    decided_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["route"])]
        constraints = [models.CheckConstraint(condition=Q(route__in=Route.values), name="routingdecision_route_valid")]

    def __str__(self) -> str:
        return f"comparison {self.comparison_id}: {self.route} {self.reasons}"
