"""The statistics of human ratings against the reference libraries and hand computations on small fixed
inputs, and the coverage of the preference interval on simulated raters with a known preference rate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evalkit.analysis.human_stats import (
    agreement, bradley_terry, clustered_mean, kendall, preference, preference_interval, sign_test, wilcoxon,
)


def test_clustered_mean_matches_statsmodels_cluster_robust_se():
    import statsmodels.api as sm

    y = np.array([4, 5, 3, 3, 2, 5, 4, 4, 1, 2, 5], dtype=float)
    docs = ["d1", "d1", "d2", "d2", "d2", "d3", "d4", "d4", "d5", "d6", "d6"]
    mean, se = clustered_mean(y, docs)
    fit = sm.OLS(y, np.ones(len(y))).fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(pd.Series(docs))[0]})
    assert mean == pytest.approx(fit.params[0]) and se == pytest.approx(fit.bse[0], rel=1e-12)
    # one rating per document: the plain standard error of the mean, s / sqrt(n)
    y1 = np.array([1.0, 2.0, 4.0, 5.0])
    assert clustered_mean(y1, range(4))[1] == pytest.approx(y1.std(ddof=1) / 2)
    # clustering matters: the same values with the raters of a document agreeing give a larger SE
    naive = clustered_mean(y, range(len(y)))[1]
    agreeing = clustered_mean([4, 4, 2, 2, 2, 5, 5, 5, 1, 2, 2], docs)[1]
    assert agreeing > naive
    assert math.isnan(clustered_mean([3, 4], ["d", "d"])[1])


def test_preference_counts_ties_half_and_sign_tests_documents():
    # 8 documents, one rating each: 5 wins, 1 tie, 2 losses
    p = preference([1, 1, 0.5, 0, 1, 1, 0, 1], list("abcdefgh"))
    assert (p.wins, p.ties, p.losses, p.n, p.n_docs) == (5, 1, 2, 8, 8)
    assert p.rate == pytest.approx(5.5 / 8)
    # sign test by hand: 5 document wins vs 2 losses (the tie drops out): 2 * (C(7,0)+C(7,1)+C(7,2)) / 2^7
    assert p.p_value == pytest.approx(2 * (1 + 7 + 21) / 128)
    assert p.ci_low < p.rate < p.ci_high and 0 <= p.ci_low and p.ci_high <= 1
    # several raters on a document vote: doc x has 2 wins and 1 loss (a win), doc y 1 win 1 loss (a tie)
    q = preference([1, 1, 0, 1, 0, 0, 0], ["x", "x", "x", "y", "y", "z", "w"])
    assert (q.doc_wins, q.doc_losses, q.n_docs) == (1, 2, 4)
    from scipy.stats import binomtest

    assert q.p_value == pytest.approx(binomtest(1, 3, 0.5).pvalue)
    # one rating per document without ties: exactly the Wilson interval of wins out of n
    from statsmodels.stats.proportion import proportion_confint

    plain = preference([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], range(10))
    assert (plain.ci_low, plain.ci_high) == pytest.approx(proportion_confint(7, 10, method="wilson"))
    # all wins: the interval is the Wilson interval on the number of documents, and stays inside [0, 1]

    allwin = preference([1] * 10, range(10))
    assert (allwin.ci_low, allwin.ci_high) == pytest.approx(proportion_confint(10, 10, method="wilson"))
    with pytest.raises(ValueError):
        preference([1, 0.3], ["a", "b"])


def test_sign_test_by_hand():
    assert sign_test(9, 1) == pytest.approx(2 * (1 + 10) / 1024)
    assert sign_test(0, 0) == 1.0 and sign_test(3, 3) == 1.0


def test_bradley_terry_two_models_by_hand():
    # A beats B 3 times and loses once: the MLE of s_A - s_B is log(3/1)
    bt = bradley_terry([("A", "B", 1), ("A", "B", 1), ("B", "A", 0), ("A", "B", 0)])
    s = dict(zip(bt.names, bt.strengths))
    assert s["A"] - s["B"] == pytest.approx(math.log(3), abs=1e-6) and not bt.regularized
    # a tie is half a win each way: 2 wins, 1 loss, 1 tie -> log(2.5 / 1.5)
    bt = bradley_terry([("A", "B", 1), ("A", "B", 1), ("A", "B", 0), ("B", "A", 0.5)])
    s = dict(zip(bt.names, bt.strengths))
    assert s["A"] - s["B"] == pytest.approx(math.log(2.5 / 1.5), abs=1e-6)


def test_bradley_terry_matches_a_logistic_regression_fit():
    """Three and four models: the choix fit equals the maximum-likelihood logistic regression (statsmodels GLM)."""
    import statsmodels.api as sm

    rng = np.random.default_rng(7)
    names = ["m0", "m1", "m2", "m3"]
    true = np.array([0.8, 0.2, -0.3, -0.7])
    comparisons = []
    for _ in range(240):
        i, j = rng.choice(4, size=2, replace=False)
        p = 1 / (1 + math.exp(true[j] - true[i]))
        u = rng.random()
        comparisons.append((names[i], names[j], 0.5 if abs(u - p) < 0.05 else float(u < p)))
    bt = bradley_terry(comparisons)
    X = np.zeros((len(comparisons), 4))
    for row, (a, b, _) in enumerate(comparisons):
        X[row, names.index(a)], X[row, names.index(b)] = 1, -1
    y = np.array([c[2] for c in comparisons])
    fit = sm.GLM(y, X[:, 1:], family=sm.families.Binomial()).fit()  # m0 is the reference (strength 0)
    reference = np.concatenate([[0.0], fit.params])
    reference -= reference.mean()
    assert bt.names == names and not bt.regularized
    np.testing.assert_allclose(bt.strengths, reference, atol=1e-5)
    assert [n for n, _ in bt.ranking()] == names  # the simulated order is recovered


def test_bradley_terry_regularizes_when_a_model_never_loses():
    bt = bradley_terry([("A", "B", 1), ("B", "C", 1), ("A", "C", 1)])
    assert bt.regularized and [n for n, _ in bt.ranking()] == ["A", "B", "C"]
    assert all(math.isfinite(s) for s in bt.strengths)


def _long(matrix: list[list]) -> pd.DataFrame:
    """raters x items (None = not rated) as the long frame `agreement` takes."""
    rows = [(item, f"r{r}", v) for r, values in enumerate(matrix) for item, v in enumerate(values) if v is not None]
    return pd.DataFrame(rows, columns=["item", "rater", "value"])


def test_cohen_kappa_by_hand_and_sklearn():
    from sklearn.metrics import cohen_kappa_score

    a = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    b = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    # by hand: observed agreement 7/10; chance = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = (0.7-0.5)/(1-0.5) = 0.4
    found = agreement(_long([a, b]), "nominal")
    assert found.kappa == pytest.approx(0.4) and found.kappa == pytest.approx(cohen_kappa_score(a, b))
    assert found.kappa_method == "Cohen" and found.n_items == 10 and found.n_raters == 2 and found.low
    x, y = [1, 2, 3, 4, 5, 5, 3, 2], [1, 2, 4, 4, 5, 4, 3, 1]
    ordinal = agreement(_long([x, y]), "ordinal")
    assert ordinal.kappa == pytest.approx(cohen_kappa_score(x, y, weights="quadratic"))


def test_krippendorff_alpha_on_krippendorffs_own_example():
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: nominal alpha = 0.743."""
    import krippendorff

    n = None
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
            [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    found = agreement(_long(data), "nominal")
    assert round(found.alpha, 3) == 0.743 and found.n_items == 11  # item 12 has one rating: not pairable
    reference = krippendorff.alpha(np.array(data, dtype=float), level_of_measurement="nominal")
    assert found.alpha == pytest.approx(reference)
    assert not found.low


def test_fleiss_kappa_by_hand_and_statsmodels():
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    data = [[1, 1, 2, 2, 1], [1, 2, 2, 2, 1], [1, 1, 2, 1, 2]]  # 3 raters x 5 items, categories 1/2
    # by hand: per item agreement P_i = (sum n_ij^2 - 3) / 6; items split (3,0),(2,1),(0,3),(1,2),(2,1) as (1s, 2s)
    p_bar = (1 + 1 / 3 + 1 + 1 / 3 + 1 / 3) / 5
    ones = (3 + 2 + 0 + 1 + 2) / 15
    p_e = ones ** 2 + (1 - ones) ** 2  # 113/225: kappa = (0.6 - 113/225) / (1 - 113/225) = 0.1964
    assert (p_bar - p_e) / (1 - p_e) == pytest.approx(0.19643, abs=1e-5)
    found = agreement(_long(data), "nominal")
    assert found.kappa_method == "Fleiss" and found.kappa == pytest.approx((p_bar - p_e) / (1 - p_e))
    assert found.kappa == pytest.approx(fleiss_kappa(aggregate_raters(np.array(data).T)[0]))


def test_no_agreement_without_two_raters_on_an_item():
    assert agreement(_long([[1, 2, None], [None, None, 3]]), "ordinal") is None


def test_kendall_tau_by_hand_with_bootstrap_interval():
    from scipy.stats import kendalltau

    x, y = [1, 2, 3, 4, 5], [1, 3, 2, 5, 4]
    c = kendall(x, y)
    assert c.tau == pytest.approx((8 - 2) / 10)  # 8 concordant, 2 discordant pairs of 10
    assert c.p_value == pytest.approx(kendalltau(x, y).pvalue) and c.n == 5
    rng = np.random.default_rng(3)
    a = rng.normal(size=60)
    b = a + rng.normal(size=60)
    c = kendall(a, b, seed=5)
    assert c.ci_low < c.tau < c.ci_high and c.ci_low > 0 and kendall(a, b, seed=5) == c
    assert math.isnan(kendall([1, 1, 1, 1], [1, 2, 3, 4]).tau)


def test_wilcoxon_by_hand():
    # differences 1, 2, -3, 4, 5: W- = 3; exact two-sided p = 2 * #{subsets of 1..5 with sum <= 3} / 2^5 = 2 * 5/32
    assert wilcoxon([0, 0, 3, 0, 0], [1, 2, 0, 4, 5]) == pytest.approx(0.3125)
    assert wilcoxon([1, 2], [1, 2]) == 1.0


def _simulate(n_docs: int, raters: int, mean_win: float, tie: float, spread: float, rng: np.random.Generator):
    """Each document has its own chance q_d (Beta around mean_win) that a rater prefers run A when not tying."""
    if spread:
        a = mean_win * (1 / spread - 1)
        q = rng.beta(a, (1 - mean_win) * (1 / spread - 1), size=n_docs)
    else:
        q = np.full(n_docs, mean_win)
    u = rng.random((n_docs, raters))
    outcomes = np.where(u < tie, 0.5, (u < tie + (1 - tie) * q[:, None]).astype(float))
    return outcomes.ravel(), np.repeat(np.arange(n_docs), raters)


@pytest.mark.parametrize("n_docs,raters,mean_win,tie,spread", [
    (30, 1, 0.7, 0.0, 0.0),    # one rater, no ties: the plain Wilson setting
    (40, 1, 0.6, 0.25, 0.0),   # ties counted half
    (30, 2, 0.65, 0.1, 0.3),   # two raters per document who agree more than chance: clustering
    (50, 3, 0.85, 0.1, 0.2),   # near the edge, three raters
])
def test_preference_interval_covers_the_true_rate(n_docs, raters, mean_win, tie, spread):
    rng = np.random.default_rng(20261130)
    truth = (1 - tie) * mean_win + tie / 2
    sims = 1000
    covered = 0
    for _ in range(sims):
        outcomes, docs = _simulate(n_docs, raters, mean_win, tie, spread, rng)
        _rate, low, high, _se = preference_interval(outcomes, docs)
        covered += low <= truth <= high
    coverage = covered / sims
    print(f"\npreference CI coverage, {n_docs} docs x {raters} rater(s), true rate {truth:.3f}, ties {tie}: "
          f"{coverage:.3f} ({sims} simulations, nominal 0.95)")
    assert 0.925 <= coverage <= 0.975  # nominal 0.95 within about 3.5 simulation standard errors
