"""Read-side queries of AI judging: runs, judge consistency, routing and audit figures, pools.

(A module of its own next to selectors.py so that the judging reads stay together.)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Q, QuerySet

from annotate.models import (
    Demonstration,
    DemonstrationPool,
    JudgeRun,
    JudgeSpec,
    Judgment,
    PrincipleVerdict,
    Project,
    Route,
    RoutingDecision,
    Source,
)
from annotate.models.judging import ACTIVE_RUN_STATUSES

# A judge whose verdict flips with the order this often, or that picks one position this often,
# reads the position rather than the responses: it is at chance as an A/B judge.
AT_CHANCE_INCONSISTENCY = 0.5
AT_CHANCE_POSITION = 0.9


def judge_runs_for_project(*, project: Project, limit: int = 30) -> QuerySet[JudgeRun]:
    return JudgeRun.objects.filter(project=project).select_related("judge", "reference")[:limit]


def judge_runs_active(*, project: Project) -> bool:
    return JudgeRun.objects.filter(project=project, status__in=ACTIVE_RUN_STATUSES).exists()


def judge_specs_all() -> QuerySet[JudgeSpec]:
    return JudgeSpec.objects.order_by("name")


def human_majorities(*, project: Project) -> dict[int, str]:
    """Comparison id -> "a" or "b" where people's judgments have a strict majority for one side."""
    votes: dict[int, Counter] = defaultdict(Counter)
    rows = Judgment.objects.filter(comparison__project=project, source=Source.HUMAN, choice__in=["a", "b"])
    for cid, choice in rows.values_list("comparison_id", "choice"):
        votes[cid][choice] += 1
    majorities = {}
    for cid, counter in votes.items():
        ranked = counter.most_common(2)
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
            majorities[cid] = ranked[0][0]
    return majorities


def _figures(rows: Iterable[tuple[int, str, float | None, dict]], majorities: dict[int, str]) -> dict[str, Any]:
    """Consistency figures of one judge from (comparison id, choice, confidence, probabilities) rows."""
    n = consistent = inconsistent = na = 0
    first_picks = order_verdicts = 0
    mass = 0.0
    mass_n = 0
    confidence_sum = 0.0
    confidence_n = 0
    with_humans = agree_humans = 0
    for cid, choice, confidence, probabilities in rows:
        n += 1
        if choice == "inconsistent":
            inconsistent += 1
        else:
            consistent += 1
            if choice == "na":
                na += 1
            if confidence is not None:
                confidence_sum += confidence
                confidence_n += 1
        orders = (probabilities or {}).get("order_choices") or []
        if len(orders) == 2:
            for verdict, first in zip(orders, ("a", "b"), strict=True):
                if verdict != "na":
                    order_verdicts += 1
                    first_picks += verdict == first
        for key in ("ab", "ba"):
            value = ((probabilities or {}).get(key) or {}).get("mass")
            if value is not None:
                mass += value
                mass_n += 1
        if cid in majorities and choice in ("a", "b"):
            with_humans += 1
            agree_humans += choice == majorities[cid]
    figures = {
        "judged": n,
        "consistent": consistent,
        "inconsistent": inconsistent,
        "na": na,
        "consistent_rate": consistent / n if n else None,
        "inconsistent_rate": inconsistent / n if n else None,
        "na_rate": na / n if n else None,
        "first_position_rate": first_picks / order_verdicts if order_verdicts else None,
        "label_mass": mass / mass_n if mass_n else None,
        "mean_confidence": confidence_sum / confidence_n if confidence_n else None,
        "compared_with_humans": with_humans,
        "human_agreement": agree_humans / with_humans if with_humans else None,
    }
    position = figures["first_position_rate"]
    figures["at_chance"] = bool(
        n
        and (
            (figures["inconsistent_rate"] or 0) >= AT_CHANCE_INCONSISTENCY
            or (position is not None and (position >= AT_CHANCE_POSITION or position <= 1 - AT_CHANCE_POSITION))
        )
    )
    return figures


def judge_consistency(*, project: Project) -> list[dict[str, Any]]:
    """Per judge and version: how often both orders agree, which position it favours, how much of
    its probability falls on a valid label, its confidence, and its agreement with people.

    One row per (judge, version, kind), kind "pairwise" or "principles"; current versions first.
    """
    majorities = human_majorities(project=project)
    grouped: dict[tuple, list] = defaultdict(list)
    specs: dict[int, JudgeSpec] = {}
    pairwise = (
        Judgment.objects.filter(comparison__project=project, source=Source.AI)
        .values_list("judge_id", "judge_version", "comparison_id", "choice", "confidence", "probabilities")
        .order_by()
    )
    for judge_id, version, cid, choice, confidence, probabilities in pairwise.iterator(chunk_size=2000):
        grouped[(judge_id, version, "pairwise")].append((cid, choice, confidence, probabilities))
    principles = (
        PrincipleVerdict.objects.filter(comparison__project=project)
        .values_list("judge_id", "judge_version", "comparison_id", "choice", "confidence", "probabilities")
        .order_by()
    )
    for judge_id, version, cid, choice, confidence, probabilities in principles.iterator(chunk_size=2000):
        # People do not give per-principle verdicts here: no human agreement for these rows.
        grouped[(judge_id, version, "principles")].append((cid, choice, confidence, probabilities))
    specs = {s.pk: s for s in JudgeSpec.objects.filter(pk__in={k[0] for k in grouped})}
    rows = []
    for (judge_id, version, kind), items in grouped.items():
        spec = specs[judge_id]
        rows.append(
            {
                "judge": spec,
                "version": version,
                "current": version == spec.version,
                "kind": kind,
                **_figures(items, majorities if kind == "pairwise" else {}),
            }
        )
    rows.sort(key=lambda r: (not r["current"], r["judge"].name, r["kind"], r["version"]))
    return rows


def routing_summary(*, project: Project) -> dict[str, Any]:
    """How the project's comparisons were routed, why, and how the audited pseudo-labels fared."""
    decisions = RoutingDecision.objects.filter(comparison__project=project)
    by_route = dict(decisions.values_list("route").annotate(n=Count("id")).order_by())
    reasons: Counter = Counter()
    for reason_list in decisions.filter(route=Route.HUMAN).values_list("reasons", flat=True):
        reasons.update(reason_list)
    majorities = human_majorities(project=project)
    audited = decisions.filter(route=Route.AUDIT).values_list("comparison_id", "pseudo_choice")
    checked = [(cid, choice) for cid, choice in audited if cid in majorities]
    correct = sum(1 for cid, choice in checked if majorities[cid] == choice)
    return {
        "pseudo_label": by_route.get(Route.PSEUDO_LABEL, 0),
        "audit": by_route.get(Route.AUDIT, 0),
        "human": by_route.get(Route.HUMAN, 0),
        "reasons": dict(reasons.most_common()),
        "audit_checked": len(checked),
        "audit_correct": correct,
        "audit_accuracy": correct / len(checked) if checked else None,
    }


def demonstrations_at(*, pool: DemonstrationPool, version: int | None = None) -> list[Demonstration]:
    """The demonstrations of pool version `version` (default: the current one)."""
    version = pool.version if version is None else version
    return list(
        pool.demonstrations.filter(added_in__lte=version)
        .filter(Q(removed_in__isnull=True) | Q(removed_in__gt=version))
        .select_related("candidate_set")
        .order_by("added_in", "id")
    )


def demonstration_history(*, pool: DemonstrationPool) -> QuerySet[Demonstration]:
    return pool.demonstrations.select_related("candidate_set__prompt", "created_by").order_by("-added_in", "-id")


def principle_preferences(*, project: Project, judge: JudgeSpec) -> dict[int, dict[int, int | None]]:
    """The per-principle oracle as the discretion metrics read it: comparison id -> principle id ->
    +1 (b preferred), -1 (a preferred) or None (NA or inconsistent), current judge version only."""
    sign = {"b": 1, "a": -1}
    out: dict[int, dict[int, int | None]] = defaultdict(dict)
    rows = PrincipleVerdict.objects.filter(
        comparison__project=project, judge=judge, judge_version=judge.version
    ).values_list("comparison_id", "principle_id", "choice")
    for cid, pid, choice in rows:
        out[cid][pid] = sign.get(choice)
    return dict(out)
