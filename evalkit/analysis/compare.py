"""`evalkit compare`: is a candidate checkpoint better, worse or the same as a baseline, within noise?

Both runs must have used the same task specs, and every document they share must hold the same
content (see `comparability.py`); the metrics are then recomputed from the logged samples on the
shared documents and tested pairwise (`paired.py`), the p-values adjusted for the number of rows
(Holm by default), and each row judged by the gate (`gate.py`): it *fails* the comparison (exit 1)
when the candidate is confidently worse than the row's tolerance, or when it cannot be tested
(non-finite values) unless untestable rows are allowed. Runs that cannot be compared raise
EvalkitError (exit 2).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import EvalkitError
from ..metrics import Scorer, build_metric
from ..results import RESULTS_FILE, find_runs, read_results
from .comparability import aligned_samples, cache_notes, check_same_config, same_token_counts, tokenizer_check
from .gate import (  # noqa: F401  (re-exported: the public names of `evalkit compare`)
    ADJUSTMENTS, IMPROVED, PER_DOCUMENT_BINARY, REGRESSED, UNCHANGED, UNTESTABLE, WITHIN, MetricComparison,
    Tolerance, check_test_options, compare_scorers, decide, parse_tolerance, parse_tolerance_args,
)
from .paired import CI_LEVEL, paired_bootstrap
from .human_compare import HUMAN_NOTE, human_rows

FORMATS = ("table", "json", "md")


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
class Comparison:
    baseline: RunRef
    candidate: RunRef
    alpha: float
    iterations: int
    seed: int
    rows: list[MetricComparison]
    notes: list[str]
    adjust: str = "holm"
    allow_untestable: bool = False

    @property
    def failures(self) -> list[MetricComparison]:
        """Rows that fail the gate: regressed beyond tolerance, or untestable (unless allowed)."""
        return [row for row in self.rows if row.fails]

    @property
    def regressions(self) -> list[MetricComparison]:
        return [row for row in self.rows if row.fails and row.verdict == REGRESSED]

    @property
    def untestable(self) -> list[MetricComparison]:
        return [row for row in self.rows if row.verdict == UNTESTABLE]

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def to_dict(self) -> dict[str, Any]:
        def clean(value):
            return None if isinstance(value, float) and not math.isfinite(value) else value

        run = lambda ref: {"path": str(ref.path), "run_id": ref.run_id, "model": ref.model}  # noqa: E731
        return {
            "baseline": run(self.baseline), "candidate": run(self.candidate), "alpha": self.alpha,
            "adjust": self.adjust, "allow_untestable": self.allow_untestable,
            "ci_level": CI_LEVEL, "bootstrap_iterations": self.iterations, "seed": self.seed,
            "metrics": [{k: clean(v) for k, v in asdict(row).items()} for row in self.rows],
            "notes": self.notes, "regressions": [f"{r.task}/{r.metric}" for r in self.regressions],
            "untestable": [f"{r.task}/{r.metric}" for r in self.untestable],
            "failures": [f"{r.task}/{r.metric}" for r in self.failures], "exit_code": self.exit_code,
        }


def compare_runs(baseline: str | os.PathLike, candidate: str | os.PathLike, *, alpha: float = 0.05,
                 tolerances: Mapping[str, Any] | None = None, tasks: Iterable[str] | None = None,
                 metrics: Iterable[str] | None = None, iterations: int = 1000, seed: int = 1234,
                 adjust: str = "holm", allow_untestable: bool = False, across_prompt_formats: bool = False) -> Comparison:
    """Compare every task and metric two runs share (or the given ones) on their shared documents.

    tolerances: {metric or "task/metric": amount or "2%"}; the task-qualified key wins.
    adjust: "holm" (default), "bh" or "none": how p-values are adjusted over the compared rows.
    allow_untestable: rows whose test cannot be computed (non-finite values) do not fail the gate.
    across_prompt_formats: pair a chat-template run with a plain one of the same task config (refused otherwise).
    """
    check_test_options(alpha, iterations, adjust)
    tols = {k: v if isinstance(v, Tolerance) else parse_tolerance(v, k) for k, v in (tolerances or {}).items()}
    base, cand = open_run(baseline), open_run(candidate)
    shared = _shared_tasks(base, cand, list(tasks) if tasks is not None else None)
    wanted = set(metrics) if metrics is not None else None
    notes: list[str] = []
    pairs: list[tuple[str, Scorer, Scorer, list[str]]] = []  # (task, baseline scorer, candidate scorer, names)
    same_counts: dict[str, bool] = {}
    for task in shared:
        inputs_differ = check_same_config(task, base, cand, across_prompt_formats)
        base_records, cand_records, task_notes = aligned_samples(task, base, cand, inputs_differ)
        notes += task_notes + cache_notes(task, base, cand)
        same_counts[task] = same_token_counts(base_records, cand_records)
        spec = base.results["config"]["tasks"][task]["spec"]
        labels = tuple(spec.get("labels") or [c.strip() for c in spec.get("choices") or []])
        for metric in spec["metrics"]:
            b = _scorer(metric, base_records, labels, task, base)
            c = _scorer(metric, cand_records, labels, task, cand)
            pairs.append((task, b, c, [n for n in b.names if wanted is None or n in wanted]))
    human = [h for h in human_rows(base.path, base.run_id, cand.path, cand.run_id, shared) if wanted is None or h.metric in wanted]
    compared = [(task, name) for task, _, _, names in pairs for name in names]
    _check_names_used(compared + [(h.task, h.metric) for h in human], wanted, tols)
    left_out, tokenizer_notes = tokenizer_check(base, cand, compared, wanted, same_counts)
    notes += tokenizer_notes
    rows: list[MetricComparison] = []
    for task, b, c, names in pairs:
        names = [n for n in names if (task, n) not in left_out]
        if names:
            deltas = paired_bootstrap(b, c, iterations, seed)
            rows += compare_scorers(task, b, c, names, deltas, lambda name, task=task: _tolerance(tols, task, name))
    notes += [HUMAN_NOTE] if human else []
    for h in human:  # human ratings (see human_compare.py): the same gate, adjustment and exit codes
        tol = _tolerance(tols, h.task, h.metric)
        margin = tol.allowed(h.baseline)
        rows.append(MetricComparison(h.task, h.metric, h.n, h.baseline, h.candidate, h.delta, h.ci_low, h.ci_high,
                                     h.p_value, h.test, True, str(tol), margin,
                                     h.p_value if margin == 0 else h.p_at(margin), detail=h.detail))
    decide(rows, alpha, adjust, allow_untestable)
    return Comparison(base, cand, alpha, iterations, seed, rows, notes, adjust, allow_untestable)


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


ADJUST_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no adjustment"}


def _with_tolerances(cmp: Comparison) -> bool:
    return any(r.margin != 0 for r in cmp.rows)


def _cells(row: MetricComparison, tolerances: bool) -> list[str]:
    ref = _scale(row)
    ci = f"[{_num(row.ci_low, True, ref)}, {_num(row.ci_high, True, ref)}]"
    arrow = "↑" if row.higher_is_better else "↓"
    cells = [row.task, f"{row.metric} {arrow}", str(row.n), _num(row.baseline, ref=ref), _num(row.candidate, ref=ref),
             _num(row.delta, True, ref), ci, _p(row.p_value), _p(row.p_adjusted)]
    if tolerances:
        cells += [row.tolerance, _p(row.p_tolerance_adjusted)]
    return cells + [row.test, row.verdict.upper() if row.fails else row.verdict]


def _header(tolerances: bool) -> list[str]:
    return ["task", "metric", "n", "baseline", "candidate", "delta", "95% CI of delta", "p", "p adj",
            *(["tolerance", "p vs tol adj"] if tolerances else []), "test", "verdict"]


def format_comparison(comparison: Comparison, fmt: str = "table") -> str:
    """The comparison as an aligned text table, a Markdown table or JSON."""
    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False)
    if fmt not in FORMATS:
        raise EvalkitError(f"unknown format '{fmt}' (use one of: {', '.join(FORMATS)})")
    cmp, tolerances = comparison, _with_tolerances(comparison)
    header, rows = _header(tolerances), [_cells(r, tolerances) for r in comparison.rows]
    gate = ("a row fails when it is worse than its tolerance and 'p vs tol adj' < alpha" if tolerances
            else "a row fails when it is worse and 'p adj' < alpha")
    head = [f"baseline:  {cmp.baseline.run_id} ({cmp.baseline.model})",
            f"candidate: {cmp.candidate.run_id} ({cmp.candidate.model})",
            f"paired tests on shared doc_ids, alpha {cmp.alpha:g}; 'p adj': {ADJUST_NAMES[cmp.adjust]} over the "
            f"{len(cmp.rows)} rows; {gate}",
            f"CI and corpus-metric p from a paired bootstrap ({cmp.iterations} resamples, seed {cmp.seed}); "
            "↑/↓ = higher/lower is better"]
    if fmt == "md":
        table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        table += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        head = [line + "  " for line in head]
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
        table.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([*head, "", *table, "", *[f"note: {n}" for n in cmp.notes], _outcome(cmp)])


def _outcome(cmp: Comparison) -> str:
    regressed = [f"{r.task}/{r.metric} {_num(r.delta, True, _scale(r))} (p adj={_p(r.p_tolerance_adjusted)}, "
                 f"tolerance {r.tolerance})" for r in cmp.regressions]
    untestable = [f"{r.task}/{r.metric}" for r in cmp.failures if r.verdict == UNTESTABLE]
    if regressed or untestable:
        parts = ["REGRESSION: " + "; ".join(regressed)] if regressed else []
        if untestable:
            parts.append(f"UNTESTABLE: {', '.join(untestable)} (non-finite values; --allow-untestable accepts them)")
        return "result: " + "; ".join(parts)
    counts = {v: sum(r.verdict == v for r in cmp.rows) for v in (IMPROVED, WITHIN, UNCHANGED, UNTESTABLE)}
    allowed = f", {counts[UNTESTABLE]} not testable (allowed)" if counts[UNTESTABLE] else ""
    return (f"result: no regression beyond tolerance ({counts[IMPROVED]} improved, "
            f"{counts[WITHIN]} regressed within tolerance, {counts[UNCHANGED]} unchanged{allowed})")
