"""Fast batched decoding: the nucleus sampler draws from transformers' top-p distribution, and bucketed
prefill gives the same tokens as prefilling the padded batch."""

import pytest
import torch
from transformers import TopPLogitsWarper

from rankers.generation import sampling
from rankers.generation.providers import TransformersProvider
from rankers.types import GenerationRequest, ModelRef, SamplingParams


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
def test_nucleus_matches_transformers_top_p(top_p):
    torch.manual_seed(0)
    # Peaked rows (nucleus within the top candidates) and one flat row (falls back to the full sort).
    scores = torch.cat([torch.randn(6, 5000) * 4, torch.randn(1, 5000) * 0.01])
    expected = TopPLogitsWarper(top_p=top_p)(None, scores.clone()) > float("-inf")
    sampler = sampling.NucleusSampler(temperature=1.0, top_p=top_p, candidates=64)
    for _ in range(30):
        out = sampler(None, scores.clone())
        drawn = out.argmax(-1)
        assert torch.isfinite(out).sum(-1).tolist() == [1] * 7  # exactly one token left per row
        assert expected[torch.arange(7), drawn].all()  # and it lies in transformers' nucleus


def test_nucleus_sampler_follows_the_probabilities():
    torch.manual_seed(1)
    scores = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]])).repeat(4000, 1)
    drawn = sampling.NucleusSampler(temperature=1.0, top_p=0.8, candidates=3)(None, scores).argmax(-1)
    counts = torch.bincount(drawn, minlength=4).float() / 4000
    # The nucleus at 0.8 is {0, 1}, renormalised to 2/3 and 1/3.
    assert counts[2:].sum() == 0
    assert counts[0].item() == pytest.approx(2 / 3, abs=0.05)


def test_length_buckets_limit_padding():
    assert sampling.length_buckets([10, 10, 11, 40, 41, 90]) == [[0, 1, 2], [3, 4], [5]]
    assert sampling.length_buckets([5]) == [[0]]


def test_bucketed_prefill_gives_the_same_greedy_tokens(tiny_model_dir, monkeypatch):
    provider = TransformersProvider(ModelRef(kind="transformers", model=str(tiny_model_dir), device="cpu"))
    requests = [
        GenerationRequest(messages=[{"role": "user", "content": "Hi " * k + "there?"}]) for k in (1, 2, 30, 31, 80)
    ]
    params = SamplingParams(temperature=0, max_new_tokens=6)
    calls = []
    real = sampling.bucketed_prefill

    def spy(*args, **kwargs):
        cache = real(*args, **kwargs)
        calls.append(cache is not None)
        return cache

    monkeypatch.setattr(sampling, "bucketed_prefill", spy)
    bucketed = provider.generate(requests, params=params, batch_size=8)
    assert calls == [True]
    monkeypatch.setattr(sampling, "bucketed_prefill", lambda *a, **k: None)
    padded = provider.generate(requests, params=params, batch_size=8)
    one_by_one = provider.generate(requests, params=params, batch_size=1)
    assert [g.text for g in bucketed] == [g.text for g in padded] == [g.text for g in one_by_one]


def test_min_new_tokens_forces_the_length(tiny_model_dir):
    provider = TransformersProvider(ModelRef(kind="transformers", model=str(tiny_model_dir), device="cpu"))
    requests = [GenerationRequest(messages=[{"role": "user", "content": f"Question {i}?"}]) for i in range(3)]
    out = provider.generate(requests, params=SamplingParams(max_new_tokens=7, min_new_tokens=7, seed=0))
    assert [g.n_tokens for g in out] == [7, 7, 7]
    assert all(g.finish_reason == "length" for g in out)
