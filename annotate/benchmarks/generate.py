"""Generation throughput by batch size, and NC against i.i.d. diversity on the demo prompts.

Throughput: the same prompts (the demo prompts, cycled to --prompts) with the same model and sampling
settings, generated one at a time and in batches of 8 and 32; every sequence decodes exactly
--new-tokens tokens (min_new_tokens = max_new_tokens), so the runs do the same work. tokens/s counts
new tokens only. On CUDA the fraction of the memory-bandwidth bound is reported too: weight bytes x
decode steps / time / the card's bandwidth (decoding reads every weight once per step).

Diversity: i.i.d. sampling, value-conditioned NC (the NC strategy a 135M model can follow) and
one-call NC prompting, N candidates per demo prompt; the figure is the mean over sets of the mean
pairwise cosine distance of all-MiniLM-L6-v2 embeddings. NC prompting's parse success rate is reported
too (SmolLM2-135M is expected to fail it: it writes one answer).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from django.conf import settings

from rankers import diversity
from rankers.generation import SetJob, SetResult, TransformersProvider, run_strategy
from rankers.loading import default_model_ref
from rankers.types import GenerationRequest, ModelRef, SamplingParams

DEMO_PROMPTS = Path(__file__).resolve().parents[1] / "fixtures" / "demo_prompts.jsonl"


def add_arguments(parser) -> None:
    parser.add_argument("--prompts", type=int, default=32, help="prompts in the throughput runs")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens decoded per sequence")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=4, help="candidates per set in the diversity runs")
    parser.add_argument("--diversity-prompts", type=int, default=0, help="demo prompts used (0: all)")
    parser.add_argument("--diversity-tokens", type=int, default=48, help="max new tokens per candidate")
    parser.add_argument("--skip-diversity", action="store_true")
    parser.add_argument("--device", default=settings.CONCORD_DEVICE)
    parser.add_argument("--bandwidth-gbs", type=float, default=0.0, help="card bandwidth (GB/s); default: detected")


def demo_conversations() -> list[list[dict]]:
    out = []
    for line in DEMO_PROMPTS.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(row.get("messages") or [{"role": "user", "content": row["prompt"]}])
    return out


def _bandwidth_bytes_per_s(device: str, override_gbs: float) -> float | None:
    import torch

    if override_gbs:
        return override_gbs * 1e9
    props = torch.cuda.get_device_properties(torch.device(device))
    clock_khz, bus_bits = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    if not clock_khz or not bus_bits:
        return None
    return 2 * clock_khz * 1000 * bus_bits / 8  # double data rate


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def throughput(provider: TransformersProvider, conversations: list[list[dict]], options: dict) -> dict:
    loaded = provider.loaded
    device = loaded.device
    requests = [GenerationRequest(messages=conversations[i % len(conversations)]) for i in range(options["prompts"])]
    steps = options["new_tokens"]
    params = SamplingParams(
        temperature=options["temperature"],
        top_p=options["top_p"],
        max_new_tokens=steps,
        min_new_tokens=steps,
        seed=options["seed"],
    )
    # Warm-up (allocator, kernels, lazy imports) outside the timed runs.
    provider.generate(requests[:2], params=SamplingParams(temperature=0.8, max_new_tokens=4, seed=0), batch_size=2)
    sizes = [int(b) for b in options["batch_sizes"].split(",") if b.strip()]
    tokens_per_s, seconds, bound = {}, {}, {}
    weight_bytes = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    bandwidth = _bandwidth_bytes_per_s(device, options["bandwidth_gbs"]) if device.startswith("cuda") else None
    for size in sizes:
        _sync(device)
        start = time.perf_counter()
        out = provider.generate(requests, params=params, batch_size=size)
        _sync(device)
        elapsed = time.perf_counter() - start
        tokens = sum(g.n_tokens for g in out)
        tokens_per_s[str(size)] = round(tokens / elapsed, 2)
        seconds[str(size)] = round(elapsed, 2)
        if bandwidth:
            decode_steps = math.ceil(len(requests) / size) * steps
            bound[str(size)] = round(weight_bytes * decode_steps / elapsed / bandwidth, 4)
    figures = {
        "tokens_per_s": tokens_per_s,
        "seconds": seconds,
        "speedup_32_vs_1": round(tokens_per_s["32"] / tokens_per_s["1"], 2)
        if "32" in tokens_per_s and "1" in tokens_per_s
        else None,
        "throughput_prompts": len(requests),
        "new_tokens_per_sequence": steps,
        "weight_bytes": weight_bytes,
    }
    if device.startswith("cuda"):
        figures["memory_bandwidth_gbs"] = round(bandwidth / 1e9, 1) if bandwidth else None
        figures["fraction_of_bandwidth_bound"] = bound or None
    return figures


def diversity_figures(provider: TransformersProvider, conversations: list[list[dict]], options: dict) -> dict:
    if options["diversity_prompts"]:
        conversations = conversations[: options["diversity_prompts"]]
    jobs = [SetJob(key=i, messages=m, n=options["n"]) for i, m in enumerate(conversations)]
    params = SamplingParams(
        temperature=options["temperature"],
        top_p=options["top_p"],
        max_new_tokens=options["diversity_tokens"],
        seed=options["seed"],
    )
    detail = {}
    for strategy in ("iid", "nc_values", "nc_prompt"):
        start = time.perf_counter()
        outcomes = run_strategy(strategy, provider, jobs, params=params)
        elapsed = time.perf_counter() - start
        built = [r for r in outcomes.values() if isinstance(r, SetResult)]
        figures = [diversity.set_diversity([c.text for c in r.candidates]) for r in built]
        detail[strategy] = {
            "sets": len(built),
            "attempted": len(jobs),
            "mean_pairwise_distance": round(sum(f["mean_pairwise_distance"] for f in figures) / len(figures), 4)
            if figures
            else None,
            "distinct_2": round(sum(f["distinct_2"] for f in figures) / len(figures), 4) if figures else None,
            "mean_length_words": round(sum(f["mean_length"] for f in figures) / len(figures), 1) if figures else None,
            "seconds": round(elapsed, 1),
        }
    return {
        "diversity": {
            "iid": detail["iid"]["mean_pairwise_distance"],
            "nc": detail["nc_values"]["mean_pairwise_distance"],
            "nc_values": detail["nc_values"]["mean_pairwise_distance"],
            "nc_prompt": detail["nc_prompt"]["mean_pairwise_distance"],
        },
        "nc_strategy": "nc_values",
        "nc_prompt_parse_success_rate": round(detail["nc_prompt"]["sets"] / len(jobs), 3),
        "diversity_detail": detail,
        "diversity_prompts": len(jobs),
        "diversity_max_new_tokens": options["diversity_tokens"],
    }


def run(options: dict) -> dict:
    started = time.perf_counter()
    default = default_model_ref()
    ref = ModelRef(kind=default.kind, model=default.model, gguf_file=default.gguf_file, device=options["device"])
    provider = TransformersProvider(ref, threads=settings.CONCORD_TORCH_THREADS)
    conversations = demo_conversations()
    figures = {
        "benchmark": "generate",
        "model": default.gguf_file,
        "device": provider.loaded.device,
        "dtype": str(provider.loaded.dtype).replace("torch.", ""),
        "torch_threads": settings.CONCORD_TORCH_THREADS,
        "temperature": options["temperature"],
        "top_p": options["top_p"],
    }
    figures.update(throughput(provider, conversations, options))
    if not options["skip_diversity"]:
        figures.update(diversity_figures(provider, conversations, options))
    figures["total_s"] = round(time.perf_counter() - started, 1)
    return figures
