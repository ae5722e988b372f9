"""The OpenAI-compatible provider against a real HTTP server on 127.0.0.1 (chat-completions wire format)."""

import socket

import pytest

from rankers.generation import provider_for
from rankers.generation.openai_compat import OpenAICompatibleProvider, ProviderError
from rankers.types import GenerationRequest, ModelRef, SamplingParams
from tests.chat_server import ChatServer

FAST = (("backoff_s", 0.01), ("backoff_max_s", 0.05), ("max_retries", 3))
CONVERSATION = [
    {"role": "user", "content": "I want to start running."},
    {"role": "assistant", "content": "Start with run-walk sessions."},
    {"role": "user", "content": "Make me a two-week plan."},
]


@pytest.fixture
def server():
    srv = ChatServer().start()
    yield srv
    srv.stop()


def ref(url, *, options=FAST, api_key_env=""):
    return ModelRef(kind="openai", model="served-model", endpoint=url, api_key_env=api_key_env, options=options)


def test_generates_in_order_and_sends_the_whole_conversation(server):
    provider = provider_for(ref(server.url))
    assert isinstance(provider, OpenAICompatibleProvider)
    requests = [
        GenerationRequest(messages=CONVERSATION),
        GenerationRequest(messages=[CONVERSATION[0]], system="Be brief."),
    ]
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=40, seed=5)
    out = provider.generate(requests, params=params)
    asked = [g.text.split(" :: ")[1].split(" #")[0] for g in out]
    assert asked == ["Make me a two-week plan.", "I want to start running."]
    by_last = {r["messages"][-1]["content"]: r for r in server.requests}
    assert by_last["Make me a two-week plan."]["messages"] == CONVERSATION
    assert by_last["I want to start running."]["messages"][0] == {"role": "system", "content": "Be brief."}
    sent = server.requests[0]
    assert sent["model"] == "served-model" and sent["max_tokens"] == 40
    assert sent["temperature"] == 0.7 and sent["top_p"] == 0.9
    # Each request gets its own seed, or a seeded server would return identical candidates.
    assert sorted(r["seed"] for r in server.requests) == [5, 6]
    assert out[0].n_tokens == len(out[0].text.split()) and out[0].finish_reason == "stop"


def test_transient_503_is_retried_then_succeeds(server):
    server.fail_next(503)
    server.fail_next(429, headers={"Retry-After": "0"})
    out = provider_for(ref(server.url)).generate(
        [GenerationRequest(messages=CONVERSATION)], params=SamplingParams(max_new_tokens=8)
    )
    assert len(out) == 1 and out[0].text
    assert len(server.requests) == 3


def test_client_error_is_not_retried(server):
    server.fail_next(400, {"error": {"message": "max_tokens is too large"}})
    with pytest.raises(ProviderError) as info:
        provider_for(ref(server.url)).generate([GenerationRequest(messages=CONVERSATION)], params=SamplingParams())
    assert info.value.status == 400 and not info.value.transient
    assert "max_tokens is too large" in str(info.value)
    assert len(server.requests) == 1


def test_persistent_5xx_gives_up_after_the_retries(server):
    for _ in range(4):
        server.fail_next(502)
    with pytest.raises(ProviderError) as info:
        provider_for(ref(server.url)).generate([GenerationRequest(messages=CONVERSATION)], params=SamplingParams())
    assert info.value.transient and "gave up after 4 attempts" in str(info.value)
    assert len(server.requests) == 4


def test_connection_refused_is_transient_and_retried():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = provider_for(ref(f"http://127.0.0.1:{port}/v1", options=(*FAST, ("connect_timeout_s", 1))))
    with pytest.raises(ProviderError) as info:
        provider.generate([GenerationRequest(messages=CONVERSATION)], params=SamplingParams())
    assert info.value.transient and "ConnectError" in str(info.value)


def test_read_timeout_is_retried(server):
    server.delay_s = 1.0
    provider = provider_for(ref(server.url, options=(*FAST, ("timeout_s", 0.2), ("max_retries", 1))))
    with pytest.raises(ProviderError) as info:
        provider.generate([GenerationRequest(messages=CONVERSATION)], params=SamplingParams())
    assert "ReadTimeout" in str(info.value)
    assert len(server.requests) == 2


def test_concurrency_limit(server):
    server.delay_s = 0.05
    provider = provider_for(ref(server.url, options=(*FAST, ("concurrency", 2))))
    out = provider.generate(
        [GenerationRequest(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(8)], params=SamplingParams()
    )
    assert [g.text.split(" :: ")[1].split(" #")[0] for g in out] == [f"q{i}" for i in range(8)]
    assert server.max_in_flight <= 2


def test_api_key_comes_from_the_named_environment_variable(server, monkeypatch):
    provider = provider_for(ref(server.url, api_key_env="CONCORD_TEST_LLM_KEY"))
    monkeypatch.delenv("CONCORD_TEST_LLM_KEY", raising=False)
    with pytest.raises(ProviderError, match="CONCORD_TEST_LLM_KEY"):
        provider.generate([GenerationRequest(messages=CONVERSATION)], params=SamplingParams())
    assert server.requests == []  # nothing was sent without the key
    monkeypatch.setenv("CONCORD_TEST_LLM_KEY", "sk-test-123")
    provider.generate([GenerationRequest(messages=CONVERSATION)], params=SamplingParams())
    assert server.headers[-1]["authorization"] == "Bearer sk-test-123"


def test_malformed_response_fails_without_retry(server):
    server.fail_next(200, {"unexpected": True})
    with pytest.raises(ProviderError, match="not a chat-completions response"):
        provider_for(ref(server.url)).generate([GenerationRequest(messages=CONVERSATION)], params=SamplingParams())
    assert len(server.requests) == 1
