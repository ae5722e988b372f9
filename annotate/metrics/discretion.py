"""Alignment discretion (Buyl et al., FAccT 2025), methods.md section 6.

Preferences are coded +1 (y1 preferred), -1 (y0 preferred), 0 (inconsistent) and NaN (no verdict).
Principles' preferences come from a per-principle oracle judge; annotators may be people or judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.optimize import minimize
from scipy.stats import kendalltau


class PairClass(StrEnum):
    CONSENSUS = "consensus"
    CONFLICT = "conflict"
    INDIFFERENCE = "indifference"


def preference_from_probs(p_a: float, p_b: float, p_na: float) -> float:
    """sign(P_A - P_B) in the presentation's terms; NaN when P_A == P_B or P_NA is the largest."""
    if p_a == p_b or p_na > max(p_a, p_b):
        return float("nan")
    return 1.0 if p_a > p_b else -1.0


def classify_pair(principle_prefs: np.ndarray) -> tuple[PairClass, float]:
    """Classify one pair by its principles' preferences; return the class and the consensus sign."""
    strict = principle_prefs[~np.isnan(principle_prefs)]
    strict = strict[strict != 0]
    if strict.size == 0:
        return PairClass.INDIFFERENCE, float("nan")
    if (strict > 0).any() and (strict < 0).any():
        return PairClass.CONFLICT, float("nan")
    return PairClass.CONSENSUS, float(np.sign(strict[0]))


def classify_pairs(principle_prefs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised classify_pair over a (pairs x principles) matrix: (classes, consensus signs)."""
    prefs = np.where(np.isnan(principle_prefs), 0.0, principle_prefs)
    has_pos = (prefs > 0).any(axis=1)
    has_neg = (prefs < 0).any(axis=1)
    classes = np.where(
        has_pos & has_neg,
        PairClass.CONFLICT.value,
        np.where(has_pos | has_neg, PairClass.CONSENSUS.value, PairClass.INDIFFERENCE.value),
    )
    sign = np.where(classes == PairClass.CONSENSUS.value, np.where(has_pos, 1.0, -1.0), np.nan)
    return classes, sign


def class_shares(principle_prefs: np.ndarray) -> dict[str, float]:
    classes, _ = classify_pairs(principle_prefs)
    return {c.value: float(np.mean(classes == c.value)) for c in PairClass}


def _strict(a: np.ndarray) -> np.ndarray:
    return ~np.isnan(a) & (a != 0)


def discretion_arbitrariness(
    annotator_prefs: np.ndarray, principle_prefs: np.ndarray, *, resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Share of consensus pairs with a strict annotator preference that contradicts the consensus.

    Returns the point estimate, and the bootstrap mean and SD over resampled consensus pairs.
    """
    classes, sign = classify_pairs(principle_prefs)
    mask = (classes == PairClass.CONSENSUS.value) & _strict(annotator_prefs)
    contradicts = (annotator_prefs[mask] * sign[mask]) < 0
    if contradicts.size == 0:
        return {"da": float("nan"), "mean": float("nan"), "sd": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    boot = rng.choice(contradicts, size=(resamples, contradicts.size), replace=True).mean(axis=1)
    return {
        "da": float(contradicts.mean()),
        "mean": float(boot.mean()),
        "sd": float(boot.std(ddof=1)),
        "n": int(contradicts.size),
    }


def principle_supremacy(annotator_prefs: np.ndarray, principle_prefs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PS[c, c'] (share of conflicts between c and c' that the annotator settles c's way) and N[c, c']."""
    n_principles = principle_prefs.shape[1]
    strict_a = _strict(annotator_prefs)
    p = np.where(np.isnan(principle_prefs), 0.0, principle_prefs)
    ps = np.full((n_principles, n_principles), np.nan)
    counts = np.zeros((n_principles, n_principles), dtype=int)
    for c in range(n_principles):
        for d in range(n_principles):
            if c == d:
                continue
            k = strict_a & (p[:, c] * p[:, d] < 0)
            counts[c, d] = int(k.sum())
            if counts[c, d]:
                ps[c, d] = float(np.mean(p[k, c] * annotator_prefs[k] > 0))
    return ps, counts


def principle_priority(ps: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Bradley-Terry scores w* from PS and N (weighted BCE); only their ranks are meaningful.

    Principles that win (lose) all their conflicts are ranked first (last) outside the fit.
    Principles without any conflict get the median score.
    """
    n = ps.shape[0]
    won = np.nansum(np.where(counts > 0, ps * counts, 0.0), axis=1)
    total = counts.sum(axis=1)
    always_win = (total > 0) & np.isclose(won, total)
    always_lose = (total > 0) & np.isclose(won, 0)
    fit = ~(always_win | always_lose)
    idx = np.flatnonzero(fit)
    w = np.zeros(n)
    if idx.size > 1:
        sub_ps = np.nan_to_num(ps[np.ix_(idx, idx)])
        sub_n = counts[np.ix_(idx, idx)].astype(float)

        def loss(x: np.ndarray) -> float:
            diff = x[:, None] - x[None, :]
            log_p = -np.logaddexp(0.0, -diff)
            log_q = -np.logaddexp(0.0, diff)
            return float(-(sub_n * (sub_ps * log_p + (1 - sub_ps) * log_q)).sum() + 1e-6 * (x**2).sum())

        w[idx] = minimize(loss, np.zeros(idx.size), method="L-BFGS-B").x
    span = (np.abs(w).max() if w.any() else 0.0) + 1.0
    w[always_win] = span + 1.0
    w[always_lose] = -span - 1.0
    return w


def discretion_discrepancy(w_a: np.ndarray, w_b: np.ndarray) -> float:
    """(1 - Kendall tau-b of the two priority rankings) / 2, in [0, 1]."""
    tau = kendalltau(w_a, w_b, variant="b").statistic
    return float((1 - tau) / 2) if not np.isnan(tau) else float("nan")


@dataclass
class DiscretionReport:
    shares: dict[str, float]
    arbitrariness: dict[str, float]
    priority: list[float]
