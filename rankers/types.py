"""Plain data passed between Concord's Django side and the model side."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(frozen=True)
class ModelRef:
    """Which model to run and how. `kind` is "gguf", "transformers" or "openai"."""

    kind: str
    model: str
    gguf_file: str = ""
    endpoint: str = ""
    api_key_env: str = ""
    device: str = "auto"
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 128
    seed: int | None = None
    # Forces at least this many new tokens (end-of-sequence suppressed until then): benchmarks use
    # min_new_tokens == max_new_tokens so that every run decodes the same number of steps.
    min_new_tokens: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass(frozen=True)
class GenerationRequest:
    """One conversation to continue once. `system` (if set) is prepended as a system turn."""

    messages: list[Message]
    system: str | None = None

    def conversation(self) -> list[Message]:
        if self.system is None:
            return list(self.messages)
        rest = [m for m in self.messages if m["role"] != "system"]
        return [{"role": "system", "content": self.system}, *rest]


@dataclass
class Generation:
    text: str
    n_tokens: int
    finish_reason: str = "stop"  # "stop" or "length"
    meta: dict[str, Any] = field(default_factory=dict)
