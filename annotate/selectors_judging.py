"""Read-side queries of AI judging: runs, judge consistency, routing and audit figures, pools.

(A module of its own next to selectors.py so that the judging reads stay together.)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from django.db.models import Avg, Count, FloatField, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

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


def _aggregate(queryset: QuerySet) -> dict[tuple[int, str], dict[str, Any]]:
    """Counts and means per (judge, version), computed by the database (no row is loaded)."""
    order_ab = "probabilities__order_choices__0"
    order_ba = "probabilities__order_choices__1"
    rows = (
        queryset.values("judge_id", "judge_version")
        .annotate(
            judged=Count("id"),
            inconsistent=Count("id", filter=Q(choice="inconsistent")),
            na=Count("id", filter=Q(choice="na")),
            # The judge picked the response shown first: a in order ab, b in order ba.
            first_picks=Count("id", filter=Q(**{order_ab: "a"})) + Count("id", filter=Q(**{order_ba: "b"})),
            order_verdicts=Count("id", filter=Q(**{f"{order_ab}__in": ["a", "b"]}))
            + Count("id", filter=Q(**{f"{order_ba}__in": ["a", "b"]})),
            mass_ab=Avg(Cast(KT("probabilities__ab__mass"), FloatField())),
            mass_ba=Avg(Cast(KT("probabilities__ba__mass"), FloatField())),
            mean_confidence=Avg("confidence", filter=~Q(choice="inconsistent")),
        )
        .order_by()
    )
    return {(r.pop("judge_id"), r.pop("judge_version")): r for r in rows}


def _human_agreement(queryset: QuerySet, majorities: dict[int, str]) -> dict[tuple[int, str], tuple[int, int]]:
    """(compared, agreed) per (judge, version) on the comparisons people have a majority on."""
    out: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    rows = queryset.filter(comparison_id__in=list(majorities), choice__in=["a", "b"]).values_list(
        "judge_id", "judge_version", "comparison_id", "choice"
    )
    for judge_id, version, cid, choice in rows:
        counts = out[(judge_id, version)]
        counts[0] += 1
        counts[1] += choice == majorities[cid]
    return {k: (v[0], v[1]) for k, v in out.items()}


def _figures(agg: dict[str, Any], humans: tuple[int, int]) -> dict[str, Any]:
    n = agg["judged"]
    consistent = n - agg["inconsistent"]
    masses = [m for m in (agg["mass_ab"], agg["mass_ba"]) if m is not None]
    position = agg["first_picks"] / agg["order_verdicts"] if agg["order_verdicts"] else None
    compared, agreed = humans
    figures = {
        "judged": n,
        "consistent": consistent,
        "inconsistent": agg["inconsistent"],
        "na": agg["na"],
        "consistent_rate": consistent / n if n else None,
        "inconsistent_rate": agg["inconsistent"] / n if n else None,
        "na_rate": agg["na"] / n if n else None,
        "first_position_rate": position,
        "label_mass": sum(masses) / len(masses) if masses else None,
        "mean_confidence": agg["mean_confidence"],
        "compared_with_humans": compared,
        "human_agreement": agreed / compared if compared else None,
    }
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
    its probability falls on a valid label, its confidence, and its agreement with people's
    majority verdicts.

    One row per (judge, version, kind), kind "pairwise" or "principles"; current versions first.
    Aggregated in the database, so the page stays fast however many verdicts there are.
    """
    pairwise = Judgment.objects.filter(comparison__project=project, source=Source.AI)
    principles = PrincipleVerdict.objects.filter(comparison__project=project)
    majorities = human_majorities(project=project)
    humans = _human_agreement(pairwise, majorities) if majorities else {}
    groups = [("pairwise", _aggregate(pairwise)), ("principles", _aggregate(principles))]
    specs = JudgeSpec.objects.in_bulk({judge_id for _, agg in groups for judge_id, _ in agg})
    rows = []
    for kind, aggregated in groups:
        for (judge_id, version), agg in aggregated.items():
            spec = specs[judge_id]
            rows.append(
                {
                    "judge": spec,
                    "version": version,
                    "current": version == spec.version,
                    "kind": kind,
                    # People give no per-principle verdicts here: no human agreement for those rows.
                    **_figures(agg, humans.get((judge_id, version), (0, 0)) if kind == "pairwise" else (0, 0)),
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
