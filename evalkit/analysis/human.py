"""From the ratings attached to a run (RUN/ratings.jsonl) to the `human` block of its results.json.

    human:
      rubrics {hash: rubric}, n_ratings, raters [...], low_agreement [...],
      tasks.<task>:
        scales.<scale>: value, stderr (clustered by document), n, n_docs, min, max
        preference: win rate of this run over all the runs it was compared with (ties half), stderr,
                    ci_low/ci_high (95% Wilson on the effective n), wins/losses/ties, sign test p on documents,
                    vs.<run_id>: the same against one opponent
        agreement.<scale or "preference">: kappa (Cohen or Fleiss), Krippendorff's alpha, low flag
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..results import read_jsonl
from .human_stats import LOW_ALPHA, agreement, clustered_mean, preference

RATINGS_FILE = "ratings.jsonl"
HUMAN_PREFIX = "human:"
PREFERENCE = "preference"
CLUSTERED = "clustered by document"
PREFERENCE_METHOD = "win rate, ties half; 95% CI: Wilson on the effective n (clustered by document); sign test on documents"


def read_ratings(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The ratings attached to a run ([] when none)."""
    path = Path(run_dir) / RATINGS_FILE
    return read_jsonl(path) if path.is_file() else []


def side_of(rating: dict[str, Any], run_id: str) -> str | None:
    return next((side for side, run in rating["sides"].items() if run == run_id), None)


def outcome(rating: dict[str, Any], run_id: str) -> float:
    """1 when the rater preferred run_id's output, 0.5 for a tie, 0 when they preferred the other."""
    pick = rating["preference"]
    return 0.5 if pick == "tie" else float(rating["sides"].get(pick) == run_id)


def opponent(rating: dict[str, Any], run_id: str) -> str:
    return next(run for run in rating["sides"].values() if run != run_id)


def summarize(ratings: list[dict[str, Any]], run_id: str, rubrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The `human` block of run `run_id` from every rating that shows one of its outputs."""
    mine = [r for r in ratings if side_of(r, run_id)]
    ranges = {s["name"]: (s["min"], s["max"]) for rubric in rubrics.values() for s in rubric["scales"]}
    tasks: dict[str, Any] = {}
    low: list[str] = []
    for task in sorted({r["task"] for r in mine}):
        rows = [r for r in mine if r["task"] == task]
        block: dict[str, Any] = {"n_ratings": len(rows), "scales": {}, "agreement": {}}
        for scale, frame in _scale_frames(rows, run_id).items():
            mean, se = clustered_mean(frame["value"], frame["item"])
            block["scales"][scale] = {"value": mean, "stderr": _finite(se), "n": len(frame),
                                      "n_docs": frame["item"].nunique(), "min": ranges[scale][0],
                                      "max": ranges[scale][1], "stderr_method": CLUSTERED}
            _add_agreement(block, scale, frame, "ordinal", f"{task}/{scale}", low)
        pairwise = [r for r in rows if r["mode"] == "pairwise"]
        if pairwise:
            block[PREFERENCE] = _preference(pairwise, run_id)
            frame = pd.DataFrame({"item": [f"{r['doc_id']}|{opponent(r, run_id)}" for r in pairwise],
                                  "rater": [r["rater"] for r in pairwise],
                                  "value": [outcome(r, run_id) for r in pairwise]})
            _add_agreement(block, PREFERENCE, frame, "nominal", f"{task}/{PREFERENCE}", low)
        tasks[task] = block
    return {"rubrics": rubrics, "n_ratings": len(mine), "raters": sorted({r["rater"] for r in mine}),
            "low_agreement": low, "low_agreement_below": LOW_ALPHA, "tasks": tasks}


def _scale_frames(rows: list[dict[str, Any]], run_id: str) -> dict[str, pd.DataFrame]:
    values: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    for r in rows:
        for scale, value in (r["scores"].get(side_of(r, run_id)) or {}).items():
            values[scale].append((str(r["doc_id"]), r["rater"], float(value)))
    return {scale: pd.DataFrame(v, columns=["item", "rater", "value"]) for scale, v in sorted(values.items())}


def _preference(pairwise: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    def stats(subset: list[dict[str, Any]]) -> dict[str, Any]:
        # documents are the clusters; against several opponents one document is one cluster per opponent
        result = preference([outcome(r, run_id) for r in subset], [f"{r['doc_id']}|{opponent(r, run_id)}" for r in subset])
        d = result.to_dict()
        d["value"] = d.pop("rate")
        return d

    by_opponent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in pairwise:
        by_opponent[opponent(r, run_id)].append(r)
    return {**stats(pairwise), "method": PREFERENCE_METHOD, "vs": {o: stats(rs) for o, rs in sorted(by_opponent.items())}}


def _add_agreement(block: dict[str, Any], name: str, frame: pd.DataFrame, level: str, label: str, low: list[str]) -> None:
    found = agreement(frame, level)
    if found is not None:
        block["agreement"][name] = found.to_dict()
        if found.low:
            low.append(label)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def rubric_ranges_conflict(rubrics: Iterable[dict[str, Any]]) -> str | None:
    """A scale name that two rubrics define with different ranges (their ratings cannot be pooled)."""
    seen: dict[str, tuple[int, int, str]] = {}
    for rubric in rubrics:
        for s in rubric["scales"]:
            old = seen.setdefault(s["name"], (s["min"], s["max"], rubric["name"]))
            if old[:2] != (s["min"], s["max"]):
                return (f"scale '{s['name']}' is {old[0]}-{old[1]} in rubric '{old[2]}' but {s['min']}-{s['max']} "
                        f"in rubric '{rubric['name']}'")
    return None
