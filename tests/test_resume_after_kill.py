"""A real crash: `evalkit run` is SIGKILLed part-way, the same command runs again and finishes.

The resumed run computes only what the killed one had not committed to the response cache, its
metrics equal an uninterrupted run's exactly, and no result file is ever truncated.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from evalkit.cache import CACHE_FILE

from .conftest import DATA, ROOT, STORIES

LIMIT = 60  # per task: 120 requests = 8 chunks of 16 (batch size 4) per task
TOTAL = 2 * 2 * LIMIT


def _second_task(folder: Path) -> Path:
    """A copy of sst2 with another prompt: a second task, so the kill lands after one task's results were written."""
    spec = yaml.safe_load((ROOT / "tasks" / "sst2.yaml").read_text())
    spec["task"] = "sst2-reworded"
    spec["doc_to_text"] = "Text: " + spec["doc_to_text"]
    path = folder / "sst2-reworded.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _command(tasks: str, output: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "evalkit", "run", "--model", str(STORIES), "--tasks", tasks, "--data-dir", str(DATA),
            "--limit", str(LIMIT), "--batch-size", "4", "--bootstrap-iters", "50", "--output", str(output),
            "--cache-dir", str(cache), "--no-progress"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _rows(cache: Path) -> int:
    db = cache / CACHE_FILE
    if not db.is_file():
        return 0
    conn = sqlite3.connect(db, timeout=5)
    try:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        conn.close()


def _check_no_truncated_files(output: Path) -> list[Path]:
    """Every visible result file parses completely; returns the results.json files."""
    found = []
    for path in sorted(output.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if path.name == "results.json":
            json.loads(text)
            found.append(path)
        elif path.name.endswith(".samples.jsonl"):
            assert text.endswith("\n"), f"{path} is cut off"
            for line in text.splitlines():
                json.loads(line)
    return found


def _run(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(Path(proc.stdout.strip().splitlines()[-1].removeprefix("results: ")).read_text())


def test_sigkill_part_way_then_resume_computes_only_the_rest_and_gives_identical_metrics(tmp_path):
    tasks = f"sst2,{_second_task(tmp_path)}"
    start = time.perf_counter()
    reference = _run(_command(tasks, tmp_path / "uninterrupted", tmp_path / "cache-reference"))
    assert sum(t["cache"]["computed"] for t in reference["tasks"].values()) == TOTAL

    cache, output = tmp_path / "cache", tmp_path / "out"
    cmd = _command(tasks, output, cache)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        # wait until the first task is done and the second has committed at least one chunk
        while _rows(cache) <= TOTAL // 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {proc.stderr.read()[-1000:]}"
    committed = _rows(cache)
    assert TOTAL // 2 < committed < TOTAL, f"killed part-way, with {committed} of {TOTAL} responses committed"
    conn = sqlite3.connect(cache / CACHE_FILE)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    killed_results = _check_no_truncated_files(output)
    assert len(killed_results) == 1 and set(json.loads(killed_results[0].read_text())["tasks"]) == {"sst2"}, \
        "the killed run kept the finished task's results, written whole"

    resumed = _run(cmd)
    computed = sum(t["cache"]["computed"] for t in resumed["tasks"].values())
    hits = sum(t["cache"]["hits"] for t in resumed["tasks"].values())
    print(f"\nresume after SIGKILL: uninterrupted run computed {TOTAL} requests; the killed run committed {committed}; "
          f"the resumed run computed {computed} and read {hits} from the cache ({time.perf_counter() - start:.1f} s)")
    assert computed == TOTAL - committed and hits == committed, "only the missing requests are computed"
    assert computed < TOTAL
    for task, result in reference["tasks"].items():
        assert resumed["tasks"][task]["metrics"] == result["metrics"], f"{task}: metrics differ after resume"
    assert len(_check_no_truncated_files(output)) == 2
    resumed_dir = next(p for p in output.iterdir() if json.loads((p / "results.json").read_text())["run_id"] == resumed["run_id"])
    reference_dir = next((tmp_path / "uninterrupted").iterdir())
    for name in ("sst2.samples.jsonl", "sst2-reworded.samples.jsonl"):
        assert (resumed_dir / name).read_text() == (reference_dir / name).read_text(), f"{name}: per-sample values differ"
