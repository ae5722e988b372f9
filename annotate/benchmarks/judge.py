"""Logit judge throughput: pairs judged per second (both orders) with the default model.

Three ways to get the same A/B/NA verdict for a pair, on the same ~512-token judge inputs:
- batched: the logit judge, many (pair, order) sequences per forward pass, grouped so that shared
  prefixes are computed once (both orders of a pair share the instructions and the conversation;
  pairs of one candidate set share those and their first response);
- one_pair: the same judge called with one pair at a time (its two orders in one forward pass);
- generate_parse: the judge writes a rationale and a [[A]]/[[B]]/[[NA]] verdict, greedy, up to 64
  new tokens, one pair (both orders in one generate call) at a time, then the verdict is parsed, as
  chat judges such as MT-Bench's do; generate_parse_one_call_per_order is the same with one
  generate call per order, exactly as MT-Bench calls its judge (slower; the headline
  speedup_vs_generate is against the faster of the two).
Also batched_no_prefix_sharing (every sequence in full) to show what the sharing contributes.

Pairs are built the way Concord builds comparisons: candidate sets of 4 responses to one prompt,
all 6 pairs of each set. Texts are synthetic but tokenised to the target length. On CUDA the
figures include the fraction of the FLOP bound: 2 x parameters x tokens processed / time / peak.
"""

from __future__ import annotations

import random
import time
from itertools import combinations

from django.conf import settings

from rankers.judges import GenerativeJudge, LogitJudge, PairItem, parse_verdict
from rankers.judges.local import tokens_computed
from rankers.loading import default_model_ref, load_model, set_threads
from rankers.types import ModelRef

# Peak dense bf16 tensor throughput (FLOP/s) of common cards, by a substring of the device name.
PEAK_BF16 = [
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("H20", 148e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10", 125e12),
    ("4090", 165e12),
]

SENTENCES = [
    "Start by writing down every fixed commitment you have this week, including travel time.",
    "I would suggest breaking the problem into smaller steps and tackling the hardest one first.",
    "Sure! Here is a simple way to think about it, even if you are new to the topic.",
    "It depends on your goals, so it helps to decide what success would look like before you begin.",
    "A good rule of thumb is to keep one evening free for rest, because tired people plan badly.",
    "Many people find that a short walk after lunch improves their focus for the rest of the day.",
    "If money is tight, compare the total cost over a year rather than the monthly price.",
    "Talk to the people affected early, since surprises tend to create more resistance than the change itself.",
    "You could also ask a friend to review your plan, as a second pair of eyes catches obvious gaps.",
    "Keep a short list of three priorities per day and treat everything else as optional.",
    "Honestly, there is no single right answer here, and reasonable people disagree about it.",
    "Drink water, sleep at a regular time, and avoid screens in the hour before bed.",
    "The most common mistake is trying to change everything at once instead of one habit at a time.",
    "Write the email as if the reader has only thirty seconds, and put the request in the first line.",
    "Historically, communities solved this kind of problem through shared rules and mutual trust.",
    "From a practical point of view, the cheapest option is rarely the one that lasts the longest.",
    "Remember that your health matters more than any deadline, so plan breaks as seriously as work.",
    "As a first step, gather the facts: what happened, when, and who was involved.",
    "Traditional advice says to save a tenth of your income, and it still works for most people.",
    "Try the two-minute rule: if something takes less than two minutes, do it immediately.",
    "Learning a language is mostly about daily exposure, so listen to something every single day.",
    "It may help to explain your reasons openly, since people accept decisions they understand.",
    "In my view the fairest approach is to give everyone a voice before the final decision is made.",
    "Please be careful with medication and ask a pharmacist if you combine different products.",
]
QUESTION = (
    "I have a busy week ahead with work deadlines, a family birthday, two exams to study for and a friend "
    "who needs help moving house. I keep feeling overwhelmed and I am not sleeping well. How should I plan "
    "the week so that I get everything important done without burning out? Please be concrete."
)


def add_arguments(parser) -> None:
    parser.add_argument("--sets", type=int, default=3, help="candidate sets of 4 (6 pairs each) judged batched")
    parser.add_argument("--one-pair", type=int, default=4, help="pairs timed one at a time")
    parser.add_argument("--generate", type=int, default=2, help="pairs timed with generate-then-parse")
    parser.add_argument("--tokens", type=int, default=512, help="judge input tokens per (pair, order)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=0, help="sequences per batch (0: the judge's default)")
    parser.add_argument("--skip-no-sharing", action="store_true", help="do not time batched without prefix sharing")
    parser.add_argument("--model", default="", help="a local model directory instead of the default GGUF")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="the card's peak, if not in the table")
    parser.add_argument(
        "--repeat", type=int, default=2, help="time each way this many times and keep the fastest (shared machines)"
    )


def _trim(tokenizer, text: str, n: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:n]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


def _response(rng: random.Random, first: int, tokenizer, n_tokens: int) -> str:
    order = [first, *rng.sample([i for i in range(len(SENTENCES)) if i != first], len(SENTENCES) - 1)]
    return _trim(tokenizer, " ".join(SENTENCES[i] for i in order * 2), n_tokens)


def build_pairs(judge: LogitJudge, n_sets: int, target: int) -> list[PairItem]:
    """Pairs of n_sets candidate sets (4 candidates each), sized so each judge input is ~target tokens."""
    tokenizer = judge.loaded.tokenizer
    empty = PairItem(key=0, messages=[{"role": "user", "content": ""}], response_a="", response_b="")
    overhead = len(judge.encode_conversations(judge.conversations([empty]))[0])
    prompt_tokens = 64
    response_tokens = max(8, (target - overhead - prompt_tokens) // 2)
    rng = random.Random(0)
    pairs: list[PairItem] = []
    for s in range(n_sets):
        prompt = _trim(tokenizer, f"(Case {s + 1}.) {QUESTION} {QUESTION}", prompt_tokens)
        messages = [{"role": "user", "content": prompt}]
        firsts = rng.sample(range(len(SENTENCES)), 4)  # every candidate opens differently
        candidates = [_response(rng, f, tokenizer, response_tokens) for f in firsts]
        for a, b in combinations(range(4), 2):
            pairs.append(PairItem(key=(s, a, b), messages=messages, response_a=candidates[a], response_b=candidates[b]))
    return pairs


def _peak(device_name: str, override: float) -> float | None:
    if override:
        return override * 1e12
    for needle, peak in PEAK_BF16:
        if needle in device_name:
            return peak
    return None


def run(options: dict) -> dict:
    import torch

    threads = settings.CONCORD_TORCH_THREADS
    set_threads(threads)
    ref = ModelRef(kind="transformers", model=options["model"]) if options["model"] else default_model_ref()
    loaded = load_model(ref, threads=threads)
    batch_kwargs = {"batch_size": options["batch_size"]} if options["batch_size"] else {}
    judge = LogitJudge(ref, threads=threads, **batch_kwargs)
    pairs = build_pairs(judge, options["sets"], options["tokens"])
    seqs = judge.encode_conversations(judge.conversations(pairs))
    logical_tokens = sum(len(s) for s in seqs)
    computed_tokens = sum(tokens_computed([seqs[i] for i in batch]) for batch in judge.batches(seqs))
    cuda = loaded.device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    singles = pairs[: options["one_pair"]]
    chosen = pairs[: options["generate"]]
    flat = LogitJudge(ref, threads=threads, share_prefix=False, **batch_kwargs)
    generative = GenerativeJudge(ref, threads=threads, max_new_tokens=options["max_new_tokens"])
    # MT-Bench's way exactly: one generate call per order.
    per_order = GenerativeJudge(ref, threads=threads, max_new_tokens=options["max_new_tokens"], orders_per_call=1)
    ways = {
        "batched": lambda: judge.judge(pairs),
        "one_pair": lambda: [judge.judge([pair]) for pair in singles],
        "generate_parse": lambda: [generative.judge([pair]) for pair in chosen],
        "generate_parse_one_call_per_order": lambda: [per_order.judge([pair]) for pair in chosen],
    }
    if not options["skip_no_sharing"]:
        ways["batched_no_prefix_sharing"] = lambda: flat.judge(pairs)

    judge.judge(pairs[:1])  # warm-up (kernels, allocator); not timed
    # Other jobs share this machine: every way is timed `repeat` times, the rounds interleaved so
    # that all ways see the same conditions, and the fastest time of each is kept.
    seconds = dict.fromkeys(ways, float("inf"))
    results: dict = {}
    for _ in range(max(1, options["repeat"])):
        for name, fn in ways.items():
            sync()
            t0 = time.perf_counter()
            results[name] = fn()
            sync()
            seconds[name] = min(seconds[name], time.perf_counter() - t0)
    verdicts = results["batched"]
    counts = {"batched": len(pairs), "one_pair": len(singles), "batched_no_prefix_sharing": len(pairs)}
    rates = {name: counts.get(name, len(chosen)) / s for name, s in seconds.items()}
    batched_s = seconds["batched"]
    figures: dict = {}
    if "batched_no_prefix_sharing" in results:
        figures["max_abs_prob_diff_sharing_vs_not"] = max(
            abs(x - y)
            for v, w in zip(verdicts, results["batched_no_prefix_sharing"], strict=True)
            for x, y in ((v.ab.first, w.ab.first), (v.ba.first, w.ba.first), (v.ab.na, w.ab.na))
        )

    params = sum(p.numel() for p in loaded.model.parameters())
    result = {
        "benchmark": "judge",
        "model": ref.gguf_file or ref.model,
        "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({threads} thread{'s' if threads != 1 else ''})",
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "parameters": params,
        "pairs": {"batched": len(pairs), "one_pair": len(singles), "generate_parse": len(chosen)},
        "tokens_per_sequence": round(logical_tokens / len(seqs), 1),
        "tokens_computed_share": round(computed_tokens / logical_tokens, 3),
        "batch_size": judge.batch_size,
        "repeat": options["repeat"],
        "pairs_per_s": {k: round(v, 4) for k, v in rates.items()},
        "speedup_vs_generate": round(
            rates["batched"] / max(rates["generate_parse"], rates["generate_parse_one_call_per_order"]), 2
        ),
        "speedup_vs_generate_one_call_per_order": round(
            rates["batched"] / rates["generate_parse_one_call_per_order"], 2
        ),
        "speedup_vs_one_pair": round(rates["batched"] / rates["one_pair"], 2),
        "generate_mean_new_tokens": round(generative.new_tokens / max(1, len(generative.outputs)), 1),
        "generate_parsed_share": round(
            sum(parse_verdict(t) is not None for t in generative.outputs) / max(1, len(generative.outputs)), 3
        ),
        "logit_judge_inconsistent_share": round(sum(not v.consistent for v in verdicts) / len(verdicts), 3),
        "logit_judge_first_position_share": round(
            sum((v.ab.verdict() == "first") + (v.ba.verdict() == "first") for v in verdicts) / (2 * len(verdicts)), 3
        ),
    }
    if "batched_no_prefix_sharing" in rates:
        result["speedup_no_sharing_vs_generate"] = round(
            rates["batched_no_prefix_sharing"] / rates["generate_parse"], 2
        )
        result["max_abs_prob_diff_sharing_vs_not"] = figures["max_abs_prob_diff_sharing_vs_not"]
    if cuda:
        peak = _peak(torch.cuda.get_device_name(0), options["peak_tflops"])
        achieved = 2 * params * computed_tokens / batched_s
        result["achieved_tflops"] = round(achieved / 1e12, 2)
        result["flop_bound_fraction"] = round(achieved / peak, 4) if peak else None
        result["flop_bound_fraction_logical_tokens"] = (
            round(2 * params * logical_tokens / batched_s / peak, 4) if peak else None
        )
    return result
