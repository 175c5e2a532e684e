"""The self-contained HTML report: leaderboard with confidence intervals, one SVG chart per task metric,
run metadata, and a sample browser (search, wrong-answers filter, paging) driven by inline JavaScript.

Confidence intervals: the percentile bootstrap interval stored in results.json wherever the metric's
standard error comes from the bootstrap (so a perplexity interval never goes below zero); otherwise
value ± 1.96 × stderr, clipped to the metric's range (0-1, 0-100, or >= 0).

Safety: the page is rendered with Jinja2 autoescaping; samples travel as JSON inside a
`<script type="application/json">` block with `<`, `>` and `&` written as `\\u003c`-style escapes, so no
model or data text can close the block; the browser script only ever sets `textContent`. A
Content-Security-Policy allows nothing but the page's own inline script and style (by hash).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import EvalkitError
from .human_report import report_section
from .leaderboard import MISSING, Board, build_board, latest, leaderboard, pivot
from .report_charts import Z95, _finite, bar_chart, color
from ..results import read_results, read_samples
from ..summary import format_value

STATIC = Path(__file__).with_name("report_static")
DEFAULT_MAX_CHARS = 4000
SAMPLE_FIELDS = {"doc_id", "prompt", "prediction", "gold", "references", "scores"}


def build_report(path: str | os.PathLike, all_runs: bool = False, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The report for every run under `path` (one run per model and task, like for like, unless all_runs), as HTML text."""
    tidy = leaderboard(path)
    shown = tidy if all_runs else latest(tidy)
    board = build_board(tidy, all_runs=all_runs)
    labels = [row if isinstance(row, str) else f"{row[0]} · {row[1]}" for row in board.values.index]
    colors = [color(i) for i in range(len(labels))]
    runs = _runs(tidy, shown)
    sets = _sample_sets(shown, max_chars)
    intervals = _intervals(board, tidy, all_runs)
    context = {
        "source": str(path), "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "n_runs": len(runs), "n_superseded": tidy["run_id"].nunique() - len(runs),
        "n_models": shown["model"].nunique(), "n_tasks": shown["task"].nunique(),
        "n_samples": sum(len(s["samples"]) for s in sets), "table": _table(board, labels, intervals, _interval_methods(tidy)), "note": board.note,
        "charts": _charts(board, labels, colors, shown, intervals), "runs": runs, "human": report_section(shown),
    }
    return render(context, sets)


def render(context: dict[str, Any], sets: list[dict[str, Any]]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from markupsafe import Markup

    css = (STATIC / "report.css").read_text(encoding="utf-8")
    js = (STATIC / "report.js").read_text(encoding="utf-8")
    env = Environment(loader=FileSystemLoader(STATIC), autoescape=True, undefined=StrictUndefined)
    return env.get_template("report.html.j2").render(
        **context, css=Markup(css), js=Markup(js), data=Markup(script_json({"sets": sets})),
        csp=f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; img-src data:; "
            "base-uri 'none'; form-action 'none'",
    )


def script_json(data: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no '<', '>' or '&' survives."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _digits(value: float) -> int:
    return 4 if abs(value) < 10 else 2


Interval = tuple[float, float, str]  # low, high, how ("bootstrap" or "normal")
RANGES = {"0-1": (0.0, 1.0), "0-100": (0.0, 100.0), "ratio": (0.0, math.inf)}


def metric_interval(value: float, stderr: float, low: float, high: float, scale: str | None) -> Interval | None:
    """The stored percentile bootstrap interval, or value ± 1.96 se clipped to the metric's range."""
    if _finite(low) and _finite(high):
        return float(low), float(high), "bootstrap"
    if not _finite(value) or not _finite(stderr):
        return None
    floor, top = RANGES.get(scale or "", (-math.inf, math.inf))
    return max(value - Z95 * stderr, floor), min(value + Z95 * stderr, top), "normal"


def _intervals(board: Board, tidy: pd.DataFrame, all_runs: bool) -> dict[tuple[str, str], list[Interval | None]]:
    lows, highs = (pivot(tidy, column, all_runs).reindex(index=board.values.index, columns=board.values.columns)
                   for column in ("ci_low", "ci_high"))
    scales = {(t, m): s for t, m, s in tidy[["task", "metric", "scale"]].itertuples(index=False)}
    return {column: [metric_interval(v, s, lo, hi, scales.get(column)) for v, s, lo, hi in
                     zip(board.values[column], board.stderrs[column], lows[column], highs[column])]
            for column in board.values.columns}


def _interval_methods(tidy: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(task, metric) -> how its stored interval was computed (results' `ci_method`: percentile bootstrap, Wilson)."""
    rows = tidy[["task", "metric", "ci_method"]].dropna()
    return {(t, m): method for t, m, method in rows.itertuples(index=False)}


def _table(board: Board, labels: list[str], intervals: dict[tuple[str, str], list[Interval | None]],
           methods: dict[tuple[str, str], str]) -> dict[str, Any]:
    tasks: dict[str, int] = {}
    for task, _metric in board.values.columns:
        tasks[task] = tasks.get(task, 0) + 1
    metrics = [{"name": m, "arrow": "↑" if board.higher_is_better[(t, m)] else "↓"} for t, m in board.values.columns]
    best = {c: _best(board.values[c], board.higher_is_better[c]) for c in board.values.columns}
    rows, tasks_run = [], board.tasks_run()
    for i, label in enumerate(labels):
        cells = []
        for column in board.values.columns:
            v, s = board.values[column].iloc[i], board.stderrs[column].iloc[i]
            if pd.isna(v):
                cells.append(None)
                continue
            d, interval = _digits(v), intervals[column][i]
            ci = ""
            if interval:
                low, high, how = interval
                stored = "Wilson " if methods.get(column) == "Wilson" else "bootstrap "
                ci = f"95% {stored if how == 'bootstrap' else ''}CI [{low:.{d}f}, {high:.{d}f}]"
            cells.append({"text": format_value(v, s), "ci": ci, "best": best[column] == i})
        rate = board.win_rate.iloc[i]
        rows.append({"label": label, "win_rate": MISSING if pd.isna(rate) else f"{rate:.2f}", "cells": cells,
                     "tasks": f"{tasks_run.iloc[i]}/{len(tasks)}"})
    return {"tasks": list(tasks.items()), "metrics": metrics, "rows": rows}


def _best(values: pd.Series, higher_is_better: bool) -> int | None:
    present = values.reset_index(drop=True).dropna()
    if len(present) < 2:
        return None
    return int(present.idxmax() if higher_is_better else present.idxmin())


def _charts(board: Board, labels: list[str], colors: list[str], shown: pd.DataFrame,
            intervals: dict[tuple[str, str], list[Interval | None]]) -> list[dict[str, Any]]:
    scales = {(t, m): s for t, m, s in shown[["task", "metric", "scale"]].itertuples(index=False)}
    charts = []
    for column in board.values.columns:
        task, metric = column
        title = f"{task} / {metric}"
        charts.append({
            "title": title, "arrow": "higher is better" if board.higher_is_better[column] else "lower is better",
            "scale": scales.get(column) or "", "svg": bar_chart(title, labels, list(board.values[column]),
                                                               list(board.stderrs[column]), colors,
                                                               [i[:2] if i else None for i in intervals[column]]),
        })
    return charts


def _runs(tidy: pd.DataFrame, shown: pd.DataFrame) -> list[dict[str, Any]]:
    """Metadata of the runs the report shows, oldest first; each task says whether a later run replaced it."""
    used = set(zip(shown["run_id"], shown["task"]))
    out = []
    for run_dir in dict.fromkeys(shown.sort_values("created")["run_dir"]):
        res = read_results(run_dir)
        label = tidy.loc[tidy["run_dir"] == run_dir, "model"].iloc[0]
        task_rows = []
        for task, r in res["tasks"].items():
            config = res.get("config", {}).get("tasks", {}).get(task, {})
            throughput = r.get("throughput") or {}
            task_rows.append({
                "task": task, "n": r.get("n"), "hash": config.get("hash"), "version": config.get("version"),
                "seconds": _fmt(r.get("seconds"), 1), "requests_per_s": _fmt(throughput.get("requests_per_s"), 2),
                "tokens_per_s": _fmt(throughput.get("tokens_per_s"), 0), "truncated": r.get("truncated_inputs"),
                "shown": (res["run_id"], task) in used,
            })
        config = {k: v for k, v in (res.get("config") or {}).items() if k != "tasks"}
        out.append({"run_id": res["run_id"], "dir": str(run_dir), "created": _when(res.get("created")), "label": label,
                    "command": res.get("command"), "model": res.get("model") or {}, "config": config,
                    "versions": res.get("versions") or {}, "tasks": task_rows})
    return out


def _when(created: str | None) -> str:
    try:
        return pd.Timestamp(created).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        return str(created or MISSING)


def _fmt(value: Any, digits: int) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"


def _sample_sets(shown: pd.DataFrame, max_chars: int) -> list[dict[str, Any]]:
    keys = shown[["run_dir", "run_id", "model", "task"]].drop_duplicates()
    sets = []
    for run_dir, run_id, model, task in keys.itertuples(index=False):
        try:
            records = read_samples(run_dir, task)
        except EvalkitError as err:
            sets.append({"task": task, "model": model, "run": run_id, "missing": str(err), "samples": [],
                         "metrics": [], "target": "", "has_correct": False})
            continue
        samples = [_sample(r, max_chars) for r in records]
        metrics = list(dict.fromkeys(k for r in records for k in (r.get("scores") or {})))
        target = "reference" if any("references" in r for r in records) else "gold"
        sets.append({"task": task, "model": model, "run": run_id, "missing": None, "samples": samples,
                     "metrics": metrics, "target": target, "has_correct": any(s["ok"] is not None for s in samples)})
    return sets


def _sample(record: dict[str, Any], max_chars: int) -> dict[str, Any]:
    targets = record.get("references")
    if targets is None:
        targets = [] if record.get("gold") is None else [record["gold"]]
    scores = {k: _finite_or_none(v) for k, v in (record.get("scores") or {}).items()}
    extra = " · ".join(f"{k}: {_clip(json.dumps(v, ensure_ascii=False), 300)}"
                       for k, v in record.items() if k not in SAMPLE_FIELDS)
    return {"id": record.get("doc_id"), "prompt": _clip(_text(record.get("prompt")), max_chars),
            "pred": _clip(_text(record.get("prediction")), max_chars),
            "target": [_clip(_text(t), max_chars) for t in targets], "scores": scores,
            "ok": correctness(record), "extra": extra}


def correctness(record: dict[str, Any]) -> int | None:
    """1/0 when the sample has a right answer (accuracy score, or a single gold label); None otherwise."""
    scores = record.get("scores") or {}
    for name in ("accuracy", "exact_match"):
        if isinstance(scores.get(name), (int, float)):
            return int(scores[name] >= 0.5)
    gold, prediction = record.get("gold"), record.get("prediction")
    if isinstance(gold, str) and isinstance(prediction, str):
        return int(gold.strip() == prediction.strip())
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _clip(text: str, max_chars: int) -> str:
    if max_chars and len(text) > max_chars:
        return text[:max_chars] + f" … [{len(text) - max_chars:,} more characters in the samples file]"
    return text


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

