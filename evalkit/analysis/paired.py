"""Paired significance tests between two checkpoints scored on the same documents.

Pairing is what makes these tests sensitive: both models see the same documents, so the
difficulty of each document cancels out of the difference. lm-eval only ships an unpaired z-test
from two standard errors (`unpaired_z_test`, kept here for comparison); it ignores that cancellation
and misses differences the paired tests find.

- accuracy-like metrics (a 0/1 outcome per document): the exact McNemar test, a two-sided
  binomial test on the discordant pairs (documents that exactly one model gets right);
- corpus metrics (BLEU, chrF, ROUGE, F1, perplexity): a paired bootstrap. Each resample draws n
  documents with replacement, the same draw for both models, and recomputes both corpus metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from ..metrics import Scorer
from ..metrics.base import CI_LEVEL, percentile_interval as percentile_ci  # noqa: F401  (one percentile rule for both)


@dataclass(frozen=True)
class McNemar:
    improved: int  # wrong in the baseline, right in the candidate
    worsened: int  # right in the baseline, wrong in the candidate
    p_value: float


def mcnemar_exact(baseline_correct: np.ndarray, candidate_correct: np.ndarray) -> McNemar:
    """Exact McNemar test on paired 0/1 outcomes; p = 1 when no document changed."""
    base = np.asarray(baseline_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    improved, worsened = int(np.sum(~base & cand)), int(np.sum(base & ~cand))
    discordant = improved + worsened
    p = 1.0 if discordant == 0 else float(binomtest(improved, discordant, 0.5, alternative="two-sided").pvalue)
    return McNemar(improved, worsened, min(1.0, p))


def paired_bootstrap(baseline: Scorer, candidate: Scorer, iterations: int, seed: int) -> dict[str, np.ndarray]:
    """Bootstrap distribution of candidate - baseline for each metric name, one shared draw per resample."""
    if baseline.n != candidate.n:
        raise ValueError(f"paired scorers need the same documents ({baseline.n} vs {candidate.n})")
    rng = np.random.default_rng(seed)
    deltas = {name: np.empty(iterations) for name in baseline.names}
    for i in range(iterations):
        idx = rng.integers(0, baseline.n, baseline.n)
        base, cand = baseline.score(idx), candidate.score(idx)
        for name in baseline.names:
            deltas[name][i] = cand[name] - base[name]
    return deltas


def bootstrap_p_value(deltas: np.ndarray, null: float = 0.0) -> float:
    """Two-sided p-value of "the difference is `null`" (default: no difference), by inverting the
    percentile interval: twice the share of resamples on the far side of `null` (with the usual +1
    correction). p < alpha about when the (1 - alpha) interval excludes `null`. Monotone transforms of
    a metric (bits per byte and byte perplexity) get the same p against 0. Identical runs give p = 1
    against 0. A non-zero `null` tests against a tolerance margin (the gate's non-inferiority test)."""
    if not np.all(np.isfinite(deltas)):
        return float("nan")
    far_side = min(np.sum(deltas <= null), np.sum(deltas >= null))
    return float(min(1.0, 2 * (far_side + 1) / (len(deltas) + 1)))


def adjust_p_values(p_values: list[float], method: str) -> list[float]:
    """p-values adjusted for multiple comparisons with statsmodels' `multipletests`: "holm" (family-wise
    error, any dependence), "bh" (Benjamini-Hochberg false discovery rate) or "none". Non-finite p-values
    stay NaN and are not counted in the family."""
    out = [float("nan")] * len(p_values)
    finite = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    if not finite:
        return out
    values = [p_values[i] for i in finite]
    if method != "none":
        from statsmodels.stats.multitest import multipletests

        values = list(multipletests(values, method={"holm": "holm", "bh": "fdr_bh"}[method])[1])
    for i, p in zip(finite, values):
        out[i] = float(p)
    return out


def unpaired_z_test(base_value: float, base_stderr: float, cand_value: float, cand_stderr: float) -> float:
    """lm-eval's comparison: a two-sided z-test from two independent standard errors."""
    se = math.hypot(base_stderr, cand_stderr)
    if se == 0:
        return 1.0 if cand_value == base_value else 0.0
    z = (cand_value - base_value) / se
    return math.erfc(abs(z) / math.sqrt(2))
