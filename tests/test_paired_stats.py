"""The paired tests themselves: checked against hand computations and by simulation under the null."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from evalkit.metrics import build_scorer
from evalkit.analysis.paired import bootstrap_p_value, mcnemar_exact, paired_bootstrap, percentile_ci, unpaired_z_test


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided sign test at 1/2, by hand: 2 * P(X <= min(k, n-k)), capped at 1."""
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("improved,worsened", [(0, 0), (1, 0), (0, 7), (3, 9), (25, 5), (40, 41), (12, 30)])
def test_mcnemar_matches_a_hand_computed_binomial(improved, worsened):
    both_right, both_wrong = 50, 20
    base = np.array([1] * both_right + [0] * both_wrong + [0] * improved + [1] * worsened, dtype=bool)
    cand = np.array([1] * both_right + [0] * both_wrong + [1] * improved + [0] * worsened, dtype=bool)
    test = mcnemar_exact(base, cand)
    assert (test.improved, test.worsened) == (improved, worsened)
    expected = 1.0 if improved + worsened == 0 else binomial_two_sided(improved, improved + worsened)
    assert test.p_value == pytest.approx(expected, rel=1e-9)


def test_concordant_documents_do_not_change_mcnemar():
    base = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 3, dtype=bool)
    cand = base.copy()
    cand[:4] = ~cand[:4]
    p = mcnemar_exact(base, cand).p_value
    padded = mcnemar_exact(np.r_[base, np.ones(500, bool)], np.r_[cand, np.ones(500, bool)]).p_value
    assert p == padded


def test_unpaired_z_test_matches_scipy():
    for base, se1, cand, se2 in [(0.70, 0.0145, 0.72, 0.0142), (3.1, 0.05, 2.9, 0.06), (0.5, 0.1, 0.5, 0.1)]:
        z = (cand - base) / math.hypot(se1, se2)
        assert unpaired_z_test(base, se1, cand, se2) == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)


def _ppl_records(loglik: np.ndarray, words: np.ndarray) -> list[dict]:
    return [{"loglikelihood": float(ll), "words": int(w), "bytes": int(5 * w), "tokens": int(1.3 * w)}
            for ll, w in zip(loglik, words)]


def _ppl_pair(rng: np.random.Generator, n: int, shift: float = 0.0):
    """Two models' per-document log-likelihoods: shared document difficulty, independent noise."""
    words = rng.integers(50, 500, n)
    difficulty = rng.uniform(2.0, 4.0, n)
    base = -words * (difficulty + rng.normal(0, 0.3, n))
    cand = -words * (difficulty - shift + rng.normal(0, 0.3, n))
    return build_scorer("perplexity", {}, _ppl_records(base, words)), build_scorer("perplexity", {}, _ppl_records(cand, words))


def test_identical_scores_give_p_one_and_a_zero_interval():
    rng = np.random.default_rng(0)
    b, _ = _ppl_pair(rng, 30)
    deltas = paired_bootstrap(b, b, 300, seed=1)
    for name in b.names:
        assert bootstrap_p_value(deltas[name]) == 1.0
        assert percentile_ci(deltas[name]) == (0.0, 0.0)


def test_paired_bootstrap_uses_the_same_documents_for_both_models():
    """With candidate = baseline + constant per document, every resample's delta is that constant."""
    records = [{"loglikelihood": -100.0 - i, "words": 20, "bytes": 100, "tokens": 25} for i in range(40)]
    shifted = [{**r, "loglikelihood": r["loglikelihood"] + 5.0} for r in records]
    b, c = build_scorer("perplexity", {}, records), build_scorer("perplexity", {}, shifted)
    deltas = paired_bootstrap(b, c, 200, seed=3)["bits_per_byte"]
    assert np.allclose(deltas, -5.0 / 100 / math.log(2))


def test_mcnemar_rejection_rate_under_the_null():
    """1000 simulated comparisons of two equally good models (per-document difficulty, independent answers)."""
    rng = np.random.default_rng(2024)
    rejections = 0
    runs = 1000
    for _ in range(runs):
        p_right = rng.beta(3, 1.5, 200)
        rejections += mcnemar_exact(rng.random(200) < p_right, rng.random(200) < p_right).p_value < 0.05
    rate = rejections / runs
    print(f"McNemar null rejection rate at alpha 0.05: {rate:.3f} over {runs} comparisons of 200 documents")
    assert 0.02 <= rate <= 0.09


def test_paired_bootstrap_rejection_rate_under_the_null():
    """300 simulated perplexity comparisons with no true difference, 40 documents each."""
    rng = np.random.default_rng(99)
    rejections = 0
    runs = 300
    for seed in range(runs):
        b, c = _ppl_pair(rng, 40)
        rejections += bootstrap_p_value(paired_bootstrap(b, c, 300, seed)["bits_per_byte"]) < 0.05
    rate = rejections / runs
    print(f"paired bootstrap null rejection rate at alpha 0.05: {rate:.3f} over {runs} comparisons of 40 documents")
    assert 0.02 <= rate <= 0.09


def test_paired_bootstrap_finds_a_small_true_shift_and_its_sign():
    rng = np.random.default_rng(5)
    b, c = _ppl_pair(rng, 40, shift=0.3)  # candidate 0.3 nats/word better, noise sd 0.3 per document
    deltas = paired_bootstrap(b, c, 500, seed=0)["bits_per_byte"]
    assert bootstrap_p_value(deltas) < 0.01
    low, high = percentile_ci(deltas)
    assert low < high < 0
