"""hf-causal data parallel under torchrun (gloo on the CPU): the same bytes as one process, and a dying rank.

Every rank plans the single-process batches and runs its share (distributed.py), so metrics and
samples files must equal the single-process run's byte for byte; only timings and the world size
differ. The default suite runs this (about a minute with stories260K): no GPU is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DATA, ROOT, STORIES

TASKS = "sst2,wikitext2"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _args(output: Path, cache: Path, limit: int = 24) -> list[str]:
    return ["run", "--model", str(STORIES), "--tasks", TASKS, "--limit", str(limit), "--data-dir", str(DATA),
            "--batch-size", "4", "--dtype", "float32", "--device", "cpu", "--output", str(output),
            "--cache-dir", str(cache), "--no-progress"]


def _run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _run_dir(output: Path) -> Path:
    (run,) = [p for p in output.iterdir() if p.is_dir()]
    return run


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    proc = _run([sys.executable, "-m", "evalkit", *_args(out / "runs", out / "cache")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _run_dir(out / "runs")


def _same_as_single(single: Path, run: Path) -> dict:
    one, two = (json.loads((d / "results.json").read_text()) for d in (single, run))
    for task in TASKS.split(","):
        name = f"{task}.samples.jsonl"
        assert (run / name).read_bytes() == (single / name).read_bytes(), f"{name} differs from the single-process run"
        assert two["tasks"][task]["metrics"] == one["tasks"][task]["metrics"]
        assert two["tasks"][task]["doc_ids"] == one["tasks"][task]["doc_ids"]
    assert one["run"]["world_size"] == 1
    return two


def test_torchrun_two_ranks_equal_one_process_byte_for_byte(single, tmp_path):
    proc = _run([*TORCHRUN, "-m", "evalkit", *_args(tmp_path / "runs", tmp_path / "cache")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("results: ") == 1, "only rank 0 reports"
    two = _same_as_single(single, _run_dir(tmp_path / "runs"))
    assert two["run"]["world_size"] == 2
    rows = two["run"]["rows_per_rank"]
    assert len(rows) == 2 and min(rows) > 0.3 * sum(rows), f"both ranks must compute a fair share: {rows}"
    lls = [json.loads(line)["loglikelihoods"][0] for line in (single / "sst2.samples.jsonl").read_text().splitlines()]
    assert len(set(lls)) > len(lls) // 2, "scores look constant"


def test_a_dying_rank_fails_in_one_line_and_the_rerun_resumes_from_the_cache(single, tmp_path):
    cache = tmp_path / "cache"
    died = _run([*TORCHRUN, str(ROOT / "tests" / "dp_die.py"), *_args(tmp_path / "died", cache)])
    assert died.returncode != 0
    ours = [line for line in died.stderr.splitlines() if line.startswith("evalkit: error: rank 0 of 2")]
    assert len(ours) == 1, died.stderr[-3000:]
    assert "run the same command again to resume" in ours[0]
    frames = [line for line in died.stderr.splitlines() if line.strip().startswith("File ")]
    assert not [f for f in frames if "evalkit" in f], "no traceback from evalkit (torchrun prints its own report)"
    import sqlite3

    with sqlite3.connect(cache / "responses.sqlite") as conn:
        kept = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert kept > 0, "the rounds gathered before the rank died must be in the cache"

    again = _run([*TORCHRUN, "-m", "evalkit", *_args(tmp_path / "again", cache)])
    assert again.returncode == 0, again.stderr[-3000:]
    results = _same_as_single(single, _run_dir(tmp_path / "again"))
    hits = sum(results["tasks"][t]["cache"]["hits"] for t in TASKS.split(","))
    assert hits == kept, (hits, kept)


def test_an_adapter_without_data_parallel_support_is_refused_under_torchrun(tmp_path):
    proc = _run([*TORCHRUN, "-m", "evalkit", "run", "--adapter", "vllm", "--tasks", "sst2", "--limit", "2",
                 "--data-dir", str(DATA), "--output", str(tmp_path)], timeout=300)
    assert proc.returncode != 0
    assert "cannot run under torchrun" in proc.stderr and "data_parallel_size" in proc.stderr, proc.stderr[-2000:]
