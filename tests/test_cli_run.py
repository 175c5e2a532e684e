"""The main job end to end through the command line and the Makefile."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import DATA, ROOT, STORIES


def test_make_eval_writes_results_and_prints_a_summary(tmp_path):
    proc = subprocess.run(
        ["make", "-s", "eval", f"MODEL={STORIES}", "TASKS=sst2,wikitext2", "LIMIT=5", f"DATA_DIR={DATA}", f"OUTPUT={tmp_path}",
         "BATCH_SIZE=8", f"VENV={sys.prefix}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1
    results = json.loads((runs[0] / "results.json").read_text())
    assert set(results["tasks"]) == {"sst2", "wikitext2"}
    assert results["config"]["batch_size"] == "8" and results["config"]["limit"] == 5
    assert (runs[0] / "sst2.samples.jsonl").read_text().count("\n") == 5
    assert "word_perplexity" in proc.stdout and "accuracy" in proc.stdout
    assert "sst2:" in proc.stderr and "tok/s" in proc.stderr, "progress bar with tokens/s"


def test_tasks_lists_every_shipped_task():
    proc = subprocess.run([sys.executable, "-m", "evalkit", "tasks"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0
    for name in ("imdb", "sst2", "xsum", "wmt21-de-en", "wmt21-en-de", "wikitext2"):
        assert name in proc.stdout
    assert "INVALID" not in proc.stdout
