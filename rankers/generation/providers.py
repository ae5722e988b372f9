"""Generation providers: local transformers models (GGUF or HF directories)."""

from __future__ import annotations

from typing import Protocol

from rankers.loading import LoadedModel, load_model
from rankers.types import Generation, GenerationRequest, ModelRef, SamplingParams


class Provider(Protocol):
    ref: ModelRef

    def generate(
        self, requests: list[GenerationRequest], *, params: SamplingParams, batch_size: int = 32
    ) -> list[Generation]:
        """One generation per request, in request order."""
        ...


class TransformersProvider:
    """Batched generation with a local causal LM, left-padded, on CUDA when present."""

    def __init__(self, ref: ModelRef, *, threads: int | None = None) -> None:
        self.ref = ref
        self.threads = threads
        self._loaded: LoadedModel | None = None

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.ref, threads=self.threads)
        return self._loaded

    def render(self, request: GenerationRequest) -> str:
        tokenizer = self.loaded.tokenizer
        return tokenizer.apply_chat_template(request.conversation(), tokenize=False, add_generation_prompt=True)

    def generate(
        self, requests: list[GenerationRequest], *, params: SamplingParams, batch_size: int = 32
    ) -> list[Generation]:
        import torch

        loaded = self.loaded
        tokenizer, model = loaded.tokenizer, loaded.model
        texts = [self.render(r) for r in requests]
        # Sort by length so that each batch pads as little as possible; restore order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Generation | None] = [None] * len(texts)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(
                loaded.device
            )
            kwargs: dict = {
                "max_new_tokens": params.max_new_tokens,
                "pad_token_id": tokenizer.pad_token_id,
            }
            if params.greedy:
                kwargs["do_sample"] = False
            else:
                kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
            with torch.inference_mode():
                out = model.generate(**enc, **kwargs)
            new_tokens = out[:, enc["input_ids"].shape[1] :]
            eos_ids = _eos_ids(tokenizer, model)
            for row, i in enumerate(idx):
                toks = new_tokens[row].tolist()
                n, finish = len(toks), "length"
                for pos, tok in enumerate(toks):
                    if tok in eos_ids:
                        n, finish = pos, "stop"
                        break
                text = tokenizer.decode(toks[:n], skip_special_tokens=True).strip()
                results[i] = Generation(text=text, n_tokens=n, finish_reason=finish)
        return [r for r in results if r is not None]


def _eos_ids(tokenizer, model) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(value)
    return ids


def provider_for(ref: ModelRef, *, threads: int | None = None) -> Provider:
    if ref.kind in ("gguf", "transformers"):
        return TransformersProvider(ref, threads=threads)
    raise ValueError(f"no generation provider for model kind {ref.kind!r}")
