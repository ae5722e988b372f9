"""Candidate generation: providers (where text comes from) and strategies (how a set is built)."""

from rankers.generation.errors import StrategyError
from rankers.generation.parsing import NCParseError, parse_nc_output
from rankers.generation.providers import Provider, TransformersProvider, provider_for
from rankers.generation.strategies import (
    STRATEGIES,
    CandidateDraft,
    SetJob,
    SetResult,
    SourceCandidate,
    StrategyOptions,
    ValuePerspective,
    run_strategy,
)

__all__ = [
    "STRATEGIES",
    "CandidateDraft",
    "NCParseError",
    "Provider",
    "SetJob",
    "SetResult",
    "SourceCandidate",
    "StrategyError",
    "StrategyOptions",
    "TransformersProvider",
    "ValuePerspective",
    "parse_nc_output",
    "provider_for",
    "run_strategy",
]
