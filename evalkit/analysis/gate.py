"""The regression gate: per-metric paired tests, their adjustment for multiple comparisons, and verdicts.

For every compared row (task, metric):
- `p_value`: the paired test of "no change" (two-sided): exact McNemar for 0/1 metrics, the paired
  bootstrap for corpus metrics (see `paired.py`); `p_adjusted` adjusts it over all rows of the
  comparison (Holm by default, Benjamini-Hochberg or none).
- `p_tolerance`: the same test shifted to the row's tolerance ("the candidate is worse by exactly the
  tolerance"), on the same two-sided scale; with tolerance 0 it *is* `p_value`. `p_tolerance_adjusted`
  adjusts it over all rows.
- A row FAILS (exit 1) when its point estimate is worse than the tolerance and `p_tolerance_adjusted`
  < alpha: the candidate is confidently worse than the tolerance, a one-sided test at level alpha/2
  per row (without adjustment: the whole 95% CI of the delta lies beyond the tolerance at alpha 0.05),
  with the family-wise error over the rows held at alpha/2 by Holm.
- A row whose test cannot be computed (non-finite values: a model that output NaN) fails too, unless
  the user allows untestable rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import EvalkitError
from ..metrics import Scorer
from .paired import adjust_p_values, bootstrap_p_value, mcnemar_exact, percentile_ci

# metrics with a 0/1 outcome per document, tested with McNemar; everything else is bootstrapped
PER_DOCUMENT_BINARY = ("accuracy", "exact_match", "acc_norm", "acc_bytes", "squad_exact_match")  # built-in names; the test uses Scorer.binary_outcomes (aliases too)
IMPROVED, REGRESSED, WITHIN, UNCHANGED = "improved", "regressed", "regressed within tolerance", "no significant change"
UNTESTABLE = "not testable (non-finite values)"
ADJUSTMENTS = ("holm", "bh", "none")


@dataclass(frozen=True)
class Tolerance:
    """How much worse a metric may get: an absolute amount, or a share of the baseline value ("2%")."""

    amount: float = 0.0
    relative: bool = False

    def allowed(self, baseline_value: float) -> float:
        return self.amount * abs(baseline_value) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount * 100:g}%" if self.relative else f"{self.amount:g}"


def parse_tolerance(value: Any, name: str) -> Tolerance:
    text = str(value).strip()
    relative = text.endswith("%")
    try:
        amount = float(text[:-1] if relative else text)
    except ValueError:
        amount = float("nan")
    if isinstance(value, bool) or not math.isfinite(amount) or amount < 0:
        raise EvalkitError(f"tolerance for '{name}' must be a number >= 0 or a percentage like 2%, got '{value}'")
    return Tolerance(amount / 100 if relative else amount, relative)


def parse_tolerance_args(items: Iterable[str]) -> dict[str, Tolerance]:
    """`--tolerance METRIC=DELTA` (or TASK/METRIC=DELTA) arguments."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EvalkitError(f"--tolerance takes METRIC=DELTA or TASK/METRIC=DELTA (e.g. accuracy=0.01), got '{item}'")
        out[key.strip()] = parse_tolerance(value, key.strip())
    return out


def check_test_options(alpha: float, iterations: int, adjust: str = "holm") -> None:
    if not 0 < alpha < 1:
        raise EvalkitError(f"alpha must be between 0 and 1, got {alpha}")
    if iterations < 100:
        raise EvalkitError(f"bootstrap iterations must be at least 100, got {iterations}")
    if adjust not in ADJUSTMENTS:
        raise EvalkitError(f"unknown p-value adjustment '{adjust}' (use one of: {', '.join(ADJUSTMENTS)})")


@dataclass
class MetricComparison:
    task: str
    metric: str
    n: int
    baseline: float
    candidate: float
    delta: float  # candidate - baseline
    ci_low: float  # 95% paired-bootstrap interval of the delta
    ci_high: float
    p_value: float  # two-sided test of no change, raw
    test: str
    higher_is_better: bool
    tolerance: str
    margin: float  # the tolerance in metric units (how much worse the candidate may be)
    p_tolerance: float  # two-sided-scale test of "worse by exactly the margin", raw (= p_value when margin is 0)
    p_adjusted: float = float("nan")
    p_tolerance_adjusted: float = float("nan")
    verdict: str = UNCHANGED
    fails: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def worse_by(self) -> float:
        return -self.delta if self.higher_is_better else self.delta


def compare_scorers(task: str, b: Scorer, c: Scorer, names: list[str], deltas: dict[str, np.ndarray],
                    tolerance: Callable[[str], Tolerance]) -> list[MetricComparison]:
    """Raw (unadjusted) rows for the metric `names` of two paired scorers and their bootstrap deltas."""
    everything = np.arange(b.n)
    base_values, cand_values = b.score(everything), c.score(everything)
    rows = []
    for name in names:
        base_value, cand_value = float(base_values[name]), float(cand_values[name])
        delta, higher, tol = cand_value - base_value, b.higher_is_better_for(name), tolerance(name)
        detail: dict[str, Any] = {}
        if name in b.binary_outcomes:
            outcome = lambda s: np.array([row[name] for row in s.per_sample()]) > 0.5  # noqa: E731
            mcnemar = mcnemar_exact(outcome(b), outcome(c))
            p_value, test = mcnemar.p_value, "McNemar exact"
            detail = {"improved_docs": mcnemar.improved, "worsened_docs": mcnemar.worsened}
        else:
            p_value, test = bootstrap_p_value(deltas[name]), "paired bootstrap"
        margin = tol.allowed(base_value) if math.isfinite(base_value) else float("nan")
        if margin == 0:
            p_tolerance = p_value
        else:  # shift the null to the margin: the delta at which the candidate is exactly `margin` worse
            p_tolerance = bootstrap_p_value(deltas[name], null=-margin if higher else margin)
            detail["tolerance_test"] = "paired bootstrap against the margin"
        ci_low, ci_high = percentile_ci(deltas[name])
        rows.append(MetricComparison(task, name, b.n, base_value, cand_value, delta, ci_low, ci_high, p_value, test,
                                     higher, str(tol), margin, p_tolerance, detail=detail))
    return rows


def decide(rows: list[MetricComparison], alpha: float, adjust: str = "holm", allow_untestable: bool = False) -> None:
    """Adjust the rows' p-values over the family and set each row's verdict and whether it fails."""
    adjusted = adjust_p_values([r.p_value for r in rows], adjust)
    adjusted_tol = adjust_p_values([r.p_tolerance for r in rows], adjust)
    for row, p_adj, p_tol_adj in zip(rows, adjusted, adjusted_tol):
        row.p_adjusted, row.p_tolerance_adjusted = p_adj, p_tol_adj
        testable = all(math.isfinite(x) for x in (row.p_value, row.p_tolerance, row.delta, row.margin))
        if not testable:
            row.verdict, row.fails = UNTESTABLE, not allow_untestable
        elif row.worse_by > row.margin and p_tol_adj < alpha:
            row.verdict, row.fails = REGRESSED, True
        elif p_adj < alpha and row.delta != 0:
            row.verdict, row.fails = (IMPROVED if row.worse_by < 0 else WITHIN), False
        else:
            row.verdict, row.fails = UNCHANGED, False
