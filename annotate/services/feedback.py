"""After a person submits: what the AI judges said, and a second look when they went against a
clear principle consensus (methods.md section 6: consensus = principles' verdicts agree).

Both are per-project options in Project.options:
  "show_ai_after_submit": false   show the AI judges' verdicts once the person has submitted
  "confirm_on_consensus": false   ask to confirm or change a verdict that contradicts a consensus
The person's answer is recorded on the judgment (Judgment.confirmation), so discretion metrics can
tell first answers from second thoughts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotate.metrics.discretion import PairClass, classify_pair
from annotate.models import Choice, Judgment, Principle, Source
from annotate.models.judging import PrincipleVerdict

SIGN = {Choice.A: 1.0, Choice.B: -1.0}


class FeedbackError(Exception):
    """The confirmation cannot be recorded."""


@dataclass(frozen=True)
class Consensus:
    sign: float  # +1: the principles prefer candidate A; -1: candidate B
    principles: list[str]


def principle_consensus(*, comparison_id: int) -> Consensus | None:
    """The principles' consensus on a pair from the oracle's verdicts, or None (conflict, no verdicts)."""
    verdicts = list(
        PrincipleVerdict.objects.filter(comparison_id=comparison_id).select_related("principle").order_by("principle")
    )
    if not verdicts:
        return None
    prefs = np.array([SIGN.get(v.choice, np.nan) for v in verdicts])
    kind, sign = classify_pair(prefs)
    if kind != PairClass.CONSENSUS:
        return None
    names = sorted({v.principle.name for v in verdicts if SIGN.get(v.choice) == sign})
    return Consensus(sign=sign, principles=names)


def contradicts_consensus(*, judgment: Judgment) -> Consensus | None:
    """The consensus this person's strict verdict goes against, if any."""
    if judgment.choice not in SIGN:
        return None
    consensus = principle_consensus(comparison_id=judgment.comparison_id)
    if consensus is None or SIGN[judgment.choice] * consensus.sign > 0:
        return None
    return consensus


def ai_verdicts(*, comparison_id: int) -> list[Judgment]:
    """AI judges' verdicts on an item (shown only after the person submitted)."""
    return list(
        Judgment.objects.filter(comparison_id=comparison_id, source=Source.AI).select_related("judge").order_by("judge")
    )


def judgment_confirm(
    *, judgment_id: int, user: AbstractBaseUser, keep: bool, relied_principle_id: int | None = None
) -> Judgment:
    """Record the person's second look: keep their verdict or flip it, and the principle they relied on.

    Only their own strict human verdict, once (a second call returns it unchanged).
    """
    with transaction.atomic():
        judgment = (
            Judgment.objects.select_for_update(of=("self",))
            .select_related("comparison")
            .filter(pk=judgment_id, annotator=user, source=Source.HUMAN)
            .first()
        )
        if judgment is None:
            raise FeedbackError("No such judgment.")
        if judgment.confirmation.get("answered_at"):
            return judgment
        if judgment.choice not in SIGN:
            raise FeedbackError("Only a preference for one response can be confirmed or changed.")
        if (
            relied_principle_id is not None
            and not Principle.objects.filter(pk=relied_principle_id, project_id=judgment.comparison.project_id).exists()
        ):
            raise FeedbackError("Unknown principle for this project.")
        consensus = principle_consensus(comparison_id=judgment.comparison_id)
        original = judgment.choice
        if not keep:
            judgment.choice = Choice.B if original == Choice.A else Choice.A
        judgment.confirmation = {
            "original_choice": original,
            "kept": keep,
            "consensus": None if consensus is None else {"sign": consensus.sign, "principles": consensus.principles},
            "relied_principle": relied_principle_id,
            "answered_at": timezone.now().isoformat(),
        }
        judgment.save(update_fields=["choice", "confirmation"])
        return judgment
