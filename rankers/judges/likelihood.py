"""White-box scoring: log-likelihood of a response given the conversation under a named model.

Used twice: CycleAlign's white-box ranker orders a set by the mean token log-probability (length
normalised), and SPA's implicit reward takes summed log-probabilities under the policy and the
reference model (see reward.py). Scores are per candidate per model, so labels can be recomputed.
"""

from __future__ import annotations

from rankers.judges.local import continuation_logprobs, encode, end_of_turn_id, render_chat
from rankers.judges.types import LikelihoodScore, ScoreItem
from rankers.loading import LoadedModel, load_model
from rankers.types import ModelRef


class LikelihoodScorer:
    """log p(response | conversation) under the model's chat template.

    The response's tokens are the template's assistant turn: the response text, then (with
    `include_end`, the default) the end-of-turn token the template writes after it, so that the
    score is the probability of exactly this answer, finished. sum_logprob is the total, mean_logprob
    the total divided by the number of scored tokens.
    """

    def __init__(
        self, ref: ModelRef, *, threads: int | None = None, include_end: bool = True, batch_size: int | None = None
    ) -> None:
        self.ref = ref
        self.threads = threads
        self.include_end = include_end
        self._batch_size = batch_size
        self._loaded: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.ref, threads=self.threads)
        return self._loaded

    def token_ids(self, item: ScoreItem) -> tuple[list[int], list[int]]:
        """(prompt ids, response ids) exactly as scored."""
        tokenizer = self.loaded.tokenizer
        prompt = encode(tokenizer, render_chat(tokenizer, item.messages))
        response = encode(tokenizer, item.response) if item.response else []
        if self.include_end:
            end = end_of_turn_id(tokenizer)
            if end is not None:
                response = [*response, end]
        return prompt, response

    def score(self, items: list[ScoreItem]) -> list[LikelihoodScore]:
        encoded = [self.token_ids(item) for item in items]
        batch = self._batch_size or (32 if self.loaded.device.startswith("cuda") else 8)
        logprobs = continuation_logprobs(self.loaded, encoded, max_rows=batch)
        scores = []
        for item, lps in zip(items, logprobs, strict=True):
            total = float(sum(lps))
            scores.append(
                LikelihoodScore(
                    key=item.key, sum_logprob=total, mean_logprob=total / len(lps) if lps else 0.0, n_tokens=len(lps)
                )
            )
        return scores


def rank_by_score(scores: dict, *, tie_order: list | None = None) -> list:
    """Keys ordered best first by score; ties keep `tie_order` (default: the dict's order)."""
    order = tie_order or list(scores)
    position = {k: i for i, k in enumerate(order)}
    return sorted(scores, key=lambda k: (-scores[k], position.get(k, len(order))))
