"""Helpers for fast batched decoding with transformers: nucleus sampling and bucketed prefill.

Imported lazily (it imports transformers), only by the process that runs a local model.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from transformers import DynamicCache, LogitsProcessor
from transformers.cache_utils import DynamicLayer


class NucleusSampler(LogitsProcessor):
    """Temperature + top-p sampling as a logits processor, without sorting the vocabulary.

    transformers' TopPLogitsWarper sorts all 49k logits of every row at every step, and its
    sampler draws from the full vocabulary: at batch 32 on one CPU thread the two took about a
    third of the decode time. The nucleus almost always lies within the few hundred most likely
    tokens, so those are taken with topk and the draw happens among them; a row whose nucleus is
    larger than that (a very flat distribution) falls back to the full sort, so the distribution
    sampled from is the same as transformers'. The drawn token is returned as the only finite
    logit: run `generate` with do_sample=False and the argmax picks it.
    """

    def __init__(self, *, temperature: float, top_p: float, candidates: int = 256) -> None:
        if temperature <= 0:
            raise ValueError("temperature must be positive (use greedy decoding otherwise)")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.temperature = temperature
        self.top_p = top_p
        self.candidates = candidates

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = (scores.float() / self.temperature).softmax(dim=-1)
        vocab = probs.shape[-1]
        k = min(self.candidates, vocab)
        top_probs, top_idx = probs.topk(k, dim=-1)
        # A token stays when the mass of the more likely tokens before it is below top_p.
        keep = (top_probs.cumsum(dim=-1) - top_probs) < self.top_p
        keep[:, 0] = True
        weights = torch.where(keep, top_probs, torch.zeros_like(top_probs))
        tokens = top_idx.gather(-1, torch.multinomial(weights, 1))
        spill = keep[:, -1] if k < vocab else torch.zeros_like(keep[:, -1])
        if spill.any():
            rows = spill.nonzero().squeeze(-1)
            tokens[rows] = _sample_full(probs[rows], self.top_p)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, tokens, 0.0)


def _sample_full(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_probs, sorted_idx = torch.sort(probs, descending=True)
    keep = (sorted_probs.cumsum(dim=-1) - sorted_probs) < top_p
    keep[:, 0] = True
    weights = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
    return sorted_idx.gather(-1, torch.multinomial(weights, 1))


def length_buckets(lengths: list[int], *, waste: float = 0.15) -> list[list[int]]:
    """Split rows sorted by ascending length into runs whose padding stays under `waste` of their tokens."""
    buckets: list[list[int]] = []
    current: list[int] = []
    real = 0
    for row, n in enumerate(lengths):
        if current and n * (len(current) + 1) - (real + n) > waste * (real + n):
            buckets.append(current)
            current, real = [], 0
        current.append(row)
        real += n
    if current:
        buckets.append(current)
    return buckets


def _plain_dynamic_cache(model) -> bool:
    probe = DynamicCache(config=model.config)
    return all(type(layer) is DynamicLayer for layer in getattr(probe, "layers", []))


def bucketed_prefill(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, lengths: list[int]):
    """Prefill all but the last prompt token of a left-padded batch, bucket by bucket, into one cache.

    A batch padded to its longest prompt wastes most of its prefill compute when lengths differ
    (the demo prompts: 36 to 98 tokens, half the padded tokens were padding). Each bucket of
    similar lengths is prefilled on its own, and the key/value states are left-padded with zeros
    (masked out by the attention mask) and stacked into one DynamicCache, which `generate` then
    continues from. Returns None when this model's cache is not a plain DynamicCache (sliding
    windows, linear attention): the caller then lets `generate` prefill the padded batch.

    Rows must be sorted by ascending length; `lengths` are their real token counts.
    """
    buckets = length_buckets(lengths)
    if len(buckets) < 2 or min(lengths) < 2 or not _plain_dynamic_cache(model):
        return None
    total = input_ids.shape[1] - 1  # the last token is fed by generate itself
    kwargs = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    keys: list[list[torch.Tensor]] = []
    values: list[list[torch.Tensor]] = []
    for rows in buckets:
        span = max(lengths[r] for r in rows) - 1
        sel = torch.tensor(rows, device=input_ids.device)
        ids = input_ids[sel, total - span : total]
        mask = attention_mask[sel, total - span : total]
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=model.config)
        model(
            input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True, **kwargs
        )
        if not keys:
            keys = [[] for _ in cache.layers]
            values = [[] for _ in cache.layers]
        for i, layer in enumerate(cache.layers):
            keys[i].append(F.pad(layer.keys, (0, 0, total - span, 0)))
            values[i].append(F.pad(layer.values, (0, 0, total - span, 0)))
    return DynamicCache(ddp_cache_data=[(torch.cat(k), torch.cat(v)) for k, v in zip(keys, values, strict=True)])
