"""`evalkit review`: one self-contained HTML page on which a person rates model outputs.

One run: single mode (each output on the rubric's scales). Two runs: pairwise mode (both outputs of a
document side by side, blind, in a seeded random order that is recorded; pick A, B or tie). The page
follows the report's rules (see report.py): inline CSS and JavaScript allowed by hash in a
Content-Security-Policy, all model text as JSON in a `<script type="application/json">` block with
`<`, `>` and `&` escaped, only `textContent` in the script, no request of any kind. Ratings live in
the browser's localStorage as the rater goes and leave as a JSON or CSV file (see ratings.py).

Sampling: per task, a seeded sample stratified by the automatic metric, so good and bad outputs are
both rated: the documents are cut into up to five equal-size bins by the first per-sample score (in
pairwise mode by the difference between the runs), and each bin gives its proportional share.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EvalkitError
from ..results import read_samples
from .compare import RunRef, open_run
from .ratings import FORMAT, SIDES, content_hash
from .report import _sha256, script_json
from .rubric import Rubric, check_mode, load_rubric

STATIC = Path(__file__).with_name("review_static")
BINS = 5


def build_review(runs: list[str | os.PathLike], task: str | None = None, n: int = 50, seed: int = 1234,
                 rubric: str | os.PathLike | None = None) -> tuple[str, dict[str, Any]]:
    """The review page as HTML text, and its page data (items, rubric, runs) for callers and tests."""
    if not 1 <= len(runs) <= 2:
        raise EvalkitError(f"review takes one run (single mode) or two runs (pairwise mode), got {len(runs)}")
    if n < 1:
        raise EvalkitError(f"--n must be at least 1, got {n}")
    refs = [open_run(r) for r in runs]
    if len(refs) == 2 and refs[0].run_id == refs[1].run_id:
        raise EvalkitError(f"both runs are {refs[0].run_id}; pairwise review compares two different runs")
    mode = "single" if len(refs) == 1 else "pairwise"
    chosen = load_rubric(rubric, mode)
    check_mode(chosen, mode)
    rng = np.random.default_rng(seed)
    items, strata = [], {}
    for name in _tasks(refs, task):
        task_items, strata[name] = _task_items(refs, name, n, rng, chosen)
        items += task_items
    order = rng.permutation(len(items))
    items = [items[i] for i in order]
    page_id = hashlib.sha256(json.dumps([chosen.hash, seed, [(i["key"], i["hash"]) for i in items]]).encode()).hexdigest()[:16]
    data = {
        "format": FORMAT, "page": {"id": page_id, "mode": mode, "seed": seed, "n": n, "strata": strata,
                                   "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   "runs": [{"run_id": r.run_id} for r in refs]},
        "rubric": {**chosen.to_dict(), "hash": chosen.hash}, "items": items,
    }
    return render(data, chosen, refs), data


def _tasks(refs: list[RunRef], task: str | None) -> list[str]:
    if task:
        for ref in refs:
            if task not in ref.results["tasks"]:
                have = ", ".join(sorted(ref.results["tasks"])) or "none"
                raise EvalkitError(f"task '{task}' is not in run {ref.path} (it has: {have})")
        return [task]
    first = refs[0].results
    shared = [t for t in first["tasks"] if all(t in r.results["tasks"] for r in refs)]
    kinds = {t: ((first.get("config") or {}).get("tasks", {}).get(t, {}).get("spec") or {}).get("kind") for t in shared}
    generated = [t for t in shared if kinds[t] == "generate"]
    if not generated:
        raise EvalkitError(f"the run{'s share' if len(refs) > 1 else ' has'} no generation task to review "
                           f"({', '.join(shared) or 'no shared task'}); pass --task T to review another task")
    return generated


def _task_items(refs: list[RunRef], task: str, n: int, rng: np.random.Generator,
                rubric: Rubric) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    per_run = []
    for ref in refs:
        rows = read_samples(ref.path, task)
        by_id = {str(r.get("doc_id")): r for r in rows}
        if len(by_id) != len(rows):
            raise EvalkitError(f"{ref.path}: task '{task}' logs a doc_id more than once; the samples file is corrupt")
        per_run.append(by_id)
    doc_ids = [d for d in per_run[0] if all(d in other for other in per_run[1:])]
    if not doc_ids:
        raise EvalkitError(f"the runs share no document of task '{task}'; review runs made with the same --limit, --seed and data")
    for doc in doc_ids:
        prompts = {str(run[doc].get("prompt")) for run in per_run}
        if len(prompts) > 1:
            raise EvalkitError(f"task '{task}' doc {doc}: the runs were given different prompts; pairwise review needs the "
                               f"same prompt for both outputs (run both with the same task config and few-shot setting)")
    metric = _first_score(per_run[0][doc_ids[0]])
    scores = [_score(per_run, doc, metric) for doc in doc_ids]
    chosen = stratified_sample(scores, n, rng)
    items = []
    for i in chosen:
        doc = doc_ids[i]
        first = per_run[0][doc]
        order = list(range(len(refs))) if len(refs) == 1 else list(rng.permutation(len(refs)))
        outputs = [{"side": side, "run": refs[k].run_id, "text": _text(per_run[k][doc].get("prediction"))}
                   for side, k in zip(SIDES, order)]
        prompt = _text(first.get("prompt"))
        references = first.get("references") or ([first["gold"]] if first.get("gold") is not None else [])
        items.append({
            "key": f"{task}/{doc}", "task": task, "doc_id": first.get("doc_id"), "source": prompt,
            "references": [_text(r) for r in references] if rubric.show_reference else [],
            "outputs": outputs, "hash": content_hash(task, first.get("doc_id"), prompt, [(o["run"], o["text"]) for o in outputs]),
        })
    how = "by the difference between the runs" if len(refs) > 1 else "per document"
    strata = {"metric": metric, "how": how, "documents": len(doc_ids), "sampled": len(items)}
    return items, strata


def stratified_sample(scores: list[float], n: int, rng: np.random.Generator, bins: int = BINS) -> list[int]:
    """Indices of a seeded sample of min(n, len) items, stratified into equal-size bins of `scores`.

    Items without a score form one bin of their own. Each bin gets its proportional share (largest
    remainder), drawn without replacement; the result is sorted.
    """
    total = len(scores)
    if n >= total:
        return list(range(total))
    values = pd.Series(scores, dtype=float)
    labels = pd.Series(-1, index=values.index)
    present = values.dropna()
    if len(present):
        k = min(bins, len(present))
        labels[present.index] = pd.qcut(present.rank(method="first"), k, labels=False)
    groups = [np.flatnonzero(labels.to_numpy() == label) for label in sorted(labels.unique())]
    shares = np.array([len(g) * n / total for g in groups])
    take = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - take), kind="stable")[: n - int(take.sum())]:
        take[i] += 1
    picked = [rng.choice(g, size=t, replace=False) for g, t in zip(groups, take) if t]
    return sorted(int(i) for part in picked for i in part)


def _first_score(record: dict[str, Any]) -> str | None:
    return next((k for k, v in (record.get("scores") or {}).items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)), None)


def _score(per_run: list[dict[str, dict[str, Any]]], doc: str, metric: str | None) -> float:
    if metric is None:
        return float("nan")
    values = [(run[doc].get("scores") or {}).get(metric) for run in per_run]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return float("nan")
    return float(values[0]) if len(values) == 1 else float(values[1]) - float(values[0])


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(data: dict[str, Any], rubric: Rubric, refs: list[RunRef]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from markupsafe import Markup

    css = (STATIC / "review.css").read_text(encoding="utf-8")
    js = (STATIC / "review.js").read_text(encoding="utf-8")
    env = Environment(loader=FileSystemLoader(STATIC), autoescape=True, undefined=StrictUndefined)
    tasks = sorted({i["task"] for i in data["items"]})
    return env.get_template("review.html.j2").render(
        css=Markup(css), js=Markup(js), data=Markup(script_json(data)), rubric=rubric, mode=data["page"]["mode"],
        n_items=len(data["items"]), tasks=", ".join(tasks), page_id=data["page"]["id"],
        runs=[r.run_id for r in refs],
        csp=f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; img-src data:; "
            "base-uri 'none'; form-action 'none'",
    )
