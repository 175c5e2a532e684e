"""A pytest helper for guarding checkpoints: fail a test when a candidate run regressed.

    from evalkit.testing import assert_no_regression

    def test_new_checkpoint_is_not_worse(candidate_run):
        assert_no_regression("results/baseline", candidate_run, accuracy=0.01, bits_per_byte="2%")
"""

from __future__ import annotations

import os

from .analysis.compare import Comparison, compare_runs, format_comparison
from .errors import EvalkitError


def assert_no_regression(baseline: str | os.PathLike, candidate: str | os.PathLike, *, alpha: float = 0.05,
                         iterations: int = 1000, seed: int = 1234, adjust: str = "holm", allow_untestable: bool = False,
                         **tolerances: float | str) -> Comparison:
    """Raise AssertionError (with the comparison table) when a metric regressed beyond its tolerance.

    tolerances: metric=amount, or "task/metric": amount via **{...}; an amount is absolute (0.01) or
    relative to the baseline value ("2%"). Runs that cannot be compared fail too, and so does a metric
    that cannot be tested (non-finite values) unless allow_untestable. adjust: "holm" (default), "bh"
    or "none", the p-value adjustment over the compared rows. Returns the comparison.
    """
    try:
        comparison = compare_runs(baseline, candidate, alpha=alpha, tolerances=tolerances, iterations=iterations, seed=seed,
                                  adjust=adjust, allow_untestable=allow_untestable)
    except EvalkitError as err:
        raise AssertionError(f"cannot compare {candidate} with baseline {baseline}: {err}") from None
    if comparison.failures:
        what = "regressed beyond tolerance" if comparison.regressions else "has metrics that cannot be tested"
        raise AssertionError(f"candidate {what}\n" + format_comparison(comparison, "table"))
    return comparison
