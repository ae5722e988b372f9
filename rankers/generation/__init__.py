"""Candidate generation: providers (where text comes from) and strategies (how a set is built)."""

from rankers.generation.providers import Provider, TransformersProvider, provider_for
from rankers.generation.strategies import CandidateDraft, SetJob, SetResult, StrategyError, run_strategy

__all__ = [
    "CandidateDraft",
    "Provider",
    "SetJob",
    "SetResult",
    "StrategyError",
    "TransformersProvider",
    "provider_for",
    "run_strategy",
]
