"""Run directories built from hand-made sample records (no model), for the compare tests.

The task spec and its config hash are the shipped ones, and the metric values in results.json are
computed by the engine's own scoring, so the files look exactly like those `evalkit run` writes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.engine import score_records
from evalkit.results import RESULTS_FILE, samples_path, write_json, write_jsonl
from evalkit.tasks import TaskSpec, resolve_task


def write_run(root: Path, run_id: str, tasks: dict[str, tuple[TaskSpec, list[dict[str, Any]]]],
              bootstrap_iters: int = 0) -> Path:
    """A run directory holding `tasks` ({name: (spec, records)}) scored like the engine does."""
    run_dir = root / run_id
    results: dict[str, Any] = {
        "schema_version": 1, "run_id": run_id, "created": "2026-01-01T00:00:00+00:00",
        "model": {"spec": f"fake/{run_id}"},
        "config": {"limit": None, "fewshot": None, "seed": 1234, "bootstrap_iters": bootstrap_iters, "data_dir": None,
                   "tasks": {name: {"hash": spec.config_hash, "version": spec.version, "spec": spec.to_dict()}
                             for name, (spec, _) in tasks.items()}},
        "tasks": {},
    }
    for name, (spec, records) in tasks.items():
        records = [dict(r) for r in records]
        metrics = score_records(spec, records, bootstrap_iters=bootstrap_iters, seed=1234)  # accuracy: closed form
        write_jsonl(samples_path(run_dir, name), records)
        results["tasks"][name] = {"n": len(records), "doc_ids": [r["doc_id"] for r in records], "metrics": metrics}
    write_json(run_dir / RESULTS_FILE, results)
    return run_dir


def sst2_records(correct: np.ndarray, seed: int = 0) -> list[dict[str, Any]]:
    """sst2-style records whose prediction is right exactly where `correct` is true (random gold labels)."""
    gold = np.random.default_rng(seed).integers(0, 2, len(correct))
    names = ("negative", "positive")
    return [{"doc_id": i, "gold": names[g], "prediction": names[g if ok else 1 - g]}
            for i, (g, ok) in enumerate(zip(gold, correct))]


def sst2_spec(**changes: Any) -> TaskSpec:
    spec = resolve_task("sst2")
    return replace(spec, **changes) if changes else spec
