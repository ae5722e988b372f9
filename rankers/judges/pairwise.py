"""Pairwise A/B/NA judges: both orders of every pair, un-swapped and combined (methods.md section 2).

`PairwiseJudge` owns the order logic; subclasses only say how to read P(A), P(B), P(NA) for a list
of judge conversations: from a local model's next-token logits (`LogitJudge`), from an
OpenAI-compatible server's top log-probabilities (`rankers.judges.openai.LogprobJudge`), or, as a
baseline, by letting the model write its verdict and parsing it (`GenerativeJudge`).
"""

from __future__ import annotations

import re
from typing import Any

from rankers.judges.local import (
    MIN_SHARED_TOKENS,
    encode,
    greedy_generate,
    label_token_ids,
    last_token_logits,
    render_chat,
)
from rankers.judges.prompts import PairwisePrompt
from rankers.judges.types import LABELS, LabelProbs, PairItem, PairVerdict, combine_orders
from rankers.loading import LoadedModel, load_model
from rankers.types import Message, ModelRef


class PairwiseJudge:
    """Judges every pair in both orders and combines them (see `combine_orders`)."""

    def __init__(self, prompt: PairwisePrompt | None = None) -> None:
        self.prompt = prompt or PairwisePrompt()

    def conversations(self, items: list[PairItem]) -> list[list[Message]]:
        """Two judge conversations per item: a shown first, then b shown first."""
        convs = []
        for item in items:
            convs.append(self.prompt.messages(item.messages, item.response_a, item.response_b, item.principle))
            convs.append(self.prompt.messages(item.messages, item.response_b, item.response_a, item.principle))
        return convs

    def order_probs(self, conversations: list[list[Message]]) -> list[LabelProbs]:
        """P(first), P(second), P(NA) for each judge conversation, in order."""
        raise NotImplementedError

    def judge(self, items: list[PairItem]) -> list[PairVerdict]:
        """Verdicts for `items`, in order. Both orders of all items go to `order_probs` together."""
        if not items:
            return []
        probs = self.order_probs(self.conversations(items))
        return [
            combine_orders(item.key, probs[2 * k], probs[2 * k + 1], item.principle) for k, item in enumerate(items)
        ]


def label_probs_from_logits(logits, label_ids: list[int]) -> list[LabelProbs]:
    """Softmax over the label tokens' logits; `mass` is their share of the full distribution."""
    label_logits = logits[:, label_ids].double()
    probs = label_logits.softmax(-1)
    mass = (label_logits.logsumexp(-1) - logits.double().logsumexp(-1)).exp()
    return [
        LabelProbs(first=float(p[0]), second=float(p[1]), na=float(p[2]), mass=float(m))
        for p, m in zip(probs, mass, strict=True)
    ]


class LogitJudge(PairwiseJudge):
    """A local causal LM read in one forward pass per (pair, order): no sampling, no generation.

    Sequences are batched `batch_size` at a time (and at most `max_batch_tokens` tokens), grouped so
    that sequences sharing a prefix land in the same batch, groups ordered by length to limit
    padding. With `share_prefix`, shared prefixes are computed once (see local.last_token_logits).
    """

    def __init__(
        self,
        ref: ModelRef,
        *,
        threads: int | None = None,
        prompt: PairwisePrompt | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int = 32768,
        share_prefix: bool = True,
        min_shared: int = MIN_SHARED_TOKENS,
    ) -> None:
        super().__init__(prompt)
        self.ref = ref
        self.threads = threads
        self._batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.share_prefix = share_prefix
        self.min_shared = min_shared
        self._loaded: LoadedModel | None = None
        self._label_ids: list[int] | None = None

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.ref, threads=self.threads)
        return self._loaded

    @property
    def batch_size(self) -> int:
        if self._batch_size:
            return self._batch_size
        return 64 if self.loaded.device.startswith("cuda") else 16

    @property
    def label_ids(self) -> list[int]:
        if self._label_ids is None:
            self._label_ids = label_token_ids(self.loaded.tokenizer, LABELS)
        return self._label_ids

    def encode_conversations(self, conversations: list[list[Message]]) -> list[list[int]]:
        tokenizer = self.loaded.tokenizer
        return [encode(tokenizer, render_chat(tokenizer, conv)) for conv in conversations]

    def batches(self, seqs: list[list[int]]) -> list[list[int]]:
        """Indices of `seqs` split into batches: prefix-sharing clusters, shortest clusters first."""
        clusters: list[list[int]] = []
        if self.share_prefix:
            # Lexicographic order puts sequences with common prefixes next to each other.
            for i in sorted(range(len(seqs)), key=lambda i: seqs[i]):
                if clusters and _shared(seqs[clusters[-1][-1]], seqs[i]) >= self.min_shared:
                    clusters[-1].append(i)
                else:
                    clusters.append([i])
        else:
            clusters = [[i] for i in range(len(seqs))]
        clusters.sort(key=lambda c: (max(len(seqs[i]) for i in c), c[0]))
        batches: list[list[int]] = []
        current: list[int] = []
        tokens = 0

        def fits(n: int, n_tokens: int) -> bool:
            return len(current) + n <= self.batch_size and tokens + n_tokens <= self.max_batch_tokens

        for cluster in clusters:
            cluster_tokens = sum(len(seqs[i]) for i in cluster)
            # Keep a cluster in one batch when it fits in a fresh one: splitting it loses sharing.
            if current and not fits(len(cluster), cluster_tokens) and len(cluster) <= self.batch_size:
                batches.append(current)
                current, tokens = [], 0
            for i in cluster:
                if current and not fits(1, len(seqs[i])):
                    batches.append(current)
                    current, tokens = [], 0
                current.append(i)
                tokens += len(seqs[i])
        if current:
            batches.append(current)
        return batches

    def order_probs(self, conversations: list[list[Message]]) -> list[LabelProbs]:
        seqs = self.encode_conversations(conversations)
        results: list[LabelProbs | None] = [None] * len(seqs)
        for batch in self.batches(seqs):
            logits = last_token_logits(
                self.loaded, [seqs[i] for i in batch], share_prefix=self.share_prefix, min_shared=self.min_shared
            )
            for i, probs in zip(batch, label_probs_from_logits(logits, self.label_ids), strict=True):
                results[i] = probs
        return [r for r in results if r is not None]


def _shared(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


_VERDICT = re.compile(r"\[\[\s*(A|B|NA)\s*\]\]", re.IGNORECASE)
_LOOSE = re.compile(r"(?:verdict|answer|better)\W{0,3}(?:is\W{0,3})?(?:response\s+)?\b(A|B|NA)\b", re.IGNORECASE)


def parse_verdict(text: str) -> str | None:
    """ "A", "B" or "NA" from a written verdict ([[A]] preferred, then "Verdict: A"); None if absent."""
    found = _VERDICT.findall(text) or _LOOSE.findall(text)
    return found[-1].upper() if found else None


class GenerativeJudge(PairwiseJudge):
    """The generate-then-parse baseline: the judge writes a short rationale and a [[A]]/[[B]]/[[NA]]
    verdict (greedy, up to `max_new_tokens`), as chat judges such as MT-Bench's do, one pair at a
    time: both orders in one generate call (`orders_per_call=2`), or one call per order as MT-Bench
    does (`orders_per_call=1`). An unparseable answer counts as NA. Kept for comparison: the logit
    judge gives the same kind of verdict from a single forward pass, with probabilities.
    """

    def __init__(
        self,
        ref: ModelRef,
        *,
        threads: int | None = None,
        prompt: PairwisePrompt | None = None,
        max_new_tokens: int = 64,
        orders_per_call: int = 2,
    ) -> None:
        super().__init__(prompt or PairwisePrompt.from_params({}, generative=True))
        self.ref = ref
        self.threads = threads
        self.max_new_tokens = max_new_tokens
        self.orders_per_call = orders_per_call
        self.outputs: list[str] = []
        self.new_tokens = 0
        self._loaded: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.ref, threads=self.threads)
        return self._loaded

    def order_probs(self, conversations: list[list[Message]]) -> list[LabelProbs]:
        tokenizer = self.loaded.tokenizer
        results: list[LabelProbs] = []
        step = self.orders_per_call
        for start in range(0, len(conversations), step):
            prompts = [encode(tokenizer, render_chat(tokenizer, c)) for c in conversations[start : start + step]]
            for text, n_tokens in greedy_generate(self.loaded, prompts, max_new_tokens=self.max_new_tokens):
                self.outputs.append(text)
                self.new_tokens += n_tokens
                verdict = parse_verdict(text)
                results.append(
                    LabelProbs(
                        first=float(verdict == "A"),
                        second=float(verdict == "B"),
                        na=float(verdict in ("NA", None)),
                        mass=float(verdict is not None),
                    )
                )
        return results


def judge_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """LogitJudge options from a judge's params (unknown keys are ignored)."""
    kwargs: dict[str, Any] = {}
    if params.get("batch_size"):
        kwargs["batch_size"] = int(params["batch_size"])
    if params.get("max_batch_tokens"):
        kwargs["max_batch_tokens"] = int(params["max_batch_tokens"])
    if "share_prefix" in params:
        kwargs["share_prefix"] = bool(params["share_prefix"])
    return kwargs
