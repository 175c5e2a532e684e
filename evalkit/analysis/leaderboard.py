"""Leaderboards: result files -> a tidy pandas DataFrame -> one row per model, as text, CSV, Markdown or HTML.

A "model" row is the model identity plus the run-level `--fewshot K` override: `smollm2-135m-instruct`
and `smollm2-135m-instruct (3-shot)` are separate rows, so a few-shot run never replaces a zero-shot one.
When a model has several runs of a task, one run supplies all of that task's metrics, chosen like for
like: among the run *setups* (task hash, which covers spec and data; dtype; limit and its seed or mode), the
setup most other models of the column share, then the one with more documents, then the latest; within
that setup the latest run. So a 10-document bf16 smoke run never replaces an 872-document fp32 run. A
note names what was set aside, and warns when a column still mixes setups; cells show n when it varies.

The module itself is callable (`evalkit.leaderboard(path)` is `leaderboard(path)`): a package attribute
named like a submodule is replaced by the module whenever the submodule is imported, so a plain
function export would break depending on import order.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import EvalkitError
from ..results import find_runs, read_results
from ..summary import format_value
from .human_report import human_metrics, interval_text, leaderboard_notes
from .leaderboard_notes import config_warnings, documents_note, set_aside_notes, setup_warnings  # noqa: F401

MISSING = "—"
WIN_RATE = "win rate"
TASKS = "tasks"
WIN_RATE_NOTE = (
    "win rate: for each task metric shown, the share of the other models that this model beats "
    "(ties count half; lower is better for perplexity-like metrics), averaged over the task's metrics, "
    "then over the tasks the model has (column tasks). Values are mean ± standard error; — means not evaluated."
)
TIDY_COLUMNS = [
    "run_id", "created", "run_dir", "model", "model_spec", "model_location", "model_revision", "dtype", "device",
    "fewshot", "task", "metric", "value", "stderr", "n", "higher_is_better", "scale", "stderr_method",
    "task_hash", "task_config", "task_version", "task_fewshot", "seconds", "limit", "seed", "complete",
    "ci_low", "ci_high", "ci_method", "data_sha256", "setup",
]
INCOMPLETE = " (incomplete)"


def _warn(message: str) -> None:
    from ..terminal_text import printable

    print(f"evalkit: warning: {printable(message)}", file=sys.stderr)


def leaderboard(path: str | os.PathLike, on_skip=_warn) -> pd.DataFrame:
    """Every run under `path` as a tidy frame: one row per (run, model, task, metric).

    A results file that fails its schema (results_schema.py) is skipped, with `on_skip(reason)`;
    when every file is bad, that is an error naming the first one.
    """
    runs = find_runs(path)
    if not runs:
        raise EvalkitError(f"no runs under {path} (no results.json); write some with `evalkit run --output {path}`")
    rows, skipped = [], []
    for run_dir in runs:
        try:
            results = read_results(run_dir)
        except EvalkitError as err:
            skipped.append(f"skipped {err}")
            continue
        rows.extend(_tidy_rows(run_dir, results))
    if not rows:
        if skipped:
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            raise EvalkitError(f"no readable run under {path}: {skipped[0].removeprefix('skipped ')}{more}")
        raise EvalkitError(f"no finished tasks in any results.json under {path}; write some with `evalkit run --output {path}`")
    for reason in skipped:
        on_skip(reason)
    df = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    df["created"] = pd.to_datetime(df["created"], utc=True, format="ISO8601")
    for column in ("fewshot", "task_fewshot", "n", "limit", "seed"):
        df[column] = df[column].astype("Int64")
    df["model"] = _unique_labels(df)
    return df.sort_values(["created", "run_id"], kind="stable").reset_index(drop=True)


def _tidy_rows(run_dir: Path, res: dict[str, Any]) -> list[dict[str, Any]]:
    model, config = res.get("model") or {}, res.get("config") or {}
    base = {
        "run_id": res["run_id"], "created": res.get("created"), "run_dir": str(run_dir),
        "model": model_label(model, config.get("fewshot")), "model_spec": model.get("spec"),
        "model_location": model.get("location") or model.get("spec"),
        "model_revision": model.get("sha256") or model.get("revision"),
        "dtype": model.get("dtype"), "device": model.get("device"), "fewshot": config.get("fewshot"),
        "limit": config.get("limit"), "seed": config.get("seed"),
        "complete": set(config.get("tasks") or {}) <= set(res.get("tasks") or {}),  # a killed run lacks tasks
    }
    rows = []
    for task, result in (res.get("tasks") or {}).items():
        task_config = (config.get("tasks") or {}).get(task) or {}
        spec = task_config.get("spec") or {}
        shots = None if spec.get("kind") == "perplexity" else (spec.get("fewshot") or {}).get("k")
        data_sha = ((task_config.get("data") or {}).get("sha256") or "")[:12] or None
        sample = "" if not config.get("limit") else (
            " first" if config.get("limit_mode") == "first" else f" seed {config.get('seed')}")
        setup = f"task {task_config.get('hash')} dtype {model.get('dtype')} limit {config.get('limit')}{sample}"
        for metric, m in {**(result.get("metrics") or {}), **human_metrics(res.get("human"), task)}.items():
            rows.append({
                **base, "task": task, "metric": metric, "value": _number(m.get("value")),
                "stderr": _number(m.get("stderr")), "n": result.get("n"),
                "higher_is_better": bool(m.get("higher_is_better", True)), "scale": m.get("scale"),
                "stderr_method": m.get("stderr_method"), "task_hash": task_config.get("hash"),
                "task_config": _config_without_shots(spec) or task_config.get("hash"),
                "task_version": task_config.get("version"), "task_fewshot": shots, "seconds": result.get("seconds"),
                "ci_low": _number(m.get("ci_low")), "ci_high": _number(m.get("ci_high")),
                "ci_method": m.get("ci_method"), "data_sha256": data_sha,
                "setup": setup,
            })
    return rows


def _config_without_shots(spec: dict[str, Any]) -> str | None:
    """A hash of the task spec minus its few-shot count: equal when two runs differ only in --fewshot."""
    if not spec:
        return None
    spec = {**spec, "fewshot": {k: v for k, v in (spec.get("fewshot") or {}).items() if k != "k"}}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def model_label(model: dict[str, Any], fewshot: int | None) -> str:
    """A short model name: the hub id, or a folder/file name; `(K-shot)` when the run overrode few-shot."""
    spec = str(model.get("spec") or "model")
    name = spec if model.get("source") == "hub" else Path(spec.rstrip("/\\")).name or spec
    name = name.removesuffix(".gguf")
    return name if fewshot is None else f"{name} ({fewshot}-shot)"


def _unique_labels(df: pd.DataFrame) -> pd.Series:
    """Distinct models that share a short name get a revision (or location) suffix."""
    labels = df["model"].copy()
    key = df["model_location"].astype(str) + "|" + df["fewshot"].astype(str)
    for label, group in df.groupby("model", sort=False):
        if key[group.index].nunique() < 2:
            continue
        for column in ("model_revision", "model_location"):
            suffix = group[column].astype(str).str[:12] if column == "model_revision" else group[column].astype(str)
            if (key[group.index].groupby(suffix.values).nunique() == 1).all():
                labels[group.index] = f"{label} @" + suffix
                break
    return labels


def preferred(df: pd.DataFrame) -> pd.DataFrame:
    """One run per (model, task), like for like (see the module doc); all of that run's metrics are kept."""
    runs = df.drop_duplicates(["model", "task", "run_id"])
    shared = runs.groupby(["task", "setup"])["model"].transform("nunique")
    ranked = runs.assign(_shared=shared).sort_values(["_shared", "n", "created"], kind="stable", na_position="first")
    chosen = ranked.drop_duplicates(["model", "task"], keep="last")
    return df.merge(chosen[["model", "task", "run_id"]], on=["model", "task", "run_id"]).reset_index(drop=True)


latest = preferred  # the old name: "latest run wins" is now "like for like, then latest"


def select(df: pd.DataFrame, tasks: list[str] | None = None, metrics: list[str] | None = None) -> pd.DataFrame:
    """Rows for the named tasks/metrics; an unknown name is a user error that lists the known ones."""
    for column, wanted in (("task", tasks), ("metric", metrics)):
        if wanted:
            known = list(dict.fromkeys(df[column]))
            unknown = [w for w in wanted if w not in known]
            if unknown:
                raise EvalkitError(f"unknown {column} {', '.join(unknown)}; the results have: {', '.join(known)}")
            df = df[df[column].isin(wanted)]
    return df


def pivot(df: pd.DataFrame, values: str = "value", all_runs: bool = False) -> pd.DataFrame:
    """models x (task, metric) of `values`; one run per model and task (`preferred`), or rows (model, run_id) with all_runs."""
    if not all_runs:
        df = latest(df)
    index = ["model", "run_id"] if all_runs else ["model"]
    order = _column_order(df)
    wide = df.pivot_table(index=index, columns=["task", "metric"], values=values, aggfunc="last", sort=False, dropna=False)
    rows = list(dict.fromkeys(map(tuple, df[index].to_numpy()))) if all_runs else list(dict.fromkeys(df["model"]))
    return wide.reindex(index=pd.MultiIndex.from_tuples(rows, names=index) if all_runs else rows, columns=order)


def _column_order(df: pd.DataFrame) -> pd.MultiIndex:
    """Tasks alphabetically; metrics in the order the task records them."""
    pairs = dict.fromkeys(zip(df["task"], df["metric"]))
    return pd.MultiIndex.from_tuples(sorted(pairs, key=lambda p: p[0]), names=["task", "metric"])


def win_rate(values: pd.DataFrame, higher_is_better: dict[tuple[str, str], bool]) -> pd.Series:
    """Mean win rate (see WIN_RATE_NOTE); NaN for a model with no task metric shared with another model."""
    per_metric = {}
    for column in values.columns:
        present = values[column].dropna()
        if len(present) < 2:
            continue
        signed = present if higher_is_better.get(column, True) else -present
        per_metric[column] = (signed.rank(method="average") - 1) / (len(present) - 1)
    if not per_metric:
        return pd.Series(float("nan"), index=values.index, name=WIN_RATE)
    rates = pd.DataFrame(per_metric).reindex(values.index)
    by_task = rates.T.groupby(level=0, sort=False).mean().T
    return by_task.mean(axis=1).rename(WIN_RATE)


@dataclass
class Board:
    """A leaderboard ready to print: numeric values and stderrs (models x (task, metric)) plus win rates."""

    values: pd.DataFrame
    stderrs: pd.DataFrame
    win_rate: pd.Series
    higher_is_better: dict[tuple[str, str], bool]
    note: str = WIN_RATE_NOTE
    counts: pd.DataFrame | None = None  # documents (n) per cell
    intervals: tuple[pd.DataFrame, pd.DataFrame] | None = None  # stored CI lows and highs (human columns)

    @property
    def columns(self) -> list[str]:
        return [f"{task}/{metric}" for task, metric in self.values.columns]

    def tasks_run(self) -> pd.Series:
        """How many of the shown tasks each row has a value for (the win rate covers only those)."""
        return self.values.notna().T.groupby(level="task").any().sum()

    def interval(self, column: tuple[str, str], row: int) -> tuple[float, float]:
        """The stored 95% interval of a cell (NaN, NaN when the column has none: value ± stderr applies)."""
        if self.intervals is None:
            return float("nan"), float("nan")
        return float(self.intervals[0][column].iloc[row]), float(self.intervals[1][column].iloc[row])

    def display(self) -> pd.DataFrame:
        """Strings: 'value ± stderr', '—' where missing, and the win rate."""
        n_tasks = self.values.columns.get_level_values("task").nunique()
        cells = {WIN_RATE: [MISSING if pd.isna(w) else f"{w:.2f}" for w in self.win_rate],
                 TASKS: [f"{n}/{n_tasks}" for n in self.tasks_run()]}
        for label, column in zip(self.columns, self.values.columns):
            ns = self._counts(column)
            mixed = ns.dropna().nunique() > 1
            cells[label] = [MISSING if pd.isna(v) else (interval_text(column[1], v, *self.interval(column, i)) or format_value(v, s))
                            + (f" (n={int(n)})" if mixed and not pd.isna(n) else "")
                            for i, (v, s, n) in enumerate(zip(self.values[column], self.stderrs[column], ns))]
        out = pd.DataFrame(cells, index=self.values.index)
        return out.reset_index()

    def _counts(self, column: tuple[str, str]) -> pd.Series:
        if self.counts is None:
            return pd.Series(pd.NA, index=self.values.index)
        return self.counts[column]

    def numeric(self) -> pd.DataFrame:
        """One row per model: win rate, then each task metric and its stderr (for CSV)."""
        cells: dict[str, Any] = {WIN_RATE: self.win_rate.to_numpy(), TASKS: self.tasks_run().to_numpy()}
        for label, column in zip(self.columns, self.values.columns):
            cells[label] = self.values[column].to_numpy()
            cells[f"{label} stderr"] = self.stderrs[column].to_numpy()
            cells[f"{label} n"] = self._counts(column).to_numpy()
            if self.intervals is not None and self.intervals[0][column].notna().any():
                cells[f"{label} ci_low"], cells[f"{label} ci_high"] = (x[column].to_numpy() for x in self.intervals)
        return pd.DataFrame(cells, index=self.values.index).reset_index()

    def to_text(self) -> str:
        table = self.display()
        names = [c for c in ("model", "run_id") if c in table.columns]
        left = {c: f"{{:<{max(len(c), table[c].str.len().max())}}}".format for c in names}
        return table.to_string(index=False, formatters=left) + "\n\n" + self.note + "\n"

    def to_csv(self) -> str:
        return self.numeric().to_csv(index=False)

    def to_markdown(self) -> str:
        table = self.display()
        header = [str(c) for c in table.columns]
        lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
                 "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
        return "\n".join(lines) + f"\n\n*{self.note}*\n"

    def to_html(self) -> str:
        table = self.display().to_html(index=False, escape=True, border=0, classes="leaderboard")
        return (f'<!doctype html>\n<html><head><meta charset="utf-8"><title>evalkit leaderboard</title></head>\n'
                f"<body>\n{table}\n<p>{html.escape(self.note)}</p>\n</body></html>\n")

    def render(self, fmt: str) -> str:
        renderers = {"table": self.to_text, "csv": self.to_csv, "md": self.to_markdown, "html": self.to_html}
        if fmt not in renderers:
            raise EvalkitError(f"unknown format '{fmt}'; use one of {', '.join(renderers)}")
        return renderers[fmt]()


def _md_cell(value: Any) -> str:
    """A Markdown table cell: HTML escaped (a model name cannot add markup), pipes and backslashes escaped."""
    text = html.escape(str(value), quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.split())


def build_board(df: pd.DataFrame, sort: str | None = None, all_runs: bool = False) -> Board:
    """The wide leaderboard of a tidy frame, sorted by win rate (default) or by one task metric."""
    if df.empty:
        raise EvalkitError("no results left to show; check --tasks and --metrics")
    if all_runs and "complete" in df:  # a killed run's row says so
        df = df.assign(run_id=df["run_id"].where(df["complete"].astype(bool), df["run_id"] + INCOMPLETE))
    values = pivot(df, "value", all_runs)
    stderrs = pivot(df, "stderr", all_runs)
    counts = pivot(df, "n", all_runs)
    higher = {(t, m): bool(h) for t, m, h in df[["task", "metric", "higher_is_better"]].itertuples(index=False)}
    rates = win_rate(values, higher)
    shown = df if all_runs else preferred(df)
    notes = [*config_warnings(shown), *setup_warnings(shown), *([] if all_runs else set_aside_notes(df, shown)),
             *leaderboard_notes(shown)]
    note = " ".join([WIN_RATE_NOTE, documents_note(shown), *notes])
    lows, highs = pivot(df, "ci_low", all_runs), pivot(df, "ci_high", all_runs)
    board = Board(values, stderrs, rates, higher, note, counts)
    key, ascending = _sort_key(board, sort)
    order = key.sort_values(ascending=ascending, na_position="last", kind="stable").index
    return Board(values.loc[order], stderrs.loc[order], rates.loc[order], higher, note, counts.loc[order],
                 (lows.loc[order], highs.loc[order]))


def _sort_key(board: Board, sort: str | None) -> tuple[pd.Series, bool]:
    if sort in (None, "", WIN_RATE, "win_rate", "rank"):
        return board.win_rate, False
    matches = [c for c, label in zip(board.values.columns, board.columns) if sort in (label, c[1])]
    if len(matches) != 1:
        problem = "is ambiguous" if matches else "is not in the table"
        raise EvalkitError(f"--sort {sort} {problem}; use 'win_rate' or one of: {', '.join(board.columns)}")
    return board.values[matches[0]], not board.higher_is_better[matches[0]]


class _CallableModule(types.ModuleType):
    def __call__(self, path: str | os.PathLike) -> pd.DataFrame:
        return leaderboard(path)


sys.modules[__name__].__class__ = _CallableModule
