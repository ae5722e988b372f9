"""The local logit judge and the white-box scorer against hand computations on a tiny model."""

from __future__ import annotations

import pytest
import torch

from rankers.judges import (
    LabelProbs,
    LikelihoodScorer,
    LogitJudge,
    PairItem,
    PairwiseJudge,
    ScoreItem,
    combine_orders,
    parse_verdict,
)
from rankers.judges.local import prefix_tree_levels, tokens_computed
from rankers.loading import load_model
from rankers.types import ModelRef

LONG = (
    "Plan the week by listing fixed commitments first, then the tasks with deadlines, then everything else, "
    "and leave one free evening for rest."
)


@pytest.fixture(scope="module")
def tiny_ref(tiny_model_dir):
    return ModelRef(kind="transformers", model=str(tiny_model_dir), device="cpu")


def _items() -> list[PairItem]:
    question = [{"role": "user", "content": "How should I plan a busy week with work, study and family?"}]
    other = [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one, and why?"},
    ]
    return [
        PairItem(key=1, messages=question, response_a=LONG, response_b="Just wing it."),
        PairItem(key=2, messages=question, response_a=LONG, response_b=LONG + " Also sleep well."),
        PairItem(key=3, messages=question, response_a="Just wing it.", response_b=LONG + " Also sleep well."),
        PairItem(key=4, messages=other, response_a="Green, like grass.", response_b="Red.", principle="Be concise"),
    ]


def _by_hand(loaded, conversation) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition: one unpadded forward pass, softmax over the first tokens of A, B, NA."""
    tok, model = loaded.tokenizer, loaded.model
    text = tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    label_ids = [tok.encode(label, add_special_tokens=False)[0] for label in ("A", "B", "NA")]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    return logits[label_ids].softmax(-1), logits.softmax(-1)[label_ids].sum()


@pytest.mark.parametrize("share_prefix", [True, False])
def test_logit_judge_matches_hand_computation(tiny_ref, share_prefix):
    judge = LogitJudge(tiny_ref, batch_size=3, share_prefix=share_prefix)  # 8 sequences: several batches
    items = _items()
    verdicts = judge.judge(items)
    loaded = load_model(tiny_ref)
    assert [v.key for v in verdicts] == [1, 2, 3, 4]
    for item, verdict in zip(items, verdicts, strict=True):
        orders = ((item.response_a, item.response_b, verdict.ab), (item.response_b, item.response_a, verdict.ba))
        for first, second, got in orders:
            expected, mass = _by_hand(loaded, judge.prompt.messages(item.messages, first, second, item.principle))
            assert got.first == pytest.approx(float(expected[0]), abs=1e-5)
            assert got.second == pytest.approx(float(expected[1]), abs=1e-5)
            assert got.na == pytest.approx(float(expected[2]), abs=1e-5)
            assert got.mass == pytest.approx(float(mass), abs=1e-5)
        assert verdict.p_a == pytest.approx((verdict.ab.first + verdict.ba.second) / 2)
        assert verdict.p_b == pytest.approx((verdict.ab.second + verdict.ba.first) / 2)


def test_prefix_sharing_really_shares(tiny_ref):
    judge = LogitJudge(tiny_ref)
    seqs = judge.encode_conversations(judge.conversations(_items()[:3]))
    assert tokens_computed(seqs) < 0.7 * sum(len(s) for s in seqs)
    assert tokens_computed(seqs, min_shared=float("inf")) == sum(len(s) for s in seqs)


def test_prefix_tree_on_hand_made_sequences():
    seqs = [[1] * 40 + [2, 3], [1] * 40 + [2, 4], [1] * 40 + [5], [7, 8], [1] * 40 + [2, 3]]
    levels = prefix_tree_levels(seqs, min_shared=32)
    roots = levels[0]
    assert sorted(len(n.tokens) for n in roots) == [2, 40]
    shared = next(n for n in roots if len(n.tokens) == 40)
    # "[2]" is too short to be a level of its own: pushed down into its children.
    assert sorted(tuple(c.tokens) for c in shared.children) == [(2, 3), (2, 4), (5,)]
    duplicate = next(c for c in shared.children if c.tokens == [2, 3])
    assert sorted(duplicate.ends) == [0, 4]  # identical sequences are computed once
    assert tokens_computed(seqs) == 40 + 2 + 2 + 2 + 1


def test_a_judge_that_always_answers_a_is_inconsistent_and_gives_no_label():
    class AlwaysA(PairwiseJudge):
        def order_probs(self, conversations):
            return [LabelProbs(first=0.9, second=0.05, na=0.05) for _ in conversations]

    verdicts = AlwaysA().judge(_items())
    assert all(v.choice == "inconsistent" and not v.consistent for v in verdicts)
    assert all(v.order_choices == ("a", "b") for v in verdicts)
    assert all(v.p_a == pytest.approx(0.475) and v.p_b == pytest.approx(0.475) for v in verdicts)


@pytest.mark.parametrize(
    ("ab", "ba", "choice", "confidence"),
    [
        ((0.8, 0.1, 0.1), (0.2, 0.7, 0.1), "a", 0.75),  # a first: A; b first: B (= a) -> a
        ((0.1, 0.8, 0.1), (0.6, 0.3, 0.1), "b", 0.7),
        ((0.2, 0.2, 0.6), (0.1, 0.2, 0.7), "na", 0.65),  # P(NA) largest in both orders
        ((0.4, 0.4, 0.2), (0.5, 0.3, 0.2), "inconsistent", 0.45),  # tie (NA) vs b
        ((0.5, 0.3, 0.2), (0.3, 0.5, 0.2), "a", 0.5),
    ],
)
def test_order_combination(ab, ba, choice, confidence):
    verdict = combine_orders("k", LabelProbs(*ab), LabelProbs(*ba))
    assert verdict.choice == choice
    assert verdict.confidence == pytest.approx(confidence)
    assert set(verdict.probabilities_json()) == {"ab", "ba", "order_choices", "debiased"}


def test_likelihood_scores_match_hand_computation(tiny_ref):
    scorer = LikelihoodScorer(tiny_ref, batch_size=2)
    conversation = [{"role": "user", "content": "Say something kind."}]
    items = [
        ScoreItem(key="long", messages=conversation, response=LONG),
        ScoreItem(key="short", messages=conversation, response="You matter."),
        ScoreItem(key="other", messages=[{"role": "user", "content": "Hi"}], response="Hello there, friend."),
    ]
    scores = scorer.score(items)
    loaded = load_model(tiny_ref)
    tok, model = loaded.tokenizer, loaded.model
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for item, score in zip(items, scores, strict=True):
        prompt = tok(
            tok.apply_chat_template(item.messages, tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        ).input_ids
        response = [*tok(item.response, add_special_tokens=False).input_ids, end]
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([prompt + response])).logits[0].double().log_softmax(-1)
        by_hand = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(response))
        assert score.key == item.key and score.n_tokens == len(response)
        assert score.sum_logprob == pytest.approx(by_hand, abs=1e-5)
        assert score.mean_logprob == pytest.approx(by_hand / len(response), abs=1e-6)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Response A is clearer.\n[[A]]", "A"),
        ("Both are off-topic. [[NA]]", "NA"),
        ("I first thought [[A]] but no: [[B]]", "B"),
        ("Verdict: B", "B"),
        ("I like both.", None),
    ],
)
def test_written_verdicts_are_parsed(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.model
def test_default_model_is_at_chance_as_an_ab_judge(default_model_checkpoint):
    """Measured fact (setup-notes.md): SmolLM2-135M answers "A" whatever the order."""
    judge = LogitJudge(ModelRef(kind="transformers", model=str(default_model_checkpoint), device="cpu"))
    q = [{"role": "user", "content": "What is the capital of France?"}]
    verdicts = judge.judge(
        [
            PairItem(key=1, messages=q, response_a="Paris is the capital of France.", response_b="Bananas."),
            PairItem(key=2, messages=q, response_a="Bananas.", response_b="Paris is the capital of France."),
        ]
    )
    assert all(v.ab.verdict() == "first" and v.ba.verdict() == "first" for v in verdicts)
    assert all(v.choice == "inconsistent" for v in verdicts)


def test_batches_keep_prefix_sharing_clusters_together(tiny_ref):
    judge = LogitJudge(tiny_ref, batch_size=16)
    # Three "candidate sets" of 12 sequences each: one shared 40-token head per set.
    seqs = [[s] * 40 + [100 + i, 7, 8] for s in (1, 2, 3) for i in range(12)]
    batches = judge.batches(seqs)
    assert [len(b) for b in batches] == [12, 12, 12]
    assert all(len({seqs[i][0] for i in b}) == 1 for b in batches)
    # A cluster bigger than a batch is split; shorter clusters come first.
    big = [[9] * 40 + [i] for i in range(20)] + [[5] * 10]
    assert [len(b) for b in judge.batches(big)] == [16, 5]  # a split cluster fills the batch up
    flat = LogitJudge(tiny_ref, batch_size=16, share_prefix=False)
    assert [len(b) for b in flat.batches(seqs)] == [16, 16, 4]
