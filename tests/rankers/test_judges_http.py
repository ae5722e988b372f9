"""The OpenAI-compatible paths against a real HTTP server on 127.0.0.1 (started in a thread)."""

from __future__ import annotations

import math

import pytest

from rankers.judges import (
    ChatClient,
    Demonstration,
    HttpChat,
    JudgeError,
    ListwiseRanker,
    LogprobJudge,
    PairItem,
    SetItem,
    label_probs_from_top_logprobs,
    listwise_ranker_for,
    pairwise_judge_for,
)
from rankers.types import ModelRef
from tests.openai_server import FakeOpenAI, running_server

Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def server():
    with running_server() as fake:
        yield fake


def test_logprob_judge_reads_top_logprobs_in_both_orders(server):
    judge = LogprobJudge(ChatClient(server.url, "judge-model"), concurrency=2)
    verdicts = judge.judge(
        [
            PairItem(key="good-first", messages=Q, response_a="Paris.", response_b="Lyon."),
            PairItem(key="good-second", messages=Q, response_a="Lyon.", response_b="It is Paris."),
            PairItem(key="neither", messages=Q, response_a="Lyon.", response_b="Nice."),
        ]
    )
    assert [v.choice for v in verdicts] == ["a", "b", "na"]
    # a shown first: A (0.7) and " A" (0.05) are one label; renormalised over A, B, NA (mass 0.95).
    ab = verdicts[0].ab
    assert ab.first == pytest.approx(0.75 / 0.95) and ab.second == pytest.approx(0.15 / 0.95)
    assert ab.mass == pytest.approx(0.95)
    ba = verdicts[0].ba  # b (Lyon) shown first: the server answers B (= a)
    assert ba.second == pytest.approx(0.75 / 0.95)
    assert verdicts[0].confidence == pytest.approx((0.75 / 0.95 + 0.75 / 0.95) / 2)
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == 6  # one request per (pair, order)
    assert all(b["max_tokens"] == 1 and b["logprobs"] is True and b["top_logprobs"] == 20 for b in bodies)


def test_missing_labels_read_as_na():
    probs = label_probs_from_top_logprobs([{"token": "The", "logprob": math.log(0.9)}])
    assert probs.verdict() == "na" and probs.mass == 0


def test_transient_errors_are_retried_and_others_are_not(server):
    server.fail_next = 2
    client = ChatClient(server.url, "judge-model", backoff_s=0.01)
    assert client.chat(Q) == server.ranking("")  # empty ranking text after two 503s
    assert client.requests_sent == 3
    server.fail_next = 5
    with pytest.raises(JudgeError, match="503"):
        ChatClient(server.url, "judge-model", backoff_s=0.01, max_retries=2).chat(Q)
    assert server.fail_next == 2  # three attempts were made, then it gave up
    server.fail_next = 0
    refusing = ChatClient(server.url, "refuses", backoff_s=0.01)
    with pytest.raises(JudgeError, match="400"):
        refusing.chat(Q)
    assert refusing.requests_sent == 1


def test_unreachable_server_fails_after_retries():
    client = ChatClient("http://127.0.0.1:9/v1", "m", backoff_s=0.01, max_retries=1, timeout_s=2)
    with pytest.raises(JudgeError, match="unreachable"):
        client.chat(Q)
    assert client.requests_sent == 2


def test_api_key_comes_from_the_named_environment_variable(monkeypatch):
    with running_server(FakeOpenAI(api_key="s3cret")) as fake:
        with pytest.raises(JudgeError, match="CONCORD_TEST_KEY"):
            ChatClient(fake.url, "m", api_key_env="CONCORD_TEST_KEY")
        monkeypatch.setenv("CONCORD_TEST_KEY", "wrong")
        with pytest.raises(JudgeError, match="401"):
            ChatClient(fake.url, "m", api_key_env="CONCORD_TEST_KEY").chat(Q)
        monkeypatch.setenv("CONCORD_TEST_KEY", "s3cret")
        ref = ModelRef(kind="openai", model="m", endpoint=fake.url, api_key_env="CONCORD_TEST_KEY")
        verdict = pairwise_judge_for(ref, params={"concurrency": 1}).judge(
            [PairItem(key=1, messages=Q, response_a="Lyon", response_b="Paris")]
        )[0]
        assert verdict.choice == "b"
        assert {r["auth"] for r in fake.requests[-2:]} == {"Bearer s3cret"}


def test_listwise_ranker_sends_demonstrations_and_parses_the_answer(server):
    ranker = ListwiseRanker(HttpChat(ChatClient(server.url, "ranker"), concurrency=2))
    demo = Demonstration(
        messages=[{"role": "user", "content": "Best fruit?"}],
        candidates=["Apple.", "Mango, sweet."],
        ranking=[1, 0],
        key=7,
    )
    item = SetItem(key="s1", messages=Q, candidates=["Lyon.", "Paris, of course.", "Maybe Nice or Lyon."])
    (result,) = ranker.rank([(item, [demo])])
    assert result.error == "" and result.ranking == [1, 2, 0]
    assert result.meta == {"demonstrations": [7]}
    messages = server.requests[-1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "[2] > [1]"
    assert "[3]\nMaybe Nice or Lyon." in messages[3]["content"]


def test_listwise_unparseable_answer_is_an_error_not_a_guess(server):
    server.ranking_prefix = "I cannot decide."
    ranker = listwise_ranker_for(ModelRef(kind="openai", model="ranker-x", endpoint=server.url))
    item = SetItem(key="s", messages=Q, candidates=["a", "b", "c"])
    server.good_word = "zzz"
    # The fake writes "[3] > [2] > [1]" after the prefix; make it name a single candidate instead.
    server.ranking = lambda user: "I cannot decide, maybe [2]."
    (result,) = ranker.rank([(item, [])])
    assert result.ranking is None and "found 1 of 3" in result.error
    assert result.raw_output == "I cannot decide, maybe [2]."
