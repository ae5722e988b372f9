"""Generation providers: local transformers models (GGUF files or Hugging Face directories) and
OpenAI-compatible chat-completions endpoints (see openai_compat.py)."""

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
    """Batched generation with a local causal LM, left-padded, on CUDA when present (bf16 there).

    Requests are sorted by token length and cut into batches of `batch_size`; within a batch the
    prompt is prefilled in buckets of similar length (see sampling.bucketed_prefill) and top-p
    sampling avoids a full vocabulary sort per step (sampling.NucleusSampler).
    """

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
        """The prompt text the model sees: the whole conversation through the chat template."""
        tokenizer = self.loaded.tokenizer
        return tokenizer.apply_chat_template(request.conversation(), tokenize=False, add_generation_prompt=True)

    def generate(
        self, requests: list[GenerationRequest], *, params: SamplingParams, batch_size: int = 32
    ) -> list[Generation]:
        import torch

        if not requests:
            return []
        loaded = self.loaded
        tokenizer = loaded.tokenizer
        encoded = [tokenizer(self.render(r), add_special_tokens=False)["input_ids"] for r in requests]
        # Sort by length so that each batch pads as little as possible; restore order at the end.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[Generation | None] = [None] * len(encoded)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        for start in range(0, len(order), max(1, batch_size)):
            idx = order[start : start + batch_size]
            for i, gen in zip(idx, self._generate_batch([encoded[i] for i in idx], params), strict=True):
                results[i] = gen
        return [r for r in results if r is not None]

    def _generate_batch(self, rows: list[list[int]], params: SamplingParams) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList

        from rankers.generation.sampling import NucleusSampler, bucketed_prefill

        loaded = self.loaded
        tokenizer, model = loaded.tokenizer, loaded.model
        pad_id = tokenizer.pad_token_id
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=loaded.device)
        attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=loaded.device)
        kwargs: dict = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": pad_id,
            "attention_mask": attention_mask,
        }
        if params.min_new_tokens:
            kwargs["min_new_tokens"] = min(params.min_new_tokens, params.max_new_tokens)
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        elif params.top_p < 1:
            # The processor draws the token itself (see NucleusSampler); greedy decoding keeps it.
            sampler = NucleusSampler(temperature=params.temperature, top_p=params.top_p)
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=1.0, top_k=0)
        with torch.inference_mode():
            if len(rows) > 1:
                cache = bucketed_prefill(model, input_ids, attention_mask, [len(r) for r in rows])
                if cache is not None:
                    kwargs["past_key_values"] = cache
            out = model.generate(input_ids=input_ids, **kwargs)
        new_tokens = out[:, width:]
        eos_ids = _eos_ids(tokenizer, model)
        generations = []
        for row in range(len(rows)):
            toks = new_tokens[row].tolist()
            n, finish = len(toks), "length"
            for pos, tok in enumerate(toks):
                if tok in eos_ids:
                    n, finish = pos, "stop"
                    break
            text = tokenizer.decode(toks[:n], skip_special_tokens=True).strip()
            generations.append(Generation(text=text, n_tokens=n, finish_reason=finish))
        return generations


def _eos_ids(tokenizer, model) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(value)
    return ids


def provider_for(ref: ModelRef, *, threads: int | None = None) -> Provider:
    """The provider for a model: local (GGUF / transformers directory) or an OpenAI-compatible server."""
    if ref.kind in ("gguf", "transformers"):
        return TransformersProvider(ref, threads=threads)
    if ref.kind == "openai":
        from rankers.generation.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider(ref)
    raise ValueError(f"no generation provider for model kind {ref.kind!r}")
