"""Regression specs: evaluate a candidate exactly as a baseline run was evaluated, then compare.

A spec is a YAML file (paths in it are relative to the file):

    baseline: results/20261128-042956-stories260K-hf-e8fcbf   # a run directory (required)
    tasks: [sst2, wikitext2]            # default: every task of the baseline
    metrics: [accuracy, bits_per_byte]  # default: every metric of those tasks
    tolerances: {accuracy: 0.02, wikitext2/bits_per_byte: 2%}   # default 0
    alpha: 0.05
    iterations: 1000                    # paired-bootstrap resamples
    seed: 1234
    data_dir: ../shared/data            # default: the baseline's data_dir

The candidate is scored with the task configs stored in the baseline's results.json (not the
task files on disk, which may have changed since) and with its limit, seed, few-shot count and
data, so both runs see the same documents and prompts.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .compare import Comparison, Tolerance, check_test_options, compare_runs, open_run, parse_tolerance
from ..errors import EvalkitError
from ..tasks import available_tasks, load_task_file, parse_task
from ..tasks.loader import _Fields, read_yaml

SPEC_KEYS = {"baseline", "tasks", "metrics", "tolerances", "alpha", "iterations", "seed", "data_dir"}


@dataclass
class RegressionSpec:
    baseline: Path
    tasks: list[str] | None = None
    metrics: list[str] | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    alpha: float = 0.05
    iterations: int = 1000
    seed: int = 1234
    data_dir: str | None = None


def load_regression_spec(path: str | os.PathLike) -> RegressionSpec:
    """Read and validate a spec file; every problem is one line naming the file and the field."""
    path = Path(path)
    where = str(path)
    raw = read_yaml(path, "regression spec")
    top = _Fields(raw, where, "")
    top.check_keys(SPEC_KEYS)
    here = path.parent
    spec = RegressionSpec(baseline=here / top.get("baseline", str, required=True))
    spec.tasks = list(top.strings("tasks")) or None
    spec.metrics = list(top.strings("metrics")) or None
    for key, value in top.get("tolerances", dict, default={}).items():
        try:
            spec.tolerances[str(key)] = parse_tolerance(value, str(key))
        except EvalkitError:
            top.fail(f"must be a number >= 0 or a percentage like 2%, got '{value}'", f"tolerances.{key}")
    spec.alpha = float(top.get("alpha", (int, float), 0.05))
    if not 0 < spec.alpha < 1:
        top.fail(f"must be between 0 and 1, got {spec.alpha}", "alpha")
    spec.iterations = top.get("iterations", int, 1000)
    if spec.iterations < 100:
        top.fail(f"must be at least 100, got {spec.iterations}", "iterations")
    spec.seed = top.get("seed", int, 1234)
    data_dir = top.get("data_dir", str)
    spec.data_dir = str(here / data_dir) if data_dir else None
    try:
        check_against_baseline(spec)
    except EvalkitError as err:
        raise EvalkitError(f"{where}: {err}") from None
    return spec


def check_against_baseline(spec: RegressionSpec) -> None:
    """Fail before any model is loaded when the spec names tasks, metrics or tolerances the baseline lacks."""
    try:
        base = open_run(spec.baseline)
    except EvalkitError as err:
        raise EvalkitError(f"field 'baseline': {err}") from None
    have = base.results["tasks"]
    for task in spec.tasks or []:
        if task not in have:
            raise EvalkitError(f"field 'tasks': the baseline run has no task '{task}' (it has: {', '.join(have)})")
    tasks = spec.tasks or list(have)
    metrics = {m for t in tasks for m in have[t].get("metrics", {})}
    qualified = {f"{t}/{m}" for t in tasks for m in have[t].get("metrics", {})}
    for metric in spec.metrics or []:
        if metric not in metrics:
            raise EvalkitError(f"field 'metrics': the baseline's tasks do not report '{metric}' (they report: {', '.join(sorted(metrics))})")
    for key in spec.tolerances:
        if key not in metrics and key not in qualified:
            raise EvalkitError(f"field 'tolerances': '{key}' is not a metric of the compared tasks "
                               f"(use one of {', '.join(sorted(metrics))}, or TASK/METRIC)")


def baseline_task_files(base_results: dict[str, Any], tasks: list[str], folder: Path, log: Callable[[str], None]) -> list[str]:
    """Write the baseline's stored task configs as YAML files the engine loads; check each reproduces its hash."""
    paths = []
    on_disk = available_tasks()
    for task in tasks:
        stored = base_results["config"]["tasks"].get(task) or {}
        if "spec" not in stored or "hash" not in stored:
            raise EvalkitError(f"the baseline run does not record the config of task '{task}'; re-run the baseline with this evalkit")
        spec = parse_task(stored["spec"], f"baseline config of task '{task}'")
        if spec.config_hash != stored["hash"]:
            raise EvalkitError(f"the baseline's config of task '{task}' hashes to {spec.config_hash}, not its recorded "
                               f"{stored['hash']}; it was written by an incompatible evalkit version")
        if task in on_disk:
            try:
                changed = load_task_file(on_disk[task]).config_hash != spec.config_hash
            except EvalkitError:
                changed = True
            if changed:
                log(f"evalkit: note: {on_disk[task]} differs from the baseline's config of '{task}'; using the baseline's")
        path = folder / f"{task}.yaml"
        path.write_text(yaml.safe_dump(stored["spec"], sort_keys=False, allow_unicode=True), encoding="utf-8")
        paths.append(str(path))
    return paths


def run_regression(spec: RegressionSpec, model: str, *, adapter_name: str = "hf-causal", batch_size: str | int = "auto",
                   device: str = "auto", dtype: str = "auto", output: str = "results", progress: bool = True,
                   adapter=None, log: Callable[[str], None] = print) -> tuple[Comparison, Path]:
    """Evaluate `model` with the baseline's task configs, limit, seed and data, then compare the two runs."""
    from ..engine import RunOptions, evaluate

    if not model:
        raise EvalkitError("regress needs the candidate model: pass --model (a folder, hub id or .gguf file)")
    check_test_options(spec.alpha, spec.iterations)
    check_against_baseline(spec)
    base = open_run(spec.baseline)
    tasks = spec.tasks or list(base.results["tasks"])
    config = base.results["config"]
    data_dir = spec.data_dir or config.get("data_dir")
    if data_dir and not Path(data_dir).is_dir():
        raise EvalkitError(f"the baseline's data directory '{data_dir}' does not exist from here; "
                           "pass --data-dir (or set data_dir in the spec)")
    with tempfile.TemporaryDirectory(prefix="evalkit-regress-") as folder:
        options = RunOptions(
            tasks=baseline_task_files(base.results, tasks, Path(folder), log), model=model, adapter=adapter_name,
            limit=config.get("limit"), limit_mode=config.get("limit_mode") or "random", fewshot=config.get("fewshot"),
            seed=config.get("seed", 1234),
            bootstrap_iters=config.get("bootstrap_iters", 1000), data_dir=data_dir, output=output,
            batch_size=batch_size, device=device, dtype=dtype, progress=progress,
        )
        run_dir, _ = evaluate(options, adapter=adapter, log=log)
    comparison = compare_runs(base.path, run_dir, alpha=spec.alpha, tolerances=spec.tolerances, tasks=tasks,
                              metrics=spec.metrics, iterations=spec.iterations, seed=spec.seed)
    return comparison, run_dir
