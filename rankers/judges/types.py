"""Plain data of the judges: what goes in (pairs, sets, scoring items) and what comes out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rankers.types import Message

# The three one-token answers of a pairwise judge, in this order everywhere.
LABELS: tuple[str, str, str] = ("A", "B", "NA")


class JudgeError(Exception):
    """A judge could not produce a verdict (bad configuration, unreadable server answer)."""


@dataclass(frozen=True)
class PairItem:
    """One pair to judge: two responses to the same conversation, optionally under one principle.

    `response_a` is the comparison's candidate A; the judge shows it first in one order and second
    in the other, and reports everything back in a/b terms.
    """

    key: Any
    messages: list[Message]
    response_a: str
    response_b: str
    principle: str | None = None


@dataclass(frozen=True)
class LabelProbs:
    """P(first shown wins), P(second shown wins), P(NA) for one order, as read from the judge.

    `mass` is the share of the whole next-token distribution that fell on the three label tokens
    (1.0 means the judge put all its probability on a valid answer).
    """

    first: float
    second: float
    na: float
    mass: float = 1.0

    def verdict(self) -> str:
        """The order's discrete verdict in position terms: "first", "second" or "na".

        sign(P_first - P_second); NA when they are equal or P(NA) is the largest.
        """
        if self.na >= max(self.first, self.second) or self.first == self.second:
            return "na"
        return "first" if self.first > self.second else "second"


@dataclass
class PairVerdict:
    """Both orders of one pair, un-swapped into a/b terms, and the combined verdict.

    choice: "a", "b", "na" (both orders say neither) or "inconsistent" (the orders disagree: never a
    label). p_a / p_b / p_na are the position-debiased probabilities (mean over the two orders of the
    probability that a, resp. b, wins). confidence is the debiased probability of the chosen side
    (for an inconsistent verdict: of the side the debiased probabilities favour).
    """

    key: Any
    ab: LabelProbs  # a shown first
    ba: LabelProbs  # b shown first (raw: `first` is b)
    choice: str
    order_choices: tuple[str, str]
    p_a: float
    p_b: float
    p_na: float
    confidence: float
    principle: str | None = None

    @property
    def consistent(self) -> bool:
        return self.choice != "inconsistent"

    def probabilities_json(self) -> dict[str, Any]:
        """The raw per-order probabilities and the debiased ones, ready for a JSON field."""
        return {
            "ab": asdict(self.ab),
            "ba": asdict(self.ba),
            "order_choices": list(self.order_choices),
            "debiased": {"a": self.p_a, "b": self.p_b, "na": self.p_na},
        }


def _unswap(verdict: str, first_is: str, second_is: str) -> str:
    return {"first": first_is, "second": second_is, "na": "na"}[verdict]


def combine_orders(key: Any, ab: LabelProbs, ba: LabelProbs, principle: str | None = None) -> PairVerdict:
    """Combine the two orders of one pair (methods.md section 2).

    Both orders agree: that is the verdict. They disagree: "inconsistent". A judge that always
    answers "A" picks a in the first order and b in the second, so it is inconsistent on every pair.
    """
    c_ab = _unswap(ab.verdict(), "a", "b")
    c_ba = _unswap(ba.verdict(), "b", "a")
    choice = c_ab if c_ab == c_ba else "inconsistent"
    p_a = (ab.first + ba.second) / 2
    p_b = (ab.second + ba.first) / 2
    p_na = (ab.na + ba.na) / 2
    confidence = {"a": p_a, "b": p_b, "na": p_na}.get(choice, max(p_a, p_b))
    return PairVerdict(
        key=key,
        ab=ab,
        ba=ba,
        choice=choice,
        order_choices=(c_ab, c_ba),
        p_a=p_a,
        p_b=p_b,
        p_na=p_na,
        confidence=confidence,
        principle=principle,
    )


@dataclass(frozen=True)
class ScoreItem:
    """A response to score under a model: log p(response | conversation)."""

    key: Any
    messages: list[Message]
    response: str


@dataclass(frozen=True)
class LikelihoodScore:
    key: Any
    sum_logprob: float
    mean_logprob: float
    n_tokens: int


@dataclass(frozen=True)
class Demonstration:
    """An in-context example for the listwise ranker: a conversation, its candidates, the ranking.

    `ranking` lists candidate indices (0-based, into `candidates`) from best to worst.
    """

    messages: list[Message]
    candidates: list[str]
    ranking: list[int]
    key: Any = None


@dataclass(frozen=True)
class SetItem:
    """A candidate set to rank listwise."""

    key: Any
    messages: list[Message]
    candidates: list[str]


@dataclass
class ListwiseResult:
    """A listwise ranking (0-based candidate indices, best first), or the error that prevented it."""

    key: Any
    ranking: list[int] | None
    raw_output: str = ""
    error: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
