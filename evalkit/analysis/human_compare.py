"""Human ratings in `evalkit compare`: paired tests of two runs' ratings, rows like the automatic metrics'.

- A rating scale (human:fluency, ...): the documents whose outputs were rated in both runs; per document
  the mean rating of each run's output; the Wilcoxon signed-rank test of the paired differences (scipy),
  and a t interval of their mean. The tolerance test shifts the differences by the margin.
- The preference (human:preference): the pairwise ratings between exactly these two runs; the
  candidate's win rate (ties half) against the no-preference baseline 0.5; the two-sided sign test on
  the documents (each document's raters vote, tied documents drop out) and the Wilson interval of the
  win rate, shifted by 0.5. The tolerance test is the binomial test against 0.5 - margin.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .human import HUMAN_PREFIX, PREFERENCE, outcome, read_ratings, side_of
from .human_stats import preference, wilcoxon
from .ratings import identity

WILCOXON, SIGN = "Wilcoxon signed-rank", "sign test (documents)"
HUMAN_NOTE = ("human rows compare the runs' ratings on the documents rated for both: human:<scale> by the Wilcoxon "
              "signed-rank test of per-document mean ratings (CI: t interval of the mean difference); human:preference "
              "by the sign test on documents against no preference, 0.5 (CI: the Wilson interval of the win rate, minus 0.5)")


@dataclass
class HumanRow:
    task: str
    metric: str
    n: int  # documents
    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    p_at: Callable[[float], float] = field(repr=False)  # p of "the candidate is worse by exactly this margin"
    detail: dict[str, Any] = field(default_factory=dict)


def human_rows(base_dir: Path, base_id: str, cand_dir: Path, cand_id: str, tasks: list[str]) -> list[HumanRow]:
    """Every human measure both runs have ratings for, on the given tasks (none without ratings)."""
    seen, ratings = set(), []
    for r in read_ratings(base_dir) + read_ratings(cand_dir):
        if identity(r) not in seen and r["task"] in tasks:
            seen.add(identity(r))
            ratings.append(r)
    rows = []
    for task in tasks:
        mine = [r for r in ratings if r["task"] == task]
        rows += _scale_rows(task, mine, base_id, cand_id)
        pairwise = [r for r in mine if r["mode"] == "pairwise" and set(r["sides"].values()) == {base_id, cand_id}]
        if pairwise:
            rows.append(_preference_row(task, pairwise, cand_id))
    return rows


def _per_doc(ratings: list[dict[str, Any]], run: str) -> dict[str, dict[str, float]]:
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        side = side_of(r, run)
        for scale, value in (r["scores"].get(side) or {}).items() if side else ():
            values[scale][str(r["doc_id"])].append(float(value))
    return {scale: {doc: float(np.mean(v)) for doc, v in docs.items()} for scale, docs in values.items()}


def _scale_rows(task: str, ratings: list[dict[str, Any]], base_id: str, cand_id: str) -> list[HumanRow]:
    from scipy.stats import ttest_1samp

    base, cand = _per_doc(ratings, base_id), _per_doc(ratings, cand_id)
    rows = []
    for scale in sorted(set(base) & set(cand)):
        docs = sorted(set(base[scale]) & set(cand[scale]))
        if not docs:
            continue
        b = np.array([base[scale][d] for d in docs])
        c = np.array([cand[scale][d] for d in docs])
        d = c - b
        low = high = float("nan")
        if len(d) >= 2 and np.std(d) > 0:
            low, high = ttest_1samp(d, 0.0).confidence_interval(0.95)
        elif len(d) >= 1 and np.all(d == d[0]):
            low = high = float(d[0])
        rows.append(HumanRow(task, HUMAN_PREFIX + scale, len(docs), float(b.mean()), float(c.mean()), float(d.mean()),
                             float(low), float(high), wilcoxon(b, c), WILCOXON,
                             p_at=lambda margin, b=b, c=c: wilcoxon(b - margin, c),
                             detail={"documents": len(docs)}))
    return rows


def _preference_row(task: str, ratings: list[dict[str, Any]], cand_id: str) -> HumanRow:
    from scipy.stats import binomtest

    outcomes = [outcome(r, cand_id) for r in ratings]
    pref = preference(outcomes, [str(r["doc_id"]) for r in ratings])
    decided = pref.doc_wins + pref.doc_losses

    def p_at(margin: float) -> float:
        if decided == 0 or 0.5 - margin <= 0:  # no votes, or a margin that allows any win rate: never beyond it
            return 1.0
        if 0.5 - margin >= 1:
            return float("nan")
        return float(binomtest(pref.doc_wins, decided, 0.5 - margin).pvalue)

    return HumanRow(task, HUMAN_PREFIX + PREFERENCE, pref.n_docs, 0.5, pref.rate, pref.rate - 0.5,
                    pref.ci_low - 0.5, pref.ci_high - 0.5, pref.p_value, SIGN, p_at=p_at,
                    detail={"wins": pref.wins, "losses": pref.losses, "ties": pref.ties, "doc_wins": pref.doc_wins,
                            "doc_losses": pref.doc_losses, "ratings": pref.n, "baseline": "no preference (0.5)"})
