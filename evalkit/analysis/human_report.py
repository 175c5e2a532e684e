"""Human ratings next to the automatic metrics: leaderboard cells, notes, agreement, Bradley-Terry and
Kendall's tau between each automatic per-sample metric and the human ratings on the rated items.

Inputs are what the runs already hold: the `human` block of results.json (see human.py) and
RUN/ratings.jsonl plus the samples files, for the correlations and the ranking.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .human import HUMAN_PREFIX, PREFERENCE, PREFERENCE_METHOD, outcome, read_ratings, side_of
from .human_stats import LOW_ALPHA, bradley_terry, kendall
from .ratings import identity
from ..results import read_samples

PREFERENCE_NOTE = ("human:preference is the share of pairwise ratings in which raters preferred this model's output "
                   "(ties count half), with a 95% Wilson interval on the effective sample size (clustered by document); "
                   "human:<scale> columns are mean ratings ± a standard error clustered by document.")


def human_metrics(human: dict[str, Any] | None, task: str) -> dict[str, dict[str, Any]]:
    """The human measures of one task as metric entries ({"human:fluency": {value, stderr, ...}})."""
    block = ((human or {}).get("tasks") or {}).get(task)
    if not block:
        return {}
    out = {}
    for scale, s in block.get("scales", {}).items():
        out[HUMAN_PREFIX + scale] = {"value": s["value"], "stderr": s.get("stderr"), "higher_is_better": True,
                                     "scale": f"{s['min']}-{s['max']}", "stderr_method": s.get("stderr_method"),
                                     "n": s.get("n")}
    pref = block.get(PREFERENCE)
    if pref:
        out[HUMAN_PREFIX + PREFERENCE] = {"value": pref["value"], "stderr": pref.get("stderr"), "higher_is_better": True,
                                          "scale": "0-1", "stderr_method": PREFERENCE_METHOD, "n": pref.get("n"),
                                          "ci_low": pref.get("ci_low"), "ci_high": pref.get("ci_high"), "ci_method": "Wilson"}
    return out


def interval_text(metric: str, value: float, low: float, high: float) -> str | None:
    """A human column's cell with its stored (asymmetric) 95% interval, 'value [low, high]'; None otherwise."""
    if not metric.startswith(HUMAN_PREFIX) or not (math.isfinite(low) and math.isfinite(high)):
        return None
    digits = 4 if abs(value) < 10 else 2
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def agreement_rows(runs: Iterable[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (model, task, measure) with an agreement entry: runs are (model label, run_id, results).

    Rows with the same numbers (the preference between two models, seen from either side) are merged."""
    rows: dict[tuple, dict[str, Any]] = {}
    for model, _run_id, results in runs:
        for task, block in sorted(((results.get("human") or {}).get("tasks") or {}).items()):
            for measure, a in block.get("agreement", {}).items():
                key = (task, measure, *sorted(a.items()))
                if key in rows and measure == PREFERENCE:
                    rows[key]["model"] += f" / {model}"
                    continue
                rows[key] = {"model": model, "task": task, "measure": HUMAN_PREFIX + measure, **a,
                             "kappa_text": _num(a.get("kappa")), "alpha_text": _num(a.get("alpha"))}
    return list(rows.values())


def agreement_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Leaderboard notes: the agreement behind each human column, LOW when Krippendorff's alpha < 0.667."""
    notes = []
    for r in rows:
        kappa = f"{r['kappa_method']} kappa {r['kappa_text']}, " if r["kappa_method"] else ""
        flag = f" LOW agreement (alpha below {LOW_ALPHA}): read this column with care." if r["low"] else ""
        notes.append(f"Agreement, {r['model']} {r['task']}/{r['measure']}: {r['n_raters']} raters on {r['n_items']} items, "
                      f"{kappa}Krippendorff's alpha {r['alpha_text']}.{flag}")
    return notes


def _num(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.2f}"


def _all_ratings(run_dirs: Iterable[Path]) -> list[dict[str, Any]]:
    """Every rating attached to the runs, once (a pairwise rating is attached to both of its runs)."""
    seen, out = set(), []
    for run_dir in run_dirs:
        for r in read_ratings(run_dir):
            key = identity(r)
            if key not in seen:
                seen.add(key)
                out.append(r)
    return out


def bradley_terry_rows(run_dirs: dict[str, Path], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Per task with pairwise ratings among three or more of the shown runs: the Bradley-Terry ranking."""
    by_task: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    for r in _all_ratings(run_dirs.values()):
        runs = list(r["sides"].values())
        if r["mode"] == "pairwise" and all(run in run_dirs for run in runs):
            by_task[r["task"]].append((labels[runs[0]], labels[runs[1]], outcome(r, runs[0])))
    rows = []
    for task, comparisons in sorted(by_task.items()):
        models = {m for a, b, _ in comparisons for m in (a, b)}
        if len(models) >= 3:
            fit = bradley_terry(comparisons)
            rows.append({"task": task, "n": len(comparisons), "regularized": fit.regularized,
                         "ranking": [{"model": m, "strength": f"{s:+.2f}"} for m, s in fit.ranking()]})
    return rows


def kendall_rows(run_dirs: dict[str, Path], iterations: int = 1000, seed: int = 1234) -> list[dict[str, Any]]:
    """Kendall's tau (95% bootstrap CI) between each automatic per-sample metric and each human measure.

    Scales: one item per (run, document), the mean rating of that output against the run's per-sample
    score. Preferences: one item per (pair of runs, document), the share of raters preferring the first
    run (by run id) against the first run's score minus the second's.
    """
    ratings = _all_ratings(run_dirs.values())
    scores: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}

    def sample_scores(run: str, task: str) -> dict[str, dict[str, Any]]:
        if (run, task) not in scores:
            scores[(run, task)] = {str(s.get("doc_id")): s.get("scores") or {} for s in read_samples(run_dirs[run], task)}
        return scores[(run, task)]

    human: dict[tuple[str, str], dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        runs = [run for run in r["sides"].values() if run in run_dirs]
        for run in runs:
            for scale, value in (r["scores"].get(side_of(r, run)) or {}).items():
                human[(r["task"], scale)][(run, str(r["doc_id"]))].append(float(value))
        if r["mode"] == "pairwise" and len(runs) == 2:
            first, second = sorted(runs)
            human[(r["task"], PREFERENCE)][(first, second, str(r["doc_id"]))].append(outcome(r, first))
    rows = []
    for (task, measure), items in sorted(human.items()):
        metrics = _metric_names(items, task, sample_scores)
        for metric in metrics:
            x, y = [], []
            for key, values in items.items():
                auto = _automatic(key, task, metric, sample_scores)
                if auto is not None:
                    x.append(auto)
                    y.append(float(np.mean(values)))
            c = kendall(x, y, iterations=iterations, seed=seed)
            rows.append({"task": task, "human": HUMAN_PREFIX + measure, "metric": metric, **c.to_dict(),
                         "tau_text": _num(c.tau), "ci_text": f"[{_num(c.ci_low)}, {_num(c.ci_high)}]",
                         "p_text": "—" if not math.isfinite(c.p_value) else f"{c.p_value:.3g}"})
    return rows


def _metric_names(items: dict[tuple, list[float]], task: str, sample_scores) -> list[str]:
    names: dict[str, None] = {}
    for key in items:
        for name, value in sample_scores(key[0], task).get(key[-1], {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                names[name] = None
    return list(names)


def _automatic(key: tuple, task: str, metric: str, sample_scores) -> float | None:
    values = [sample_scores(run, task).get(key[-1], {}).get(metric) for run in key[:-1]]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None
    return float(values[0]) if len(values) == 1 else float(values[0]) - float(values[1])


def _shown_runs(shown: Any) -> list[tuple[str, str, Path, dict[str, Any]]]:
    """(model label, run_id, run_dir, results) of the runs a leaderboard or report shows that carry ratings."""
    from ..results import read_results

    out = []
    for run_dir, run_id, model in shown[["run_dir", "run_id", "model"]].drop_duplicates().itertuples(index=False):
        results = read_results(run_dir)
        if results.get("human"):
            out.append((model, run_id, Path(run_dir), results))
    return out


def leaderboard_notes(shown: Any) -> list[str]:
    """Notes under a leaderboard with human columns: what they are, rater agreement, Bradley-Terry ranking."""
    runs = _shown_runs(shown)
    if not runs:
        return []
    notes = [PREFERENCE_NOTE, *agreement_notes(agreement_rows((m, r, res) for m, r, _d, res in runs))]
    for row in bradley_terry_rows({r: d for _m, r, d, _res in runs}, {r: m for m, r, _d, _res in runs}):
        ranking = ", ".join(f"{x['model']} {x['strength']}" for x in row["ranking"])
        notes.append(f"Bradley-Terry ranking from {row['n']} pairwise ratings of {row['task']} (log-strength): {ranking}.")
    return notes


def report_section(shown: Any) -> dict[str, Any] | None:
    """The report's "Human ratings" section, or None when no shown run has ratings."""
    runs = _shown_runs(shown)
    if not runs:
        return None
    run_dirs = {r: d for _m, r, d, _res in runs}
    return {"note": PREFERENCE_NOTE, "low_below": LOW_ALPHA,
            "agreement": agreement_rows((m, r, res) for m, r, _d, res in runs),
            "bradley_terry": bradley_terry_rows(run_dirs, {r: m for m, r, _d, _res in runs}),
            "kendall": kendall_rows(run_dirs)}
