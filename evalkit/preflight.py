"""Checks a run makes before it reads a document or loads a model, each failing with one line.

- the numeric flags: seed, few-shot count, bootstrap resamples, limit;
- the model arguments, against the adapter's declared table (adapters/model_args.py);
- the task list: `--tasks sst2,sst2` runs sst2 once, two different tasks with one name are refused
  (they would write the same result files);
- the output folder: created now, written to (a probe file), with free space left.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from .errors import EvalkitError

MAX_SEED = 2**32 - 1
MIN_FREE_BYTES = 16 << 20  # less than this left on the output's disk: refuse before the model loads


def _integer(value: Any, flag: str, low: int, high: float, expected: str, optional: bool = False) -> Any:
    """`value` if it is an integer in [low, high] (or None when optional); else one line naming the flag."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EvalkitError(f"{flag} must be {expected}, got {value!r}")
    return value


def check_seed(value: Any, flag: str = "--seed") -> int:
    return _integer(value, flag, 0, MAX_SEED, f"an integer from 0 to {MAX_SEED}")


def check_fewshot(value: Any) -> int | None:
    return _integer(value, "--fewshot", 0, math.inf, "0 or a positive integer (examples per prompt)", optional=True)


def check_bootstrap_iters(value: Any, minimum: int = 0) -> int:
    """Resamples for bootstrap standard errors; the CLI asks for at least 1, Python callers may pass 0 (none)."""
    least = "a positive integer" if minimum else "0 (no bootstrap) or a positive integer"
    return _integer(value, "--bootstrap-iters", minimum, 1_000_000, f"{least} up to 1,000,000")


def check_limit(value: Any) -> int | None:
    return _integer(value, "--limit", 1, math.inf, "a positive integer", optional=True)


def check_run_flags(seed: Any, fewshot: Any, bootstrap_iters: Any, limit: Any, batch_size: Any = "auto") -> None:
    from .batching import parse_batch_size

    check_seed(seed)
    check_fewshot(fewshot)
    check_bootstrap_iters(bootstrap_iters)
    check_limit(limit)
    parse_batch_size(batch_size, "cpu")


def unique_tasks(specs: Iterable[Any]) -> list[Any]:
    """Each task once, in order; two different task configs under one name are refused."""
    seen: dict[str, Any] = {}
    out = []
    for spec in specs:
        first = seen.get(spec.task)
        if first is None:
            seen[spec.task] = spec
            out.append(spec)
        elif first.config_hash != spec.config_hash:
            raise EvalkitError(
                f"two tasks are named '{spec.task}' ({first.source_file or 'a task'} and {spec.source_file or 'another'}) "
                "with different configs; their result files would overwrite each other: rename one (field 'task')")
    return out


def prepare_output(output: str | os.PathLike) -> Path:
    """Create the output folder and prove it takes a file, with free space left; one line if not."""
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise EvalkitError(f"--output {output}: cannot create the folder ({err.strerror or err}); "
                           "pass a writable folder") from None
    if not folder.is_dir():
        raise EvalkitError(f"--output {output} is not a folder; pass a folder for the run's results")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".evalkit-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise EvalkitError(f"--output {output}: cannot write there ({err.strerror or err}); pass a writable folder") from None
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise EvalkitError(f"--output {output}: only {free:,} bytes free on its disk (at least {MIN_FREE_BYTES:,} needed); "
                           "free some space or pass another folder")
    return folder
