"""Black-box listwise ranking (CycleAlign, methods.md section 3): a chat model ranks a whole candidate
set from an instruction plus k in-context demonstrations, and its answer is parsed robustly."""

from __future__ import annotations

import re
from typing import Protocol

from rankers.judges.local import encode, greedy_generate, render_chat
from rankers.judges.prompts import LISTWISE_INSTRUCTION, LISTWISE_SYSTEM, listwise_user_message, ranking_answer
from rankers.judges.types import Demonstration, ListwiseResult, SetItem
from rankers.loading import LoadedModel, load_model
from rankers.types import Message, ModelRef


class RankingParseError(ValueError):
    """The answer does not contain a ranking of the candidates."""


_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_NAMED = re.compile(r"\b(?:response|candidate|answer)\s*#?\s*(\d+)", re.IGNORECASE)
_BARE = re.compile(r"(?<![\d.])(\d+)(?![\d.])")
_LETTERS = re.compile(r"^\s*\[?([A-Z])\]?(?:\s*(?:>|,|>>)\s*\[?([A-Z])\]?)+\s*$")


def _ids(text: str, n: int) -> list[int]:
    """Candidate numbers (1-based) in order of first appearance, by the most specific pattern found."""
    for pattern in (_BRACKETED, _NAMED, _BARE):
        found = [int(x) for x in pattern.findall(text)]
        found = [x for x in found if 1 <= x <= n]
        if found:
            seen: list[int] = []
            for x in found:
                if x not in seen:
                    seen.append(x)
            return seen
    if _LETTERS.match(text.strip()):
        letters = re.findall(r"[A-Z]", text.strip())
        seen = []
        for letter in letters:
            x = ord(letter) - ord("A") + 1
            if 1 <= x <= n and x not in seen:
                seen.append(x)
        return seen
    return []


def parse_ranking(text: str, n: int) -> list[int]:
    """A ranking of n candidates (0-based indices, best first) from a model's answer.

    Accepts "[2] > [1] > [3]", "2 > 1 > 3", "Response 2, Response 1, ...", numbered lists of
    bracketed ids, "B > A > C", and an explanation before the ranking (the last line that names at
    least n - 1 candidates wins; otherwise the whole text in order of first mention). Repeats are
    ignored; a single missing candidate is put last (its place is implied). Raises
    RankingParseError when fewer than n - 1 distinct candidates are named.
    """
    if n < 1:
        raise RankingParseError("nothing to rank")
    if n == 1:
        return [0]
    ids: list[int] = []
    for line in reversed([line for line in text.splitlines() if line.strip()]):
        found = _ids(line, n)
        if len(found) >= n - 1:
            ids = found
            break
    else:
        ids = _ids(text, n)
    if len(ids) < n - 1:
        raise RankingParseError(f"found {len(ids)} of {n} candidates in the answer: {text[:200]!r}")
    missing = [x for x in range(1, n + 1) if x not in ids]
    return [x - 1 for x in ids + missing]


class ChatBackend(Protocol):
    def chat_many(self, conversations: list[list[Message]]) -> list[str | Exception]: ...


class LocalChat:
    """A chat backend on a local model (greedy), so listwise ranking also works without a server."""

    def __init__(self, ref: ModelRef, *, threads: int | None = None, max_new_tokens: int = 48, batch_size: int = 8):
        self.ref = ref
        self.threads = threads
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._loaded: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.ref, threads=self.threads)
        return self._loaded

    def chat_many(self, conversations: list[list[Message]]) -> list[str | Exception]:
        tokenizer = self.loaded.tokenizer
        out: list[str | Exception] = []
        for start in range(0, len(conversations), self.batch_size):
            prompts = [
                encode(tokenizer, render_chat(tokenizer, c)) for c in conversations[start : start + self.batch_size]
            ]
            out.extend(text for text, _ in greedy_generate(self.loaded, prompts, max_new_tokens=self.max_new_tokens))
        return out


class ListwiseRanker:
    def __init__(
        self, backend: ChatBackend, *, instruction: str = LISTWISE_INSTRUCTION, system: str = LISTWISE_SYSTEM
    ) -> None:
        self.backend = backend
        self.instruction = instruction
        self.system = system

    def messages(self, item: SetItem, demonstrations: list[Demonstration]) -> list[Message]:
        """System turn, then each demonstration as a user turn answered with its ranking, then the set."""
        conv: list[Message] = [{"role": "system", "content": self.system}]
        for demo in demonstrations:
            conv.append(
                {"role": "user", "content": listwise_user_message(demo.messages, demo.candidates, self.instruction)}
            )
            conv.append({"role": "assistant", "content": ranking_answer(demo.ranking)})
        conv.append(
            {"role": "user", "content": listwise_user_message(item.messages, item.candidates, self.instruction)}
        )
        return conv

    def rank(self, jobs: list[tuple[SetItem, list[Demonstration]]]) -> list[ListwiseResult]:
        """Rank each set with its own demonstrations; failures come back as results with an error."""
        answers = self.backend.chat_many([self.messages(item, demos) for item, demos in jobs])
        results = []
        for (item, demos), answer in zip(jobs, answers, strict=True):
            meta = {"demonstrations": [d.key for d in demos]}
            if isinstance(answer, Exception):
                # The call itself failed (server down, refused): not the ranker's answer.
                meta["call_failed"] = True
                results.append(ListwiseResult(key=item.key, ranking=None, error=str(answer), meta=meta))
                continue
            try:
                ranking = parse_ranking(answer, len(item.candidates))
            except RankingParseError as exc:
                results.append(ListwiseResult(key=item.key, ranking=None, raw_output=answer, error=str(exc), meta=meta))
                continue
            results.append(ListwiseResult(key=item.key, ranking=ranking, raw_output=answer, meta=meta))
        return results
