"""Non-finite log-likelihoods (NaN, +inf, -inf) are an error of the run, never a score.

A model that outputs NaN would otherwise get an accuracy: `max` over `[nan, nan]` picks the first
choice. Instead, a multiple-choice document with a non-finite log-likelihood has no prediction
(`prediction: null`, `nonfinite: true` in the samples file), each task counts its non-finite
responses (`tasks.<task>.nonfinite_loglikelihoods` in results.json), a task with any has NaN metric
values (with an `invalid` note), and after writing every file the run raises InvalidRunError:
one line, exit code 3.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from .errors import InvalidRunError
from .metrics import EVALUATE, metric_class
from .metrics.naming import renamed

RESULT_KEY = "nonfinite_loglikelihoods"


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def best_choice(loglikelihoods: Sequence[float]) -> int | None:
    """The index of the most likely choice; None when any log-likelihood is not finite (no argmax over NaN)."""
    if not loglikelihoods or not all(is_finite(x) for x in loglikelihoods):
        return None
    return max(range(len(loglikelihoods)), key=lambda i: loglikelihoods[i])


def count_nonfinite(responses: Sequence[Any]) -> int:
    """Responses that carry a log-likelihood (`logprob`) that is not a finite number."""
    return sum(hasattr(r, "logprob") and not is_finite(r.logprob) for r in responses)


def invalid_metrics(metric_specs: Sequence[Any], bad: int, total: int) -> dict[str, Any]:
    """NaN values for every metric of a task with non-finite log-likelihoods, under their reported names, each
    saying why (an `evaluate` module's values, unknown without running it, appear under its `as:` name)."""
    note = f"{bad} of {total} log-likelihoods were not finite (NaN or inf); the metric is not computed"
    out: dict[str, Any] = {}
    for metric in metric_specs:
        if metric.name == EVALUATE:
            names, higher, scale = [metric.alias or EVALUATE], metric.higher_is_better is not False, None
        else:
            cls = metric_class(metric.name)
            names = list(renamed(cls.names, metric.alias).values()) if metric.alias else list(cls.names)
            higher, scale = cls.higher_is_better, cls.scale
        for name in names:
            out[name] = {"value": float("nan"), "stderr": float("nan"), "higher_is_better": higher,
                         "scale": scale, "stderr_method": "none", "metric": metric.name, "invalid": note}
    return out


def raise_if_nonfinite(run_dir: Path, results: dict[str, Any]) -> None:
    """One line naming each task with non-finite log-likelihoods, after the result files are written."""
    bad = {task: r.get(RESULT_KEY, 0) for task, r in results["tasks"].items() if r.get(RESULT_KEY)}
    if not bad:
        return
    tasks = ", ".join(f"{task} ({n} of {(results['tasks'][task].get('throughput') or {}).get('requests', '?')} requests)" for task, n in bad.items())
    raise InvalidRunError(
        f"the model returned non-finite log-likelihoods (NaN or inf) in {tasks}: those tasks' metrics are NaN and "
        f"must not be used (files written to {run_dir}); check the weights, or try --dtype float32",
        run_dir=run_dir, results=results)
