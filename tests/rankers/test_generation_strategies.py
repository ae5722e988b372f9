"""Every strategy, with a tiny random model built in the test set-up and, where the point is what a model
is sent or a well-formed answer, a real chat-completions server on 127.0.0.1."""

import json

import pytest

from rankers import diversity
from rankers.generation import (
    NCParseError,
    SetJob,
    SetResult,
    SourceCandidate,
    StrategyOptions,
    TransformersProvider,
    provider_for,
    run_strategy,
)
from rankers.generation.strategies import DEFAULT_VALUES
from rankers.types import ModelRef, SamplingParams
from tests.chat_server import ChatServer

PARAMS = SamplingParams(temperature=1.0, max_new_tokens=6, seed=0)
MULTI_TURN = [
    {"role": "system", "content": "You are Concord's test assistant."},
    {"role": "user", "content": "I want to start running."},
    {"role": "assistant", "content": "Start with run-walk sessions."},
    {"role": "user", "content": "Make me a two-week plan."},
]
SINGLE = [{"role": "user", "content": "Should I move abroad for a job?"}]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return TransformersProvider(ModelRef(kind="transformers", model=str(tiny_model_dir), device="cpu"))


@pytest.fixture
def server():
    srv = ChatServer().start()
    yield srv
    srv.stop()


def http(url, model="served"):
    return provider_for(ModelRef(kind="openai", model=model, endpoint=url, options=(("backoff_s", 0.01),)))


def jobs(n=3):
    return [SetJob(key="a", messages=MULTI_TURN, n=n), SetJob(key="b", messages=SINGLE, n=n)]


def test_iid(tiny):
    out = run_strategy("iid", tiny, jobs(), params=PARAMS)
    assert set(out) == {"a", "b"}
    for result in out.values():
        assert isinstance(result, SetResult) and len(result.candidates) == 3
        assert all(c.n_tokens <= 6 for c in result.candidates)


def test_nc_prompt_on_a_model_that_ignores_the_format_fails_loudly(tiny):
    out = run_strategy("nc_prompt", tiny, jobs(4), params=PARAMS)
    for result in out.values():
        assert isinstance(result, NCParseError)
        assert "expected 4 responses" in str(result)
        assert isinstance(result.raw_output, str)  # what the model wrote is kept


def test_nc_prompt_parses_a_well_formed_answer(server):
    server.responder = lambda body: (
        "Here you go.\n\n"
        + "\n\n".join(f"**Response {x}:** answer {x} to {body['messages'][-1]['content'][:20]!r}" for x in "ABCD")
    )
    out = run_strategy("nc_prompt", http(server.url), jobs(4), params=PARAMS)
    for result in out.values():
        assert isinstance(result, SetResult), result
        assert [c.meta["label"] for c in result.candidates] == ["A", "B", "C", "D"]
        assert result.candidates[0].text.startswith("answer A")
        assert result.raw_output.startswith("Here you go.")
    sent = {r["messages"][1]["content"]: r for r in server.requests if len(r["messages"]) > 2}
    request = sent["I want to start running."]
    # The whole conversation, with the instruction appended to the last user turn; one call per prompt.
    assert request["messages"][:3] == MULTI_TURN[:3]
    assert request["messages"][3]["content"].startswith("Make me a two-week plan.\n\nGenerate 4 responses")
    assert "Response A, Response B, Response C and Response D" in request["messages"][3]["content"]
    assert request["max_tokens"] == 4 * PARAMS.max_new_tokens
    assert len(server.requests) == 2


def test_nc_values_one_perspective_per_candidate(tiny, server):
    out = run_strategy("nc_values", tiny, jobs(4), params=PARAMS)
    values = [c.meta["value"] for c in out["a"].candidates]
    assert values == [v.name for v in DEFAULT_VALUES]
    run_strategy("nc_values", http(server.url), [SetJob(key="a", messages=MULTI_TURN, n=4)], params=PARAMS)
    systems = [r["messages"][0]["content"] for r in server.requests]
    assert len(set(systems)) == 4
    # The prompt's own system turn is kept, the perspective added to it; the other turns are untouched.
    assert all(s.startswith("You are Concord's test assistant.\n\nAnswer from a ") for s in systems)
    assert all(r["messages"][1:] == MULTI_TURN[1:] for r in server.requests)


def test_nc_values_custom_perspectives_cycle():
    opts = StrategyOptions.from_params({"values": ["collectivist", {"name": "liberal", "instruction": "Be liberal."}]})
    assert [v.name for v in opts.values] == ["collectivist", "liberal"]
    with pytest.raises(ValueError):
        StrategyOptions.from_params({"values": [42]})


def test_multi_model_one_candidate_per_generator(tiny, server):
    providers = {"tiny": tiny, "served": http(server.url)}
    out = run_strategy("multi_model", None, jobs(4), params=PARAMS, providers=providers)
    for result in out.values():
        assert [c.generator_key for c in result.candidates] == ["tiny", "served", "tiny", "served"]
        assert result.candidates[1].text.startswith("[served]")
    assert len(server.requests) == 4  # two candidates for each of two prompts


def test_maxmin_keeps_the_most_spread_out_of_k(tiny):
    out = run_strategy("maxmin", tiny, jobs(3), params=PARAMS, options=StrategyOptions.from_params({"oversample": 6}))
    for result in out.values():
        raw = json.loads(result.raw_output)
        assert len(raw["pool"]) == 6 and len(result.candidates) == 3
        assert raw["selected"] == diversity.maxmin_select(diversity.embed(raw["pool"]), 3)
        assert [c.text for c in result.candidates] == [raw["pool"][i] for i in raw["selected"]]
        assert [c.meta["pool_index"] for c in result.candidates] == raw["selected"]


def test_correction_rewrites_each_source_and_names_its_parent(tiny, server):
    sources = [SourceCandidate(key=11, text="Run every day for an hour."), SourceCandidate(key=12, text="Rest.")]
    job = SetJob(key="a", messages=MULTI_TURN, n=2, sources=sources)
    out = run_strategy("correction", tiny, [job, SetJob(key="empty", messages=SINGLE, n=2)], params=PARAMS)
    assert [c.parent_key for c in out["a"].candidates] == [11, 12]
    assert "no candidate to correct" in str(out["empty"])
    run_strategy("correction", http(server.url), [job], params=PARAMS)
    prompts = sorted(r["messages"][1]["content"] for r in server.requests)
    # The corrector sees the whole conversation and the answer it rewrites (Aligner's question | answer).
    assert all("User: I want to start running.\nAssistant: Start with run-walk sessions." in p for p in prompts)
    assert ["Rest." in prompts[0], "Run every day for an hour." in prompts[1]] == [True, True]


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown strategy"):
        run_strategy("best_guess", None, jobs(), params=PARAMS)
