"""Strategies that turn one prompt into a candidate set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rankers.generation.providers import Provider
from rankers.types import GenerationRequest, Message, SamplingParams


class StrategyError(Exception):
    """The set cannot be built (for example the model output could not be parsed).

    `raw_output` keeps what the model wrote so that a person can inspect it.
    """

    def __init__(self, message: str, raw_output: str = "") -> None:
        super().__init__(message)
        self.raw_output = raw_output


@dataclass
class CandidateDraft:
    text: str
    n_tokens: int
    finish_reason: str = "stop"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SetResult:
    candidates: list[CandidateDraft]
    raw_output: str = ""


@dataclass
class SetJob:
    """One prompt's set to build."""

    key: Any
    messages: list[Message]
    n: int


def _iid(provider: Provider, jobs: list[SetJob], params: SamplingParams, batch_size: int) -> dict[Any, SetResult]:
    requests: list[GenerationRequest] = []
    owners: list[Any] = []
    for job in jobs:
        for _ in range(job.n):
            requests.append(GenerationRequest(messages=job.messages))
            owners.append(job.key)
    outputs = provider.generate(requests, params=params, batch_size=batch_size)
    results: dict[Any, SetResult] = {job.key: SetResult(candidates=[]) for job in jobs}
    for owner, gen in zip(owners, outputs, strict=True):
        results[owner].candidates.append(
            CandidateDraft(text=gen.text, n_tokens=gen.n_tokens, finish_reason=gen.finish_reason)
        )
    return results


STRATEGIES = {"iid": _iid}


def run_strategy(
    strategy: str,
    provider: Provider,
    jobs: list[SetJob],
    *,
    params: SamplingParams,
    batch_size: int = 32,
) -> dict[Any, SetResult | StrategyError]:
    """Build candidate sets for several prompts at once (batched across prompts).

    Returns, per job key, either the set or the StrategyError that explains why it failed.
    """
    try:
        fn = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}") from None
    return fn(provider, jobs, params, batch_size)
