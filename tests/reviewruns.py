"""Two real xsum runs of stories260K on the same 40 documents for the human-review tests (import the fixture).

Run A is stories260K on the shipped xsum task (64 new tokens). Run B is the same model with a task file
that stops generation at 12 new tokens: same prompts and documents, different outputs. One of B's outputs,
on a document the pairwise page (n=6, seed 7) samples, carries an XSS payload.
"""

from __future__ import annotations

import json

import pytest
import yaml

from .conftest import DATA, ROOT, STORIES
from .resultfiles import edit_samples

PAYLOAD = "<script>alert('xss')</script><img src=x onerror=alert(1)>"
PAGE_N, PAGE_SEED = 6, 7


_BUILT: dict[str, tuple] = {}  # each test module imports the fixture (its own definition): build the runs once


@pytest.fixture(scope="session")
def pair_runs(stories_adapter, tmp_path_factory):
    """(root, run A dir, run B dir, the doc_id whose B output holds the payload). Tests copy before they write."""
    if "runs" not in _BUILT:
        _BUILT["runs"] = _build(stories_adapter, tmp_path_factory)
    return _BUILT["runs"]


def _build(stories_adapter, tmp_path_factory) -> tuple:
    from evalkit.analysis.review import build_review
    from evalkit.engine import RunOptions, evaluate

    root = tmp_path_factory.mktemp("review-runs")
    spec = yaml.safe_load((ROOT / "tasks" / "xsum.yaml").read_text())
    spec["generation"]["max_new_tokens"] = 12
    task_file = tmp_path_factory.mktemp("short-task") / "xsum.yaml"
    task_file.write_text(yaml.safe_dump(spec))
    runs = []
    for run_id, task, created, model in (("run-a", "xsum", "2026-01-01T10:00:00+00:00", None),
                                         ("run-b", str(task_file), "2026-01-01T11:00:00+00:00", "/ckpt/stories260K-short")):
        options = RunOptions(tasks=[task], limit=40, data_dir=str(DATA), output=str(root), progress=False,
                             batch_size=16, model=str(STORIES), run_id=run_id, bootstrap_iters=100)
        run_dir, _ = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
        results = json.loads((run_dir / "results.json").read_text())
        results["created"] = created
        if model:
            results["model"]["spec"] = model
        (run_dir / "results.json").write_text(json.dumps(results))
        runs.append(run_dir)
    a, b = runs
    _, data = build_review([a, b], n=PAGE_N, seed=PAGE_SEED)
    target = str(data["items"][0]["doc_id"])

    def plant(_i, row):
        if str(row["doc_id"]) == target:
            row["prediction"] = PAYLOAD + " " + row["prediction"]

    edit_samples(b / "xsum.samples.jsonl", plant)
    return root, a, b, target
