"""Judges behind an OpenAI-compatible server: the logit judge read from top log-probabilities, and a
chat backend for the listwise ranker."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

from rankers.judges.http import ChatClient
from rankers.judges.pairwise import PairwiseJudge
from rankers.judges.prompts import PairwisePrompt
from rankers.judges.types import LABELS, JudgeError, LabelProbs
from rankers.types import Message


def _label_of(token: str) -> str | None:
    """Which label a returned token starts: "A", "B", "NA" (also " A", "a", "N" as NA's first piece)."""
    text = token.strip().upper()
    if text in LABELS:
        return text
    if text == "N":
        return "NA"
    return None


def label_probs_from_top_logprobs(top: list[dict]) -> LabelProbs:
    """P(first), P(second), P(NA) renormalised over the label tokens among the top log-probabilities.

    Variants of one label (" A" and "A") are summed. A label missing from the top list counts as
    probability 0; if none is present the order is a tie (1/3 each, mass 0), which reads as NA.
    """
    found = {label: 0.0 for label in LABELS}
    for entry in top:
        label = _label_of(str(entry.get("token", "")))
        if label is not None:
            found[label] += math.exp(float(entry["logprob"]))
    mass = sum(found.values())
    if mass <= 0:
        return LabelProbs(first=1 / 3, second=1 / 3, na=1 / 3, mass=0.0)
    return LabelProbs(first=found["A"] / mass, second=found["B"] / mass, na=found["NA"] / mass, mass=min(mass, 1.0))


class LogprobJudge(PairwiseJudge):
    """One chat completion per (pair, order) with max_tokens 1 and top log-probabilities.

    Requests run `concurrency` at a time; the server does the batching.
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        prompt: PairwisePrompt | None = None,
        top_logprobs: int = 20,
        concurrency: int = 4,
    ) -> None:
        super().__init__(prompt)
        self.client = client
        self.top_logprobs = top_logprobs
        self.concurrency = max(1, concurrency)

    def _one(self, conversation: list[Message]) -> LabelProbs:
        data = self.client.complete(
            conversation, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=self.top_logprobs
        )
        try:
            content = data["choices"][0]["logprobs"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        if not content:
            raise JudgeError(
                "the server returned no log-probabilities: it must support logprobs/top_logprobs "
                f"for a logit judge (answer: {str(data)[:200]})"
            )
        return label_probs_from_top_logprobs(content[0].get("top_logprobs") or [])

    def order_probs(self, conversations: list[list[Message]]) -> list[LabelProbs]:
        if self.concurrency == 1 or len(conversations) == 1:
            return [self._one(c) for c in conversations]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, conversations))


class HttpChat:
    """A chat backend (conversations in, assistant texts out) on an OpenAI-compatible server."""

    def __init__(
        self, client: ChatClient, *, max_tokens: int = 256, temperature: float = 0.0, concurrency: int = 4
    ) -> None:
        self.client = client
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.concurrency = max(1, concurrency)

    def chat(self, messages: list[Message]) -> str:
        return self.client.chat(messages, max_tokens=self.max_tokens, temperature=self.temperature)

    def chat_many(self, conversations: list[list[Message]]) -> list[str | Exception]:
        """One answer per conversation; a failed call yields its exception instead of a text."""

        def one(conv: list[Message]) -> str | Exception:
            try:
                return self.chat(conv)
            except JudgeError as exc:
                return exc

        if self.concurrency == 1 or len(conversations) <= 1:
            return [one(c) for c in conversations]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(one, conversations))
