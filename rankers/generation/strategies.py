"""Strategies that turn one prompt into a candidate set (methods.md section 1, and Aligner for corrections).

Every strategy builds the sets of many prompts at once, so that the model sees large batches:

- iid: N independent samples at the set's temperature (the baseline).
- nc_prompt: one call asks for N responses representing diverse values; the output is split into N
  candidates (parsing.py), or the set fails with the raw output kept.
- nc_values: one candidate per value perspective, each under its own system instruction (for models
  too small to follow the one-call format), all batched in one generate call.
- multi_model: several generators, one candidate each (generator i writes candidates i, i+k, ...).
- maxmin: sample K > N, keep the N with the largest minimum pairwise embedding distance.
- correction: a corrector prompt rewrites existing candidates; each new candidate names its parent.

The whole conversation of a multi-turn prompt is always passed on: every strategy only adds to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rankers.generation.errors import StrategyError
from rankers.generation.parsing import NCParseError, parse_nc_output
from rankers.generation.providers import Provider
from rankers.types import GenerationRequest, Message, SamplingParams

__all__ = [
    "DEFAULT_CORRECTOR_PROMPT",
    "DEFAULT_CORRECTOR_SYSTEM",
    "DEFAULT_NC_INSTRUCTION",
    "DEFAULT_VALUES",
    "STRATEGIES",
    "CandidateDraft",
    "NCParseError",
    "SetJob",
    "SetResult",
    "SourceCandidate",
    "StrategyError",
    "StrategyOptions",
    "ValuePerspective",
    "run_strategy",
]

DEFAULT_NC_INSTRUCTION = (
    "Generate {n} responses to the message above that represent diverse values: each response should "
    "answer from a different set of values or priorities. Label them {labels}, each on its own line "
    "(for example 'Response A:'), and write nothing else."
)
DEFAULT_CORRECTOR_SYSTEM = (
    "You are a careful editor. You improve answers: fix mistakes, make them more helpful, honest and "
    "harmless, and keep what is already good."
)
# Aligner (Ji et al. 2024) conditions a corrector on the question and the upstream answer.
DEFAULT_CORRECTOR_PROMPT = (
    "Edit the following question-answer pair to make the answer more helpful and harmless.\n\n"
    "Conversation:\n{conversation}\n\nAnswer:\n{answer}\n\nReply with the improved answer only."
)


@dataclass(frozen=True)
class ValuePerspective:
    name: str
    instruction: str


# The four poles of the Inglehart-Welzel cultural map (methods.md section 1).
DEFAULT_VALUES: tuple[ValuePerspective, ...] = (
    ValuePerspective(
        "traditional",
        "Answer from a traditional perspective: give weight to religion, family, duty, respect for "
        "authority and established customs.",
    ),
    ValuePerspective(
        "secular-rational",
        "Answer from a secular-rational perspective: give weight to reason, evidence, science and "
        "individual judgement over tradition and religious authority.",
    ),
    ValuePerspective(
        "survival",
        "Answer from a survival perspective: give weight to economic and physical security, caution, "
        "stability and protecting what one already has.",
    ),
    ValuePerspective(
        "self-expression",
        "Answer from a self-expression perspective: give weight to personal autonomy, self-fulfilment, "
        "tolerance, diversity and having a say in decisions.",
    ),
)
_VALUE_SUFFIX = "Do not name the perspective; just answer as someone who holds it would."


@dataclass
class StrategyOptions:
    """Settings of the strategies (stored in the set's params; every one has a default).

    nc_instruction: appended to the last user turn; {n} and {labels} are filled in.
    nc_max_new_tokens: token budget of the single NC call (default N x max_new_tokens).
    values: perspectives for nc_values, cycled when N exceeds their number.
    oversample: K for maxmin (default 2N).
    corrector_system / corrector_prompt: the corrector's instructions; {conversation} and {answer}.
    """

    nc_instruction: str = DEFAULT_NC_INSTRUCTION
    nc_max_new_tokens: int | None = None
    values: tuple[ValuePerspective, ...] = DEFAULT_VALUES
    oversample: int | None = None
    corrector_system: str = DEFAULT_CORRECTOR_SYSTEM
    corrector_prompt: str = DEFAULT_CORRECTOR_PROMPT

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> StrategyOptions:
        """Read the options from a set's params; raises ValueError on a malformed value."""
        params = params or {}
        opts = cls()
        if params.get("nc_instruction"):
            opts.nc_instruction = str(params["nc_instruction"])
        if params.get("nc_max_new_tokens"):
            opts.nc_max_new_tokens = int(params["nc_max_new_tokens"])
        if params.get("values"):
            opts.values = tuple(_value(v) for v in params["values"])
        if params.get("oversample"):
            opts.oversample = int(params["oversample"])
            if opts.oversample < 2:
                raise ValueError("oversample (K) must be at least 2")
        if params.get("corrector_system"):
            opts.corrector_system = str(params["corrector_system"])
        if params.get("corrector_prompt"):
            opts.corrector_prompt = str(params["corrector_prompt"])
            if "{answer}" not in opts.corrector_prompt:
                raise ValueError("the corrector prompt must contain {answer}")
        return opts


def _value(raw: Any) -> ValuePerspective:
    if isinstance(raw, str) and raw.strip():
        for known in DEFAULT_VALUES:
            if known.name == raw.strip():
                return known
        return ValuePerspective(raw.strip()[:40], raw.strip())
    if isinstance(raw, Mapping) and raw.get("instruction"):
        return ValuePerspective(str(raw.get("name") or raw["instruction"])[:40], str(raw["instruction"]))
    raise ValueError(f"a value perspective is a name, an instruction or {{name, instruction}}, not {raw!r}")


@dataclass
class CandidateDraft:
    text: str
    n_tokens: int
    finish_reason: str = "stop"
    meta: dict[str, Any] = field(default_factory=dict)
    generator_key: Any = None  # multi_model: which of the providers wrote it
    parent_key: Any = None  # correction: the candidate it rewrites


@dataclass
class SetResult:
    candidates: list[CandidateDraft]
    raw_output: str = ""


@dataclass
class SourceCandidate:
    """An existing candidate for the correction strategy to rewrite."""

    key: Any
    text: str


@dataclass
class SetJob:
    """One prompt's set to build. `messages` is the whole conversation."""

    key: Any
    messages: list[Message]
    n: int
    sources: list[SourceCandidate] = field(default_factory=list)


Outcome = SetResult | StrategyError
Embed = Callable[[Sequence[str]], np.ndarray]


def _draft(gen, **extra) -> CandidateDraft:
    return CandidateDraft(
        text=gen.text, n_tokens=gen.n_tokens, finish_reason=gen.finish_reason, meta=dict(gen.meta), **extra
    )


def _with_system(messages: list[Message], extra: str) -> list[Message]:
    """Add an instruction to the conversation's system turn (creating one), keeping every other turn."""
    if messages and messages[0].get("role") == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{extra}"}, *messages[1:]]
    return [{"role": "system", "content": extra}, *messages]


def _append_to_last_user(messages: list[Message], extra: str) -> list[Message]:
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = f"{m['content']}\n\n{extra}"
            return out
    return [*out, {"role": "user", "content": extra}]


def _labels(n: int) -> str:
    if n <= 26:
        letters = [chr(ord("A") + i) for i in range(n)]
        return ", ".join(f"Response {x}" for x in letters[:-1]) + f" and Response {letters[-1]}"
    return f"Response 1 to Response {n}"


def _transcript(messages: list[Message]) -> str:
    names = {"user": "User", "assistant": "Assistant", "system": "System"}
    return "\n".join(f"{names.get(m.get('role', ''), m.get('role', ''))}: {m.get('content', '')}" for m in messages)


def _iid(ctx: _Context) -> dict[Any, Outcome]:
    requests, owners = [], []
    for job in ctx.jobs:
        for _ in range(job.n):
            requests.append(GenerationRequest(messages=job.messages))
            owners.append(job.key)
    outputs = ctx.provider.generate(requests, params=ctx.params, batch_size=ctx.batch_size)
    results: dict[Any, Outcome] = {job.key: SetResult(candidates=[]) for job in ctx.jobs}
    for owner, gen in zip(owners, outputs, strict=True):
        results[owner].candidates.append(_draft(gen))
    return results


def _nc_prompt(ctx: _Context) -> dict[Any, Outcome]:
    requests = []
    for job in ctx.jobs:
        instruction = ctx.options.nc_instruction.replace("{n}", str(job.n)).replace("{labels}", _labels(job.n))
        requests.append(GenerationRequest(messages=_append_to_last_user(job.messages, instruction)))
    budget = ctx.options.nc_max_new_tokens or ctx.params.max_new_tokens * max(j.n for j in ctx.jobs)
    params = replace(ctx.params, max_new_tokens=budget)
    outputs = ctx.provider.generate(requests, params=params, batch_size=ctx.batch_size)
    results: dict[Any, Outcome] = {}
    for job, gen in zip(ctx.jobs, outputs, strict=True):
        try:
            parsed = parse_nc_output(gen.text, job.n)
        except NCParseError as exc:
            results[job.key] = exc
            continue
        # One call wrote them all: share its token count out in proportion to the text.
        chars = sum(len(p.text) for p in parsed) or 1
        results[job.key] = SetResult(
            candidates=[
                CandidateDraft(
                    text=p.text,
                    n_tokens=round(gen.n_tokens * len(p.text) / chars),
                    finish_reason=gen.finish_reason if i == job.n - 1 else "stop",
                    meta={"label": p.label, **({"title": p.title} if p.title else {})},
                )
                for i, p in enumerate(parsed)
            ],
            raw_output=gen.text,
        )
    return results


def _nc_values(ctx: _Context) -> dict[Any, Outcome]:
    values = ctx.options.values
    requests, owners = [], []
    for job in ctx.jobs:
        for i in range(job.n):
            value = values[i % len(values)]
            system = f"{value.instruction} {_VALUE_SUFFIX}"
            requests.append(GenerationRequest(messages=_with_system(job.messages, system)))
            owners.append((job.key, value.name))
    outputs = ctx.provider.generate(requests, params=ctx.params, batch_size=ctx.batch_size)
    results: dict[Any, Outcome] = {job.key: SetResult(candidates=[]) for job in ctx.jobs}
    for (owner, value), gen in zip(owners, outputs, strict=True):
        draft = _draft(gen)
        draft.meta["value"] = value
        results[owner].candidates.append(draft)
    return results


def _multi_model(ctx: _Context) -> dict[Any, Outcome]:
    if not ctx.providers:
        raise StrategyError("multi_model needs several generators")
    keys = list(ctx.providers)
    per_provider: dict[Any, list[tuple[Any, int]]] = {k: [] for k in keys}
    for job in ctx.jobs:
        for i in range(job.n):
            per_provider[keys[i % len(keys)]].append((job.key, i))
    drafts: dict[tuple[Any, int], CandidateDraft] = {}
    messages = {job.key: job.messages for job in ctx.jobs}
    for gen_key, slots in per_provider.items():
        if not slots:
            continue
        requests = [GenerationRequest(messages=messages[job_key]) for job_key, _ in slots]
        outputs = ctx.providers[gen_key].generate(requests, params=ctx.params, batch_size=ctx.batch_size)
        for slot, gen in zip(slots, outputs, strict=True):
            drafts[slot] = _draft(gen, generator_key=gen_key)
    return {job.key: SetResult(candidates=[drafts[(job.key, i)] for i in range(job.n)]) for job in ctx.jobs}


def _maxmin(ctx: _Context) -> dict[Any, Outcome]:
    from rankers import diversity

    embed = ctx.embed or diversity.embed
    pools = {}
    requests, owners = [], []
    for job in ctx.jobs:
        k = ctx.options.oversample or 2 * job.n
        if k < job.n:
            raise StrategyError(f"oversample K={k} is smaller than the set size N={job.n}")
        pools[job.key] = k
        for _ in range(k):
            requests.append(GenerationRequest(messages=job.messages))
            owners.append(job.key)
    outputs = ctx.provider.generate(requests, params=ctx.params, batch_size=ctx.batch_size)
    pool: dict[Any, list] = {job.key: [] for job in ctx.jobs}
    for owner, gen in zip(owners, outputs, strict=True):
        pool[owner].append(gen)
    texts = [g.text for job in ctx.jobs for g in pool[job.key]]
    vectors = embed(texts)
    results: dict[Any, Outcome] = {}
    offset = 0
    for job in ctx.jobs:
        gens = pool[job.key]
        chosen = diversity.maxmin_select(vectors[offset : offset + len(gens)], job.n)
        offset += len(gens)
        candidates = []
        for index in chosen:
            draft = _draft(gens[index])
            draft.meta.update(pool_index=index, pool_size=len(gens))
            candidates.append(draft)
        raw = json.dumps({"pool": [g.text for g in gens], "selected": chosen}, ensure_ascii=False)
        results[job.key] = SetResult(candidates=candidates, raw_output=raw)
    return results


def _correction(ctx: _Context) -> dict[Any, Outcome]:
    requests, owners = [], []
    results: dict[Any, Outcome] = {}
    for job in ctx.jobs:
        if not job.sources:
            results[job.key] = StrategyError("there is no candidate to correct for this prompt")
            continue
        conversation = _transcript(job.messages)
        for source in job.sources[: job.n]:
            prompt = ctx.options.corrector_prompt.replace("{conversation}", conversation).replace(
                "{answer}", source.text
            )
            messages = [
                {"role": "system", "content": ctx.options.corrector_system},
                {"role": "user", "content": prompt},
            ]
            requests.append(GenerationRequest(messages=messages))
            owners.append((job.key, source.key))
    outputs = ctx.provider.generate(requests, params=ctx.params, batch_size=ctx.batch_size) if requests else []
    for (owner, parent), gen in zip(owners, outputs, strict=True):
        result = results.setdefault(owner, SetResult(candidates=[]))
        assert isinstance(result, SetResult)
        result.candidates.append(_draft(gen, parent_key=parent))
    return results


@dataclass
class _Context:
    provider: Provider
    jobs: list[SetJob]
    params: SamplingParams
    batch_size: int
    options: StrategyOptions
    providers: dict[Any, Provider]
    embed: Embed | None


STRATEGIES: dict[str, Callable[[_Context], dict[Any, Outcome]]] = {
    "iid": _iid,
    "nc_prompt": _nc_prompt,
    "nc_values": _nc_values,
    "multi_model": _multi_model,
    "maxmin": _maxmin,
    "correction": _correction,
}


def run_strategy(
    strategy: str,
    provider: Provider | None,
    jobs: list[SetJob],
    *,
    params: SamplingParams,
    batch_size: int = 32,
    options: StrategyOptions | None = None,
    providers: Mapping[Any, Provider] | None = None,
    embed: Embed | None = None,
) -> dict[Any, Outcome]:
    """Build candidate sets for several prompts at once (batched across prompts).

    Returns, per job key, either the set or the StrategyError that explains why it failed (the
    error keeps the raw model output where there is one). An exception from a provider (a server
    down, a model missing) propagates: it concerns every job of the call.

    `providers` (key -> provider, in order) is for multi_model; `embed` overrides the embedding
    function of maxmin.
    """
    try:
        fn = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}") from None
    if not jobs:
        return {}
    if provider is None and strategy != "multi_model":
        raise ValueError(f"strategy {strategy!r} needs a provider")
    ctx = _Context(
        provider=provider,  # type: ignore[arg-type]
        jobs=jobs,
        params=params,
        batch_size=batch_size,
        options=options or StrategyOptions(),
        providers=dict(providers or {}),
        embed=embed,
    )
    return fn(ctx)
