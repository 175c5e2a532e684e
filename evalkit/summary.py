"""The plain-text table printed at the end of a run."""

from __future__ import annotations

from typing import Any


def format_value(value: float, stderr: float) -> str:
    if value != value:  # nan
        return "nan"
    digits = 4 if abs(value) < 10 else 2
    err = "" if stderr != stderr else f" ± {stderr:.{digits}f}"
    return f"{value:.{digits}f}{err}"


def summary_table(results: dict[str, Any]) -> str:
    rows = [("task", "metric", "value ± stderr", "n", "seconds")]
    for task, res in results["tasks"].items():
        for metric, m in res["metrics"].items():
            rows.append((task, metric, format_value(m["value"], m["stderr"]), str(res["n"]), f"{res['seconds']:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    model = results["model"]
    where = ", ".join(str(model[k]) for k in ("dtype", "device") if model.get(k))
    head = f"model: {model.get('spec')} ({where})  run: {results['run_id']}"
    return head + "\n" + "\n".join(lines)
