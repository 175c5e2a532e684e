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
Files get the mode the umask gives (usually -rw-r--r--); a failed write (a full disk) is one line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import EvalkitError
from .results_schema import check_results, check_sample
from .stale_temp import temp_prefix

RESULTS_FILE = "results.json"
MAX_RESULTS_BYTES = 64 << 20  # a results.json is kilobytes (doc ids included); samples live in their own files
SCHEMA_VERSION = 1


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets under the umask (mkstemp alone would make it -rw-------)."""
    return 0o666 & ~umask()


def _atomic_write(path: Path, write) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(f".{path.name}."), suffix=".tmp")
    except OSError as err:
        raise EvalkitError(f"cannot write {path}: {err.strerror or err}; pass a writable --output with free space") from None
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):  # a full disk, a file size limit, a folder made read-only meanwhile
            raise EvalkitError(f"cannot write {path}: {err.strerror or err}; free some space or pass another --output "
                               "(the tasks written so far are kept)") from None
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
    if path.stat().st_size > MAX_RESULTS_BYTES:
        raise EvalkitError(f"{path} is {path.stat().st_size:,} bytes, too large for a results file (at most {MAX_RESULTS_BYTES:,})")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise EvalkitError(f"{path} is not UTF-8 (bad byte at offset {err.start}); the run may be from an incompatible tool") from None
    except (ValueError, RecursionError) as err:  # bad JSON, an integer of thousands of digits, nesting too deep
        problem = "nested too deeply" if isinstance(err, RecursionError) else str(err).split(";")[0][:200]
        raise EvalkitError(f"{path} is not valid JSON ({problem}); the run may be from an incompatible tool") from None
    return check_results(data, str(path))


def read_samples(run_dir: str | os.PathLike, task: str) -> list[dict[str, Any]]:
    path = samples_path(Path(run_dir), task)
    if not path.is_file():
        raise EvalkitError(f"no samples file {path}; the run did not finish task '{task}'")
    return read_jsonl(path)


def read_jsonl(path: Path) -> list[Any]:
    """Every line of a JSON-lines file (blank lines skipped); a bad line is one error naming file and line."""
    rows = []
    n = 0
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    rows.append(check_sample(json.loads(line), f"{path}:{n}", line))
    except UnicodeDecodeError:
        raise EvalkitError(f"{path}: not UTF-8 (after line {n}); the samples file is damaged") from None
    except (ValueError, RecursionError):
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
