"""Statistics of human ratings: means, preferences, rankings, agreement and correlation with metrics.

Every function here takes plain numbers and calls the field's libraries:
- mean rating with a standard error clustered by document (the cluster-robust "CR1" variance that
  statsmodels' `OLS(...).fit(cov_type="cluster")` gives for a mean; several raters of one document
  are not independent evidence);
- pairwise preference: the win rate with ties counted half, a Wilson score interval on the Kish
  effective sample size (so clustering widens it and ties narrow it), and a two-sided sign test on
  the documents (scipy `binomtest`; each document's raters vote, tied documents drop out);
- Bradley-Terry strengths for three or more models (`choix`);
- agreement: Cohen's kappa (sklearn) for two raters, Fleiss' kappa (statsmodels) for more, and
  Krippendorff's alpha (`krippendorff`), which handles missing ratings;
- Kendall's tau (scipy) with a seeded bootstrap percentile interval;
- Wilcoxon signed-rank (scipy) for paired ratings of two runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np
import pandas as pd

Z95 = 1.959963984540054
LOW_ALPHA = 0.667  # Krippendorff: below this, do not draw even tentative conclusions


def clustered_mean(values: Sequence[float], clusters: Sequence[Hashable]) -> tuple[float, float]:
    """The mean and its cluster-robust standard error, clusters = documents.

    SE^2 = G/(G-1) * sum_g (sum_{i in g} (y_i - mean))^2 / N^2: the CR1 variance of a regression on a
    constant (statsmodels' default small-sample correction, (N-1)/(N-K) = 1 for K = 1). With one rating
    per document this is the usual s / sqrt(N). NaN with fewer than two documents.
    """
    y = np.asarray(values, dtype=float)
    if len(y) == 0:
        return float("nan"), float("nan")
    mean = float(y.mean())
    codes = _codes(clusters)
    residual_sums = np.bincount(codes, weights=y - mean)
    g, n = len(residual_sums), len(y)
    if g < 2:
        return mean, float("nan")
    return mean, math.sqrt(g / (g - 1) * float((residual_sums ** 2).sum())) / n


def _codes(clusters: Sequence[Hashable]) -> np.ndarray:
    """0..G-1 per item, one code per distinct cluster."""
    if isinstance(clusters, np.ndarray) and clusters.dtype.kind in "iu":
        return np.unique(clusters, return_inverse=True)[1]
    return np.unique(np.array([str(c) for c in clusters]), return_inverse=True)[1]


@dataclass(frozen=True)
class Preference:
    """How often one run is preferred over another: wins + ties / 2 over ratings."""

    rate: float
    ci_low: float
    ci_high: float
    stderr: float
    wins: int
    losses: int
    ties: int
    n_docs: int
    doc_wins: int  # documents whose raters preferred this run (majority of the votes)
    doc_losses: int
    p_value: float  # two-sided sign test on doc_wins vs doc_losses

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {"n": self.n, **{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()}}


def preference(outcomes: Sequence[float], docs: Sequence[Hashable], level: float = 0.95) -> Preference:
    """Outcomes are 1 (this run preferred), 0.5 (tie) or 0 (the other run preferred), one per rating."""
    y = np.asarray(outcomes, dtype=float)
    if len(y) == 0 or not np.isin(y, (0.0, 0.5, 1.0)).all():
        raise ValueError("preference outcomes must be 0, 0.5 or 1, at least one")
    codes = _codes(docs)
    rate, low, high, se = preference_interval(y, codes, level)
    per_doc = np.bincount(codes, weights=y) / np.bincount(codes)
    doc_wins, doc_losses = int((per_doc > 0.5).sum()), int((per_doc < 0.5).sum())
    return Preference(rate=rate, ci_low=low, ci_high=high, stderr=se, wins=int((y == 1).sum()),
                      losses=int((y == 0).sum()), ties=int((y == 0.5).sum()), n_docs=len(per_doc),
                      doc_wins=doc_wins, doc_losses=doc_losses, p_value=sign_test(doc_wins, doc_losses))


def preference_interval(outcomes: np.ndarray, docs: Sequence[Hashable], level: float = 0.95) -> tuple[float, float, float, float]:
    """(win rate, CI low, CI high, clustered SE): a Wilson score interval on the Kish effective sample size
    n_eff = p(1 - p) / V, V the clustered variance of the mean without its G/(G-1) factor, capped at twice
    the number of ratings; with p = 0 or 1 (SE 0), n_eff is the number of documents. One rating per
    document and no ties: n_eff = n, the plain Wilson interval."""
    from statsmodels.stats.proportion import proportion_confint

    rate, se = clustered_mean(outcomes, docs)
    n_docs = len(np.unique(_codes(docs)))
    if rate in (0.0, 1.0) or not math.isfinite(se):
        n_eff = float(n_docs)
    elif se == 0:
        n_eff = 2.0 * len(outcomes)
    else:  # the variance without the small-sample factor G/(G-1): one rating per document gives n_eff = n exactly
        n_eff = min(rate * (1 - rate) / (se ** 2 * (n_docs - 1) / n_docs), 2.0 * len(outcomes))
    low, high = proportion_confint(rate * n_eff, n_eff, alpha=1 - level, method="wilson")
    return rate, float(low), float(high), se


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (binomial, p = 1/2) of wins against losses; ties are left out before."""
    from scipy.stats import binomtest

    return 1.0 if wins + losses == 0 else float(min(1.0, binomtest(wins, wins + losses, 0.5).pvalue))


@dataclass(frozen=True)
class BradleyTerry:
    names: list[str]
    strengths: list[float]  # log-strengths, mean 0: P(i beats j) = 1 / (1 + exp(s_j - s_i))
    regularized: bool  # True when the data cannot identify a maximum-likelihood fit (someone never lost)

    def ranking(self) -> list[tuple[str, float]]:
        return sorted(zip(self.names, self.strengths), key=lambda p: -p[1])


def bradley_terry(comparisons: Sequence[tuple[str, str, float]]) -> BradleyTerry:
    """Fit Bradley-Terry strengths from (a, b, outcome for a) with outcome 1, 0.5 (tie) or 0.

    A tie counts half a win each way: every comparison enters choix twice, so a tie is one win for
    each side and a win two for the winner (the likelihood of half-weights, scaled by 2: same fit).
    When the comparison graph is not strongly connected the maximum-likelihood fit does not exist and a
    small L2 penalty (alpha 0.01) is used instead.
    """
    import choix
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    names = sorted({n for a, b, _ in comparisons for n in (a, b)})
    index = {n: i for i, n in enumerate(names)}
    data: list[tuple[int, int]] = []
    for a, b, outcome in comparisons:
        i, j = index[a], index[b]
        wins_a = {1.0: 2, 0.5: 1, 0.0: 0}[float(outcome)]
        data += [(i, j)] * wins_a + [(j, i)] * (2 - wins_a)
    k = len(names)
    graph = csr_matrix((np.ones(len(data)), ([w for w, _ in data], [l for _, l in data])), shape=(k, k))
    strong = connected_components(graph, directed=True, connection="strong")[0] == 1
    params = choix.ilsr_pairwise(k, data, alpha=0.0 if strong else 0.01, max_iter=1000, tol=1e-10)
    params = params - params.mean()
    return BradleyTerry(names, [float(p) for p in params], regularized=not strong)


@dataclass(frozen=True)
class Agreement:
    n_items: int  # items rated by at least two raters
    n_raters: int
    kappa: float
    kappa_method: str  # "Cohen" (two raters), "Fleiss" (more, on items every rater rated), "" (not computable)
    alpha: float  # Krippendorff's alpha over every item with two or more ratings
    level: str  # "nominal" or "ordinal"

    @property
    def low(self) -> bool:
        return math.isfinite(self.alpha) and self.alpha < LOW_ALPHA

    def to_dict(self) -> dict[str, Any]:
        clean = lambda v: None if isinstance(v, float) and not math.isfinite(v) else v  # noqa: E731
        return {"n_items": self.n_items, "n_raters": self.n_raters, "kappa": clean(self.kappa),
                "kappa_method": self.kappa_method, "alpha": clean(self.alpha), "level": self.level, "low": self.low}


def agreement(ratings: pd.DataFrame, level: str) -> Agreement | None:
    """Agreement of a long frame (item, rater, value); None when no item has two raters.

    level "ordinal" (rating scales): quadratic-weighted Cohen's kappa and ordinal alpha; "nominal"
    (preferences): unweighted kappa and nominal alpha. Fleiss' kappa treats values as categories.
    """
    import krippendorff
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    wide = ratings.pivot_table(index="item", columns="rater", values="value", aggfunc="mean")
    wide = wide[wide.notna().sum(axis=1) >= 2]
    if wide.empty:
        return None
    raters = [r for r in wide.columns if wide[r].notna().any()]
    wide = wide[raters]
    values = np.unique(wide.to_numpy()[~np.isnan(wide.to_numpy())])
    codes = np.searchsorted(values, wide.dropna().to_numpy())  # categories 0..k-1 in value order
    kappa, method = float("nan"), ""
    if len(raters) == 2:
        if len(codes) >= 2 and len(values) > 1:
            kappa = float(cohen_kappa_score(codes[:, 0], codes[:, 1], weights="quadratic" if level == "ordinal" else None))
            method = "Cohen" + (" (quadratic weights)" if level == "ordinal" else "")
    elif len(codes) >= 2 and len(values) > 1:
        kappa, method = float(fleiss_kappa(aggregate_raters(codes, n_cat=len(values))[0])), "Fleiss"
    alpha = float("nan")
    if len(values) > 1:
        alpha = float(krippendorff.alpha(reliability_data=wide.to_numpy().T, level_of_measurement=level,
                                         value_domain=values))
    return Agreement(len(wide), len(raters), kappa, method, alpha, level)


@dataclass(frozen=True)
class Correlation:
    tau: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in ((k, getattr(self, k)) for k in self.__dataclass_fields__)}


def kendall(x: Sequence[float], y: Sequence[float], iterations: int = 1000, seed: int = 1234,
            level: float = 0.95) -> Correlation:
    """Kendall's tau-b (scipy) and a percentile bootstrap interval over the items, seeded."""
    from scipy.stats import bootstrap, kendalltau

    import warnings

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    nan = float("nan")
    if len(a) < 3 or len(np.unique(a)) < 2 or len(np.unique(b)) < 2:
        return Correlation(nan, nan, nan, nan, len(a))
    result = kendalltau(a, b)
    statistic = lambda u, v: kendalltau(u, v).statistic  # noqa: E731
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples of a few items can be constant (tau undefined)
        boot = bootstrap((a, b), statistic, paired=True, vectorized=False, n_resamples=iterations,
                         confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    low, high = boot.confidence_interval
    return Correlation(float(result.statistic), float(low), float(high), float(result.pvalue), len(a))


def wilcoxon(baseline: Sequence[float], candidate: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired ratings (zero differences dropped; 1 when all are zero)."""
    from scipy.stats import wilcoxon as scipy_wilcoxon

    d = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    if len(d) == 0 or np.all(d == 0):
        return 1.0
    return float(scipy_wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
