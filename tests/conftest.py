"""Shared fixtures. Services the tests need (PostgreSQL, Redis, chromium) are started by
.ci/services.sh, which `make test` runs first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.factories import MembershipFactory, ProjectFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
ARTIFACTS = Path(os.environ.get("CONCORD_TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def project(db):
    return ProjectFactory()


@pytest.fixture
def annotator(project):
    user = UserFactory()
    MembershipFactory(project=project, user=user)
    return user


@pytest.fixture
def manager(project):
    user = UserFactory()
    MembershipFactory(project=project, user=user, role="manager")
    return user


@pytest.fixture
def outsider(db):
    return UserFactory()


@pytest.fixture(scope="session")
def default_model_checkpoint(tmp_path_factory):
    """The real default model (SmolLM2-135M-Instruct), de-quantised once into the model cache."""
    from rankers.loading import default_model_ref, dequantised_checkpoint

    try:
        ref = default_model_ref()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return dequantised_checkpoint(ref)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, default_model_checkpoint):
    """A tiny random Llama model with the default model's tokenizer: for fast code-path tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(default_model_checkpoint)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
