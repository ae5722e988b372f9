"""Routing: which comparisons AI judges settle (pseudo-labels) and which go to people.

Settings live in Project.options["routing"]; every key is optional and defaults to:

    min_confidence    0.7   a pairwise judge's debiased probability below this -> people
    audit_rate        0.05  share of pseudo-labels also sent to people, to measure judge accuracy
    min_votes         1     confident AI votes a pseudo-label needs (2: two judges must agree)
    spa_flag_percent  10    SPA pairs with a margin in the bottom K % are flagged as noisy
    spa_beta          0.1   SPA confidence = sigmoid(beta * margin)
    agreement_rule    "pairwise"  CycleAlign rule: "pairwise", "lcs" or "exact"
    demo_k            2     demonstrations per black-box ranking call
    demo_min_tau      1.0   Kendall tau at which an agreed set enters the demonstration pool
    audit_seed        ""    changes which comparisons the audit sample picks (default: the project id)
    priority          {"ai_disagreement": 30, "inconsistent": 20, "spa_flagged": 15,
                       "low_confidence": 10, "no_verdict": 10, "audit": 5}
                      added to Comparison.priority per reason, so people see these first.

Evidence per comparison (current judge versions only): each pairwise judge's verdict; each SPA pair;
each set ranking's order of the two candidates, "confirmed" when the agreement rule keeps that pair
for two rankers. Any inconsistent verdict, NA verdict, flagged SPA pair, low-confidence verdict or
disagreement between AI sources sends the comparison to people (with the reasons recorded);
otherwise, with at least `min_votes` confident votes, it is pseudo-labelled (a Resolution with
method "pseudo_label" and its provenance) unless the audit sample picks it, in which case the
pseudo-label is kept on the routing decision and people label the item too. Comparisons that
people have judged, hold a lease on, or resolved are never touched.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import (
    Assignment,
    AssignmentState,
    Comparison,
    ComparisonKind,
    ComparisonStatus,
    Judgment,
    Project,
    Resolution,
    ResolutionMethod,
    Route,
    RoutingDecision,
    SetAgreement,
    SetRanking,
    Source,
    SpaPair,
)
from rankers.agreement import RULES

DEFAULT_PRIORITY = {
    "ai_disagreement": 30,
    "inconsistent": 20,
    "spa_flagged": 15,
    "low_confidence": 10,
    "no_verdict": 10,
    "audit": 5,
}
REASON_LABELS = {
    "ai_disagreement": "AI sources disagree",
    "inconsistent": "a judge changed its verdict when the order changed",
    "no_verdict": "a judge answered NA",
    "spa_flagged": "SPA margin in the bottom K %",
    "low_confidence": "judge confidence below the threshold",
    "unconfirmed": "not enough confident AI votes",
}
CHUNK = 500


class RoutingSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class RoutingSettings:
    min_confidence: float = 0.7
    audit_rate: float = 0.05
    min_votes: int = 1
    spa_flag_percent: float = 10.0
    spa_beta: float = 0.1
    agreement_rule: str = "pairwise"
    demo_k: int = 2
    demo_min_tau: float = 1.0
    audit_seed: str = ""
    priority: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PRIORITY))

    def validate(self) -> None:
        if not 0 <= self.min_confidence <= 1:
            raise RoutingSettingsError("min_confidence must be between 0 and 1")
        if not 0 <= self.audit_rate <= 1:
            raise RoutingSettingsError("audit_rate must be between 0 and 1")
        if self.min_votes < 1:
            raise RoutingSettingsError("min_votes must be at least 1")
        if not 0 <= self.spa_flag_percent <= 100:
            raise RoutingSettingsError("spa_flag_percent must be between 0 and 100")
        if self.spa_beta <= 0:
            raise RoutingSettingsError("spa_beta must be positive")
        if self.agreement_rule not in RULES:
            raise RoutingSettingsError(f"agreement_rule must be one of {sorted(RULES)}")
        if self.demo_k < 0:
            raise RoutingSettingsError("demo_k cannot be negative")
        if not -1 <= self.demo_min_tau <= 1:
            raise RoutingSettingsError("demo_min_tau must be between -1 and 1")


_CASTS = {"float": float, "int": int, "str": str}


def routing_settings(*, project: Project) -> RoutingSettings:
    """The project's routing settings: stored values over the documented defaults."""
    stored = (project.options or {}).get("routing", {}) or {}
    values: dict[str, Any] = {}
    for f in fields(RoutingSettings):
        if f.name not in stored:
            continue
        if f.name == "priority":
            values["priority"] = {**DEFAULT_PRIORITY, **{k: int(v) for k, v in dict(stored["priority"]).items()}}
        else:
            values[f.name] = _CASTS[f.type](stored[f.name])
    result = RoutingSettings(**values)
    result.validate()
    return result


def routing_settings_update(*, project: Project, values: dict[str, Any]) -> RoutingSettings:
    """Validate and store routing settings (keys of RoutingSettings; others are refused)."""
    known = {f.name for f in fields(RoutingSettings)}
    unknown = set(values) - known
    if unknown:
        raise RoutingSettingsError(f"unknown routing settings: {sorted(unknown)}")
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        options = dict(locked.options or {})
        options["routing"] = {**(options.get("routing") or {}), **values}
        locked.options = options
        checked = routing_settings(project=locked)
        locked.save(update_fields=["options"])
    project.options = locked.options
    return checked


@dataclass(frozen=True)
class Vote:
    """One AI source's say on a comparison, in the comparison's a/b terms."""

    source: str
    kind: str  # "judge", "spa" or "ranker"
    choice: str  # "a", "b", "na" or "inconsistent"
    confidence: float | None = None
    flagged: bool = False  # SPA: margin in the bottom K %
    confirmed: bool = True  # ranker: the agreement rule kept this pair

    def counts_for_label(self, settings: RoutingSettings) -> bool:
        if self.choice not in ("a", "b"):
            return False
        if self.kind == "judge":
            return self.confidence is not None and self.confidence >= settings.min_confidence
        if self.kind == "spa":
            return not self.flagged
        return self.confirmed


@dataclass(frozen=True)
class Decision:
    route: str
    reasons: list[str]
    choice: str = ""
    priority_boost: int = 0


def route_decide(*, votes: list[Vote], settings: RoutingSettings, audit_draw: float) -> Decision | None:
    """The routing rule (pure). None: no AI evidence yet, nothing to decide."""
    if not votes:
        return None
    reasons: list[str] = []
    if any(v.choice == "inconsistent" for v in votes):
        reasons.append("inconsistent")
    if any(v.choice == "na" for v in votes):
        reasons.append("no_verdict")
    if any(v.kind == "spa" and v.flagged for v in votes):
        reasons.append("spa_flagged")
    if {v.choice for v in votes} >= {"a", "b"}:
        reasons.append("ai_disagreement")
    if any(
        v.kind == "judge" and v.choice in ("a", "b") and (v.confidence or 0) < settings.min_confidence for v in votes
    ):
        reasons.append("low_confidence")
    if reasons:
        boost = sum(settings.priority.get(r, 0) for r in reasons)
        return Decision(route=Route.HUMAN, reasons=reasons, priority_boost=boost)
    confident = [v for v in votes if v.counts_for_label(settings)]
    if len(confident) < settings.min_votes:
        return Decision(route=Route.HUMAN, reasons=["unconfirmed"])
    choice = confident[0].choice
    if audit_draw < settings.audit_rate:
        return Decision(route=Route.AUDIT, reasons=["audit"], choice=choice, priority_boost=settings.priority["audit"])
    return Decision(route=Route.PSEUDO_LABEL, reasons=[], choice=choice)


def audit_draw(*, seed: str, comparison_id: int) -> float:
    """A stable uniform draw in [0, 1) per comparison: re-routing never reshuffles the audit sample."""
    digest = hashlib.sha256(f"{seed}:{comparison_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def comparison_votes(*, project: Project, settings: RoutingSettings) -> dict[int, list[Vote]]:
    """All current AI evidence of the project's pair comparisons, by comparison id."""
    votes: dict[int, list[Vote]] = defaultdict(list)
    judgments = (
        Judgment.objects.filter(comparison__project=project, source=Source.AI, judge_version=F("judge__version"))
        .values_list("comparison_id", "judge__name", "judge_version", "choice", "confidence")
        .order_by("comparison_id", "judge_id")
    )
    for cid, name, version, choice, confidence in judgments:
        votes[cid].append(Vote(source=f"judge:{name}@{version}", kind="judge", choice=choice, confidence=confidence))
    spa = (
        SpaPair.objects.filter(
            comparison__project=project,
            policy_version=F("policy__version"),
            reference_version=F("reference__version"),
        )
        .values_list("comparison_id", "policy__name", "reference__name", "chosen", "confidence", "flagged")
        .order_by("comparison_id", "id")
    )
    for cid, policy, reference, chosen, confidence, flagged in spa:
        votes[cid].append(
            Vote(source=f"spa:{policy}/{reference}", kind="spa", choice=chosen, confidence=confidence, flagged=flagged)
        )
    rankings = list(
        SetRanking.objects.filter(candidate_set__prompt__project=project, judge_version=F("judge__version"))
        .exclude(ranking=[])
        .values_list("id", "candidate_set_id", "judge__name", "method", "ranking")
    )
    if rankings:
        current = {r[0] for r in rankings}
        confirmed: dict[int, set[tuple[int, int]]] = defaultdict(set)
        for first, second, pairs in SetAgreement.objects.filter(
            candidate_set__prompt__project=project, rule=settings.agreement_rule, first__in=current, second__in=current
        ).values_list("first_id", "second_id", "agreed_pairs"):
            for winner, loser in pairs:
                confirmed[first].add((winner, loser))
                confirmed[second].add((winner, loser))
        by_set: dict[int, list] = defaultdict(list)
        for row in rankings:
            by_set[row[1]].append(row)
        pairs = Comparison.objects.filter(
            project=project, kind=ComparisonKind.PAIR, candidate_a__candidate_set__in=list(by_set)
        ).values_list("id", "candidate_a_id", "candidate_b_id", "candidate_a__candidate_set_id")
        for cid, a, b, set_id in pairs:
            for rid, _set, name, method, ranking in by_set[set_id]:
                position = {cand: i for i, cand in enumerate(ranking)}
                if a not in position or b not in position:
                    continue
                winner, loser = (a, b) if position[a] < position[b] else (b, a)
                votes[cid].append(
                    Vote(
                        source=f"{method}:{name}",
                        kind="ranker",
                        choice="a" if winner == a else "b",
                        confirmed=(winner, loser) in confirmed.get(rid, set()),
                    )
                )
    return votes


@dataclass
class RoutingReport:
    pseudo_label: int = 0
    audit: int = 0
    human: int = 0
    unjudged: int = 0
    untouched: int = 0  # people already work on it, or it was resolved by people
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def comparisons_route(*, project: Project) -> RoutingReport:
    """Decide every routable comparison of the project from the current AI evidence, and apply it.

    Idempotent: running it again with the same evidence changes nothing. Locks each chunk of
    comparison rows (and re-checks leases and human judgments inside the lock, so that an item a
    person claims meanwhile is left alone: claiming locks the same rows).
    """
    settings = routing_settings(project=project)
    seed = settings.audit_seed or str(project.pk)
    votes = comparison_votes(project=project, settings=settings)
    report = RoutingReport()
    ids = list(
        Comparison.objects.filter(project=project, kind=ComparisonKind.PAIR).order_by("id").values_list("id", flat=True)
    )
    now = timezone.now()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with transaction.atomic():
            locked = list(
                Comparison.objects.select_for_update(of=("self",))
                .filter(pk__in=chunk)
                .select_related("resolution", "routing")
                .order_by("id")
            )
            leased = set(
                Assignment.objects.filter(
                    comparison_id__in=chunk, state=AssignmentState.ACTIVE, expires_at__gt=now
                ).values_list("comparison_id", flat=True)
            )
            for comparison in locked:
                _route_one(comparison, votes.get(comparison.pk, []), settings, seed, leased, report)
    return report


def _resolution(comparison: Comparison) -> Resolution | None:
    try:
        return comparison.resolution
    except Resolution.DoesNotExist:
        return None


def _decision(comparison: Comparison) -> RoutingDecision | None:
    try:
        return comparison.routing
    except RoutingDecision.DoesNotExist:
        return None


def _route_one(
    comparison: Comparison,
    votes: list[Vote],
    settings: RoutingSettings,
    seed: str,
    leased: set[int],
    report: RoutingReport,
) -> None:
    resolution = _resolution(comparison)
    pseudo = resolution is not None and resolution.method == ResolutionMethod.PSEUDO_LABEL
    routable = pseudo or (comparison.status == ComparisonStatus.OPEN and resolution is None)
    if not routable or comparison.human_judgments > 0 or comparison.pk in leased:
        report.untouched += 1
        return
    old = _decision(comparison)
    new = route_decide(votes=votes, settings=settings, audit_draw=audit_draw(seed=seed, comparison_id=comparison.pk))
    old_boost = old.priority_boost if old else 0
    if new is None:
        report.unjudged += 1
        if old is not None:
            old.delete()
        if pseudo:
            resolution.delete()
        _set(comparison, priority=comparison.priority - old_boost, status=ComparisonStatus.OPEN)
        return
    evidence = [asdict(v) for v in votes]
    setattr(report, new.route, getattr(report, new.route) + 1)
    for reason in new.reasons:
        report.reasons[reason] = report.reasons.get(reason, 0) + 1
    if new.route == Route.PSEUDO_LABEL:
        provenance = {
            "votes": evidence,
            "rule": settings.agreement_rule,
            "min_confidence": settings.min_confidence,
            "min_votes": settings.min_votes,
        }
        if resolution is None:
            Resolution.objects.create(
                comparison=comparison, choice=new.choice, method=ResolutionMethod.PSEUDO_LABEL, provenance=provenance
            )
        elif resolution.choice != new.choice or resolution.provenance != provenance:
            resolution.choice, resolution.provenance = new.choice, provenance
            resolution.save(update_fields=["choice", "provenance"])
        status = ComparisonStatus.RESOLVED
    else:
        if pseudo:
            resolution.delete()
        status = ComparisonStatus.OPEN
    _set(comparison, priority=comparison.priority - old_boost + new.priority_boost, status=status)
    RoutingDecision.objects.update_or_create(
        comparison=comparison,
        defaults={
            "route": new.route,
            "reasons": new.reasons,
            "pseudo_choice": new.choice,
            "priority_boost": new.priority_boost,
            "evidence": evidence,
        },
    )


def _set(comparison: Comparison, *, priority: int, status: str) -> None:
    changed = []
    if comparison.priority != priority:
        comparison.priority = priority
        changed.append("priority")
    if comparison.status != status:
        comparison.status = status
        changed.append("status")
    if changed:
        comparison.save(update_fields=changed)
