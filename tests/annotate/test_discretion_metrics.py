"""Discretion metrics against the paper's released HH-RLHF data (../shared/data/discretion-hh)."""

import csv

import numpy as np
import pytest

from annotate.metrics.discretion import (
    PairClass,
    class_shares,
    classify_pair,
    discretion_arbitrariness,
    discretion_discrepancy,
    preference_from_probs,
    principle_priority,
    principle_supremacy,
)
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA / "discretion-hh"


def load_principle_prefs() -> np.ndarray:
    path = DATA / "hh_test_seed_4ob.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent: the reference data lives in ../shared/data beside the clone")
    rows = list(csv.DictReader(path.open()))
    n_rows = 1 + max(int(r["row_id"]) for r in rows)
    n_principles = 1 + max(int(r["principle_id"]) for r in rows)
    prefs = np.full((n_rows, n_principles), np.nan)
    for r in rows:
        if r["order"] != "0":
            continue
        # Order 0 shows A = chosen = y1, so P_A > P_B means +1.
        prefs[int(r["row_id"]), int(r["principle_id"])] = preference_from_probs(
            float(r["prob_A"]), float(r["prob_B"]), float(r["prob_NA"])
        )
    return prefs


def test_category_shares_match_the_paper_exactly():
    shares = class_shares(load_principle_prefs())
    assert round(shares["consensus"] * 100, 1) == 50.7
    assert round(shares["conflict"] * 100, 1) == 16.3
    assert round(shares["indifference"] * 100, 1) == 33.0


def test_human_arbitrariness_on_hh_is_near_the_reported_29_percent():
    prefs = load_principle_prefs()
    human = np.ones(prefs.shape[0])  # HH-RLHF labels always prefer "chosen" (+1)
    result = discretion_arbitrariness(human, prefs, resamples=200)
    assert 0.2 < result["da"] < 0.4
    assert abs(result["mean"] - result["da"]) < 0.01 and result["sd"] > 0


def test_classification_by_hand():
    nan = float("nan")
    assert classify_pair(np.array([nan, nan])) == (PairClass.INDIFFERENCE, pytest.approx(nan, nan_ok=True))
    assert classify_pair(np.array([1.0, nan, 1.0]))[0] == PairClass.CONSENSUS
    assert classify_pair(np.array([-1.0, nan]))[1] == -1.0
    assert classify_pair(np.array([1.0, -1.0]))[0] == PairClass.CONFLICT
    assert np.isnan(preference_from_probs(0.2, 0.2, 0.1))
    assert np.isnan(preference_from_probs(0.3, 0.2, 0.5))
    assert preference_from_probs(0.2, 0.7, 0.1) == -1.0


def test_supremacy_priority_and_discrepancy_by_hand():
    # Principle 0 and 1 conflict on every pair; annotator a always sides with 0, b with 1.
    principles = np.array([[1.0, -1.0, np.nan], [-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, np.nan]])
    a = principles[:, 0].copy()
    b = principles[:, 1].copy()
    ps_a, n_a = principle_supremacy(a, principles)
    assert n_a[0, 1] == 4 and ps_a[0, 1] == 1.0 and ps_a[1, 0] == 0.0
    assert n_a[1, 2] == 0 or not np.isnan(ps_a[1, 2])
    np.testing.assert_allclose(ps_a[0, 2] + ps_a[2, 0], 1.0)
    w_a = principle_priority(ps_a, n_a)
    w_b = principle_priority(*principle_supremacy(b, principles))
    assert w_a[0] > w_a[1] and w_b[1] > w_b[0]
    assert discretion_discrepancy(w_a, w_a) == 0.0
    assert discretion_discrepancy(w_a, w_b) > 0.5
