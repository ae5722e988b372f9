"""The versioned demonstration pool of the black-box ranker (CycleAlign, methods.md section 3).

Every change (a demonstration added or removed) bumps the pool's version under a row lock, so the
demonstrations of any past version can be listed again exactly (see
selectors_judging.demonstrations_at) and every ranking call records the version it used.
"""

from __future__ import annotations

import random
from itertools import combinations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotate.models import (
    CandidateSet,
    Choice,
    ComparisonKind,
    Demonstration,
    DemonstrationPool,
    DemonstrationSource,
    Project,
    Resolution,
    ResolutionMethod,
    RunStatus,
)


class DemonstrationError(ValueError):
    pass


def demonstration_pool_get(*, project: Project, name: str = "default") -> DemonstrationPool:
    pool, _ = DemonstrationPool.objects.get_or_create(project=project, name=name)
    return pool


def _check(messages: list, candidates: list, ranking: list) -> None:
    if not messages or not all(isinstance(m, dict) and m.get("role") and "content" in m for m in messages):
        raise DemonstrationError("a demonstration needs a conversation of {role, content} turns")
    if len(candidates) < 2 or not all(isinstance(c, str) and c.strip() for c in candidates):
        raise DemonstrationError("a demonstration needs at least two non-empty candidates")
    if sorted(ranking) != list(range(len(candidates))):
        raise DemonstrationError(f"the ranking must order every candidate once (0..{len(candidates) - 1})")


def demonstration_add(
    *,
    pool: DemonstrationPool,
    source: str,
    messages: list[dict],
    candidates: list[str],
    ranking: list[int],
    candidate_set: CandidateSet | None = None,
    note: str = "",
    user: AbstractBaseUser | None = None,
) -> Demonstration:
    """Add a demonstration as a new pool version. A set already in the pool is not added twice."""
    _check(messages, candidates, ranking)
    with transaction.atomic():
        locked = DemonstrationPool.objects.select_for_update().get(pk=pool.pk)
        if candidate_set is not None:
            live = locked.demonstrations.filter(candidate_set=candidate_set, removed_in__isnull=True).first()
            if live is not None:
                return live
        locked.version += 1
        locked.save(update_fields=["version"])
        demo = Demonstration.objects.create(
            pool=locked,
            source=source,
            messages=messages,
            candidates=candidates,
            ranking=ranking,
            candidate_set=candidate_set,
            added_in=locked.version,
            note=note,
            created_by=user if user is not None and user.is_authenticated else None,
        )
    pool.version = locked.version
    return demo


def demonstration_remove(*, demonstration: Demonstration) -> Demonstration:
    """Remove a demonstration from the pool from the next version on (older versions keep it)."""
    with transaction.atomic():
        pool = DemonstrationPool.objects.select_for_update().get(pk=demonstration.pool_id)
        demo = Demonstration.objects.select_for_update().get(pk=demonstration.pk)
        if demo.removed_in is not None:
            return demo
        pool.version += 1
        pool.save(update_fields=["version"])
        demo.removed_in = pool.version
        demo.save(update_fields=["removed_in"])
    return demo


def demonstration_add_from_set(
    *, pool: DemonstrationPool, candidate_set: CandidateSet, ranking_ids: list[int], source: str
) -> Demonstration:
    """A set ranked by agreement or by people enters the pool (ranking given as candidate ids)."""
    candidates = list(candidate_set.candidates.order_by("position"))
    index = {c.pk: i for i, c in enumerate(candidates)}
    return demonstration_add(
        pool=pool,
        source=source,
        messages=candidate_set.prompt.messages,
        candidates=[c.text for c in candidates],
        ranking=[index[cid] for cid in ranking_ids],
        candidate_set=candidate_set,
    )


def demonstrations_sync_from_humans(*, project: Project) -> int:
    """Add every set whose pairs people resolved into one strict order (no ties, no cycles).

    Returns how many sets entered the pool.
    """
    pool = demonstration_pool_get(project=project)
    in_pool = set(pool.demonstrations.filter(removed_in__isnull=True).values_list("candidate_set_id", flat=True))
    resolutions = (
        Resolution.objects.filter(comparison__project=project, comparison__kind=ComparisonKind.PAIR)
        .exclude(method=ResolutionMethod.PSEUDO_LABEL)
        .values_list(
            "comparison__candidate_a__candidate_set_id",
            "comparison__candidate_a_id",
            "comparison__candidate_b_id",
            "choice",
        )
    )
    wins: dict[int, dict[tuple[int, int], int]] = {}
    for set_id, a, b, choice in resolutions:
        if choice in (Choice.A, Choice.B):
            wins.setdefault(set_id, {})[(a, b)] = a if choice == Choice.A else b
    added = 0
    for set_id, decided in wins.items():
        if set_id in in_pool:
            continue
        cset = CandidateSet.objects.filter(pk=set_id, status=RunStatus.DONE).select_related("prompt").first()
        if cset is None:
            continue
        ids = list(cset.candidates.order_by("position").values_list("id", flat=True))
        score = dict.fromkeys(ids, 0)
        complete = True
        for a, b in combinations(ids, 2):
            winner = decided.get((a, b), decided.get((b, a)))
            if winner is None:
                complete = False
                break
            score[winner] += 1
        # A strict total order exists exactly when the win counts are n-1, n-2, ..., 0.
        if not complete or sorted(score.values()) != list(range(len(ids))):
            continue
        ranking = sorted(ids, key=lambda cid: -score[cid])
        demonstration_add_from_set(pool=pool, candidate_set=cset, ranking_ids=ranking, source=DemonstrationSource.HUMAN)
        added += 1
    return added


def demonstrations_draw(
    *, demonstrations: list[Demonstration], k: int, exclude_prompt_id: int | None, seed: str
) -> list[Demonstration]:
    """k demonstrations drawn without replacement (stable for a given seed), never from the same prompt."""
    usable = [
        d
        for d in demonstrations
        if exclude_prompt_id is None or d.candidate_set is None or d.candidate_set.prompt_id != exclude_prompt_id
    ]
    if k <= 0 or not usable:
        return []
    return random.Random(seed).sample(usable, min(k, len(usable)))
