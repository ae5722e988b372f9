"""AI judges: pairwise logit judges (local or OpenAI-compatible), white-box likelihood scoring, SPA
implicit rewards and black-box listwise ranking. Plain data in and out; no Django here.

The factories below build a judge from a ModelRef plus the judge's params and keep it for the life
of the process (a Celery worker), so that the model loads once per worker.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from rankers.judges.http import ChatClient, chat_client
from rankers.judges.likelihood import LikelihoodScorer, rank_by_score
from rankers.judges.listwise import ListwiseRanker, LocalChat, RankingParseError, parse_ranking
from rankers.judges.pairwise import GenerativeJudge, LogitJudge, PairwiseJudge, judge_kwargs, parse_verdict
from rankers.judges.prompts import LISTWISE_INSTRUCTION, LISTWISE_SYSTEM, PairwisePrompt
from rankers.judges.remote import HttpChat, LogprobJudge, label_probs_from_top_logprobs
from rankers.judges.reward import flag_bottom, implicit_reward, sigmoid, spa_label
from rankers.judges.types import (
    LABELS,
    Demonstration,
    JudgeError,
    LabelProbs,
    LikelihoodScore,
    ListwiseResult,
    PairItem,
    PairVerdict,
    ScoreItem,
    SetItem,
    combine_orders,
)
from rankers.types import ModelRef

__all__ = [
    "LABELS",
    "ChatClient",
    "Demonstration",
    "GenerativeJudge",
    "HttpChat",
    "JudgeError",
    "LabelProbs",
    "LikelihoodScore",
    "LikelihoodScorer",
    "ListwiseRanker",
    "ListwiseResult",
    "LocalChat",
    "LogitJudge",
    "LogprobJudge",
    "PairItem",
    "PairVerdict",
    "PairwiseJudge",
    "PairwisePrompt",
    "RankingParseError",
    "ScoreItem",
    "SetItem",
    "chat_client",
    "combine_orders",
    "flag_bottom",
    "implicit_reward",
    "label_probs_from_top_logprobs",
    "likelihood_scorer_for",
    "listwise_ranker_for",
    "pairwise_judge_for",
    "parse_ranking",
    "parse_verdict",
    "rank_by_score",
    "sigmoid",
    "spa_label",
]

_cache: dict[tuple, Any] = {}
_lock = threading.Lock()


def _cached(kind: str, ref: ModelRef, params: dict, threads: int | None, build):
    key = (kind, ref, json.dumps(params, sort_keys=True, default=str), threads)
    with _lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]


def _client(ref: ModelRef, params: dict) -> ChatClient:
    return chat_client(
        ref.endpoint,
        ref.model,
        api_key_env=ref.api_key_env,
        timeout_s=float(params.get("timeout_s", 60)),
        max_retries=int(params.get("max_retries", 3)),
        backoff_s=float(params.get("backoff_s", 0.5)),
    )


def pairwise_judge_for(ref: ModelRef, *, params: dict | None = None, threads: int | None = None) -> PairwiseJudge:
    """The logit judge for a model: local weights (gguf / transformers) or an OpenAI-compatible server."""
    params = params or {}

    def build() -> PairwiseJudge:
        prompt = PairwisePrompt.from_params(params)
        if ref.kind == "openai":
            return LogprobJudge(
                _client(ref, params),
                prompt=prompt,
                top_logprobs=int(params.get("top_logprobs", 20)),
                concurrency=int(params.get("concurrency", 4)),
            )
        if ref.kind in ("gguf", "transformers"):
            return LogitJudge(ref, threads=threads, prompt=prompt, **judge_kwargs(params))
        raise JudgeError(f"no pairwise judge for model kind {ref.kind!r}")

    return _cached("pairwise", ref, params, threads, build)


def likelihood_scorer_for(ref: ModelRef, *, params: dict | None = None, threads: int | None = None) -> LikelihoodScorer:
    """White-box scoring needs the weights: local models only."""
    params = params or {}
    if ref.kind not in ("gguf", "transformers"):
        raise JudgeError(
            "white-box likelihood scoring needs the model's weights (a local GGUF file or model directory); "
            f"{ref.kind!r} judges cannot score"
        )
    return _cached(
        "likelihood",
        ref,
        params,
        threads,
        lambda: LikelihoodScorer(
            ref,
            threads=threads,
            include_end=bool(params.get("include_end", True)),
            batch_size=params.get("batch_size") and int(params["batch_size"]),
        ),
    )


def listwise_ranker_for(ref: ModelRef, *, params: dict | None = None, threads: int | None = None) -> ListwiseRanker:
    """The listwise ranker: an OpenAI-compatible chat model (the black box), or a local one (greedy)."""
    params = params or {}

    def build() -> ListwiseRanker:
        if ref.kind == "openai":
            backend = HttpChat(
                _client(ref, params),
                max_tokens=int(params.get("max_tokens", 64)),
                temperature=float(params.get("temperature", 0.0)),
                concurrency=int(params.get("concurrency", 4)),
            )
        elif ref.kind in ("gguf", "transformers"):
            backend = LocalChat(ref, threads=threads, max_new_tokens=int(params.get("max_tokens", 48)))
        else:
            raise JudgeError(f"no listwise ranker for model kind {ref.kind!r}")
        return ListwiseRanker(
            backend,
            instruction=params.get("listwise_instruction", LISTWISE_INSTRUCTION),
            system=params.get("listwise_system", LISTWISE_SYSTEM),
        )

    return _cached("listwise", ref, params, threads, build)


def clear_cache() -> None:
    with _lock:
        _cache.clear()
