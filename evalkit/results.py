"""The result files: `<run>/results.json` and one `<run>/<task>.samples.jsonl` per task.

results.json keys (read by leaderboard, report and compare):
  run_id, created, model{spec, adapter, sha256|revision, dtype, device, ...},
  config{limit, seed, batch_size, bootstrap_iters, data_dir, tasks{<task>{hash, version, spec}}},
  versions{python, torch, transformers, evalkit, git_sha},
  tasks{<task>{n, doc_ids, seconds, throughput{requests_per_s, tokens_per_s}, truncated_inputs,
               cache{hits, misses, computed} (null without a response cache),
               metrics{<metric>{value, stderr, higher_is_better, scale, stderr_method, ...}}}},
  run{batch_size, final_batch_size, oom_backoffs, ..., cache{path, hits, misses, computed}}
Samples lines: doc_id, prompt, prediction, gold or references, per-sample scores.
Every file is written atomically (temp file, fsync, rename): a crash never leaves a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import EvalkitError

RESULTS_FILE = "results.json"
SCHEMA_VERSION = 1


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda f: json.dump(data, f, indent=2, ensure_ascii=False, allow_nan=True))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    def write(f):
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    _atomic_write(path, write)


def samples_path(run_dir: Path, task: str) -> Path:
    return run_dir / f"{task}.samples.jsonl"


def read_results(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise EvalkitError(f"no {RESULTS_FILE} in {run_dir}; pass a run directory written by `evalkit run`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EvalkitError(f"{path} is not valid JSON ({err}); the run may be from an incompatible tool") from None
    if not isinstance(data, dict) or "tasks" not in data or "run_id" not in data:
        raise EvalkitError(f"{path} is not an evalkit results file (no run_id/tasks)")
    return data


def read_samples(run_dir: str | os.PathLike, task: str) -> list[dict[str, Any]]:
    path = samples_path(Path(run_dir), task)
    if not path.is_file():
        raise EvalkitError(f"no samples file {path}; the run did not finish task '{task}'")
    return read_jsonl(path)


def read_jsonl(path: Path) -> list[Any]:
    """Every line of a JSON-lines file (blank lines skipped); a bad line is one error naming file and line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise EvalkitError(f"{path}:{n}: not valid JSON") from None
    return rows


def find_runs(root: str | os.PathLike) -> list[Path]:
    """Run directories under root (root itself when it is one)."""
    root = Path(root)
    if (root / RESULTS_FILE).is_file():
        return [root]
    if not root.is_dir():
        raise EvalkitError(f"results directory not found: {root}")
    return sorted(p.parent for p in root.rglob(RESULTS_FILE))
