"""`evalkit compare`: is a candidate checkpoint better, worse or the same as a baseline, within noise?

Both runs must have used the same task configs (config hashes match); the metrics are then
recomputed from the logged samples on the documents the two runs share (matched by doc_id) and
tested pairwise (see `paired.py`). A metric *regresses* when the change is significant at alpha and
goes the wrong way for that metric (higher_is_better); it *fails* the comparison (exit 1) when it
regressed by more than its tolerance. Runs that cannot be compared raise EvalkitError (exit 2).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import EvalkitError
from ..metrics import Scorer, build_metric
from .human_compare import HUMAN_NOTE, human_rows
from .paired import CI_LEVEL, bootstrap_p_value, mcnemar_exact, paired_bootstrap, percentile_ci
from ..results import RESULTS_FILE, find_runs, read_results, read_samples

# metrics with a 0/1 outcome per document, tested with McNemar; everything else is bootstrapped
PER_DOCUMENT_BINARY = ("accuracy", "exact_match", "acc_norm", "acc_bytes", "squad_exact_match")  # built-in names; the test uses Scorer.binary_outcomes (aliases too)
IMPROVED, REGRESSED, WITHIN, UNCHANGED = "improved", "regressed", "regressed within tolerance", "no significant change"
FORMATS = ("table", "json", "md")


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


@dataclass
class RunRef:
    path: Path
    run_id: str
    model: str
    results: dict[str, Any] = field(repr=False)


def open_run(path: str | os.PathLike) -> RunRef:
    """A run directory, or a directory holding exactly one run."""
    path = Path(path)
    if not (path / RESULTS_FILE).is_file() and path.is_dir():
        runs = find_runs(path)
        if len(runs) != 1:
            found = f"{len(runs)} runs (e.g. {runs[0]})" if runs else "no run"
            raise EvalkitError(f"{path} holds {found}; pass one run directory (the folder with results.json)")
        path = runs[0]
    results = read_results(path)
    return RunRef(path, str(results["run_id"]), str((results.get("model") or {}).get("spec") or "?"), results)


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
    p_value: float
    test: str
    higher_is_better: bool
    verdict: str
    tolerance: str
    fails: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    baseline: RunRef
    candidate: RunRef
    alpha: float
    iterations: int
    seed: int
    rows: list[MetricComparison]
    notes: list[str]

    @property
    def regressions(self) -> list[MetricComparison]:
        return [row for row in self.rows if row.fails]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0

    def to_dict(self) -> dict[str, Any]:
        def clean(value):
            return None if isinstance(value, float) and not math.isfinite(value) else value

        run = lambda ref: {"path": str(ref.path), "run_id": ref.run_id, "model": ref.model}  # noqa: E731
        return {
            "baseline": run(self.baseline), "candidate": run(self.candidate), "alpha": self.alpha,
            "ci_level": CI_LEVEL, "bootstrap_iterations": self.iterations, "seed": self.seed,
            "metrics": [{k: clean(v) for k, v in asdict(row).items()} for row in self.rows],
            "notes": self.notes, "regressions": [f"{r.task}/{r.metric}" for r in self.regressions],
            "exit_code": self.exit_code,
        }


def check_test_options(alpha: float, iterations: int) -> None:
    if not 0 < alpha < 1:
        raise EvalkitError(f"alpha must be between 0 and 1, got {alpha}")
    if iterations < 100:
        raise EvalkitError(f"bootstrap iterations must be at least 100, got {iterations}")


def compare_runs(baseline: str | os.PathLike, candidate: str | os.PathLike, *, alpha: float = 0.05,
                 tolerances: Mapping[str, Any] | None = None, tasks: Iterable[str] | None = None,
                 metrics: Iterable[str] | None = None, iterations: int = 1000, seed: int = 1234) -> Comparison:
    """Compare every task and metric two runs share (or the given ones) on their shared documents.

    tolerances: {metric or "task/metric": amount or "2%"}; the task-qualified key wins.
    """
    check_test_options(alpha, iterations)
    tols = {k: v if isinstance(v, Tolerance) else parse_tolerance(v, k) for k, v in (tolerances or {}).items()}
    base, cand = open_run(baseline), open_run(candidate)
    shared = _shared_tasks(base, cand, list(tasks) if tasks is not None else None)
    wanted = set(metrics) if metrics is not None else None
    notes: list[str] = []
    pairs: list[tuple[str, Scorer, Scorer, list[str]]] = []  # (task, baseline scorer, candidate scorer, names)
    for task in shared:
        _check_same_config(task, base, cand)
        base_records, cand_records, note = _aligned_samples(task, base, cand)
        notes += [note] if note else []
        spec = base.results["config"]["tasks"][task]["spec"]
        labels = tuple(spec.get("labels") or [c.strip() for c in spec.get("choices") or []])
        for metric in spec["metrics"]:
            b = _scorer(metric, base_records, labels, task, base)
            c = _scorer(metric, cand_records, labels, task, cand)
            pairs.append((task, b, c, [n for n in b.names if wanted is None or n in wanted]))
    human = [h for h in human_rows(base.path, base.run_id, cand.path, cand.run_id, shared) if wanted is None or h.metric in wanted]
    _check_names_used([(task, name) for task, _, _, names in pairs for name in names] + [(h.task, h.metric) for h in human],
                      wanted, tols)
    rows: list[MetricComparison] = []
    for task, b, c, names in pairs:
        if names:
            deltas = paired_bootstrap(b, c, iterations, seed)
            rows += [_compare_metric(task, name, b, c, deltas[name], alpha, _tolerance(tols, task, name)) for name in names]
    notes += [HUMAN_NOTE] if human else []
    for h in human:  # human ratings (see human_compare.py): the same verdicts and exit codes
        tolerance = _tolerance(tols, h.task, h.metric)
        verdict = _verdict(h.delta, h.p_value, True, tolerance.allowed(h.baseline), alpha)
        rows.append(MetricComparison(h.task, h.metric, h.n, h.baseline, h.candidate, h.delta, h.ci_low, h.ci_high,
                                     h.p_value, h.test, True, verdict, str(tolerance), verdict == REGRESSED, h.detail))
    return Comparison(base, cand, alpha, iterations, seed, rows, notes)


def _shared_tasks(base: RunRef, cand: RunRef, tasks: list[str] | None) -> list[str]:
    in_base, in_cand = list(base.results["tasks"]), set(cand.results["tasks"])
    if tasks is not None:
        for task in tasks:
            for ref, have in ((base, in_base), (cand, in_cand)):
                if task not in have:
                    raise EvalkitError(f"task '{task}' is not in run {ref.path} (it has: {', '.join(sorted(have)) or 'none'})")
        return list(tasks)
    shared = [t for t in in_base if t in in_cand]
    if not shared:
        raise EvalkitError(f"cannot compare: the runs share no task (baseline has {', '.join(in_base) or 'none'}; "
                           f"candidate has {', '.join(sorted(in_cand)) or 'none'})")
    return shared


def _check_same_config(task: str, base: RunRef, cand: RunRef) -> None:
    b_cfg = base.results.get("config", {}).get("tasks", {}).get(task, {})
    c_cfg = cand.results.get("config", {}).get("tasks", {}).get(task, {})
    if not b_cfg.get("hash") or not c_cfg.get("hash") or "spec" not in b_cfg:
        raise EvalkitError(f"cannot compare task '{task}': a run does not record its task config (hash and spec); re-run it with this evalkit")
    if b_cfg["hash"] != c_cfg["hash"]:
        fields = _differences(b_cfg.get("spec"), c_cfg.get("spec"))
        which = f"; differing fields: {', '.join(fields[:4])}" if fields else ""
        raise EvalkitError(f"cannot compare task '{task}': the runs used different task configs (baseline hash "
                           f"{b_cfg['hash']}, candidate hash {c_cfg['hash']}{which}); evaluate both with the same config")


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))]
    return [] if a == b else [prefix or "<spec>"]


def _aligned_samples(task: str, base: RunRef, cand: RunRef) -> tuple[list[dict], list[dict], str | None]:
    """Both runs' sample records on their shared doc_ids, in the baseline's order."""
    base_rows, cand_rows = read_samples(base.path, task), read_samples(cand.path, task)
    for ref, rows in ((base, base_rows), (cand, cand_rows)):
        if not all(isinstance(r, dict) and "doc_id" in r for r in rows):
            raise EvalkitError(f"{ref.path}: a sample of task '{task}' has no doc_id; the samples file is damaged or from another tool")
        ids = [json.dumps(r["doc_id"]) for r in rows]
        if len(set(ids)) != len(ids):
            raise EvalkitError(f"{ref.path}: task '{task}' logs a doc_id more than once; the samples file is corrupt")
    by_id = {json.dumps(r["doc_id"]): r for r in cand_rows}
    shared = [r for r in base_rows if json.dumps(r["doc_id"]) in by_id]
    if not shared:
        raise EvalkitError(f"cannot compare task '{task}': the runs share no document (baseline {len(base_rows)} doc_ids, "
                           f"candidate {len(cand_rows)}); run both with the same --limit, --seed and data")
    note = None
    if len(shared) != len(base_rows) or len(shared) != len(cand_rows):
        note = (f"{task}: compared on the {len(shared)} documents both runs scored "
                f"(baseline has {len(base_rows)}, candidate {len(cand_rows)})")
    return shared, [by_id[json.dumps(r["doc_id"])] for r in shared], note


def _scorer(metric: dict[str, Any], records: list[dict], labels: tuple[str, ...], task: str, ref: RunRef) -> Scorer:
    try:
        return build_metric(metric, records, labels)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise EvalkitError(f"{ref.path}: the samples of task '{task}' lack what metric '{metric['name']}' needs "
                           f"({type(err).__name__}: {err}); the samples file is damaged or from another tool") from None


def _tolerance(tols: Mapping[str, Tolerance], task: str, metric: str) -> Tolerance:
    return tols.get(f"{task}/{metric}") or tols.get(metric) or Tolerance()


def _check_names_used(compared: list[tuple[str, str]], wanted: set[str] | None, tols: Mapping[str, Tolerance]) -> None:
    """Every metric asked for and every tolerance key must name something compared (typos fail loudly)."""
    metrics = {metric for _, metric in compared}
    qualified = {f"{task}/{metric}" for task, metric in compared}
    known = ", ".join(sorted(metrics)) or "none"
    for name in sorted(wanted or ()):
        if name not in metrics:
            raise EvalkitError(f"metric '{name}' is not reported by the compared tasks (they report: {known})")
    for key in tols:
        if key not in metrics and key not in qualified:
            raise EvalkitError(f"tolerance names '{key}', which no compared task reports; use a metric ({known}) or TASK/METRIC")


def _compare_metric(task: str, name: str, b: Scorer, c: Scorer, deltas: np.ndarray, alpha: float,
                    tolerance: Tolerance) -> MetricComparison:
    everything = np.arange(b.n)
    base_value, cand_value = float(b.score(everything)[name]), float(c.score(everything)[name])
    delta = cand_value - base_value
    detail: dict[str, Any] = {}
    if name in b.binary_outcomes:
        outcome = lambda s: np.array([row[name] for row in s.per_sample()]) > 0.5  # noqa: E731
        test = mcnemar_exact(outcome(b), outcome(c))
        p_value, test_name = test.p_value, "McNemar exact"
        detail = {"improved_docs": test.improved, "worsened_docs": test.worsened}
    else:
        p_value, test_name = bootstrap_p_value(deltas), "paired bootstrap"
    ci_low, ci_high = percentile_ci(deltas)
    higher = b.higher_is_better_for(name)
    verdict = _verdict(delta, p_value, higher, tolerance.allowed(base_value), alpha)
    return MetricComparison(task, name, b.n, base_value, cand_value, delta, ci_low, ci_high, p_value, test_name,
                            higher, verdict, str(tolerance), verdict == REGRESSED, detail)


def _verdict(delta: float, p_value: float, higher: bool, allowed: float, alpha: float) -> str:
    worse_by = -delta if higher else delta
    if not math.isfinite(p_value) or p_value >= alpha or delta == 0:
        return UNCHANGED if math.isfinite(p_value) else "not testable (non-finite values)"
    if worse_by < 0:
        return IMPROVED
    return REGRESSED if worse_by > allowed else WITHIN


def _num(x: float, signed: bool = False, ref: float | None = None) -> str:
    if not math.isfinite(x):
        return "nan"
    scale = abs(x if ref is None else ref)
    if scale >= 1e6:
        return f"{x:+.4g}" if signed else f"{x:.4g}"
    digits = 4 if scale < 10 else 2
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _p(p: float) -> str:
    return "nan" if not math.isfinite(p) else f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _scale(row: MetricComparison) -> float | None:
    """The magnitude that sets how many decimals a row's numbers get."""
    return max(abs(row.baseline), abs(row.candidate)) if math.isfinite(row.baseline) else None


def _cells(row: MetricComparison) -> list[str]:
    ref = _scale(row)
    ci = f"[{_num(row.ci_low, True, ref)}, {_num(row.ci_high, True, ref)}]"
    arrow = "↑" if row.higher_is_better else "↓"
    return [row.task, f"{row.metric} {arrow}", str(row.n), _num(row.baseline, ref=ref), _num(row.candidate, ref=ref),
            _num(row.delta, True, ref), ci, _p(row.p_value), row.test, row.verdict.upper() if row.fails else row.verdict]


HEADER = ["task", "metric", "n", "baseline", "candidate", "delta", "95% CI of delta", "p", "test", "verdict"]


def format_comparison(comparison: Comparison, fmt: str = "table") -> str:
    """The comparison as an aligned text table, a Markdown table or JSON."""
    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False)
    if fmt not in FORMATS:
        raise EvalkitError(f"unknown format '{fmt}' (use one of: {', '.join(FORMATS)})")
    cmp, rows = comparison, [_cells(r) for r in comparison.rows]
    head = [f"baseline:  {cmp.baseline.run_id} ({cmp.baseline.model})",
            f"candidate: {cmp.candidate.run_id} ({cmp.candidate.model})",
            f"paired tests on shared doc_ids, alpha {cmp.alpha:g}; CI and corpus-metric p from a paired bootstrap "
            f"({cmp.iterations} resamples, seed {cmp.seed}); ↑/↓ = higher/lower is better"]
    if fmt == "md":
        table = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        table += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        head = [line + "  " for line in head]
    else:
        widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
        table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [HEADER, *rows]]
        table.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*head, "", *table, "", *[f"note: {n}" for n in cmp.notes], _outcome(cmp)])


def _outcome(cmp: Comparison) -> str:
    if cmp.regressions:
        parts = [f"{r.task}/{r.metric} {_num(r.delta, True, _scale(r))} (p={_p(r.p_value)}, tolerance {r.tolerance})"
                 for r in cmp.regressions]
        return "result: REGRESSION: " + "; ".join(parts)
    counts = {v: sum(r.verdict == v for r in cmp.rows) for v in (IMPROVED, WITHIN, UNCHANGED)}
    return (f"result: no regression beyond tolerance ({counts[IMPROVED]} improved, "
            f"{counts[WITHIN]} regressed within tolerance, {counts[UNCHANGED]} unchanged)")
