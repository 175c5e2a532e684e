"""Regression specs: evaluate a candidate exactly as a baseline run was evaluated, then compare.

A spec is a YAML file (paths in it are relative to the file):

    baseline: results/20261128-042956-stories260K-hf-e8fcbf   # a run directory (required)
    tasks: [sst2, wikitext2]            # default: every task of the baseline
    metrics: [accuracy, bits_per_byte]  # default: every metric of those tasks
    tolerances: {accuracy: 0.02, wikitext2/bits_per_byte: 2%}   # default 0
    alpha: 0.05
    adjust: holm                        # p-value adjustment over the rows: holm, bh or none
    allow_untestable: false             # true: rows with non-finite values do not fail the gate
    iterations: 1000                    # paired-bootstrap resamples
    seed: 1234
    data_dir: ../shared/data            # needed when the baseline read local data (--data-dir)

The candidate is scored with the task configs stored in the baseline's results.json (not the
task files on disk, which may have changed since) and with its limit, seed and few-shot count,
so both runs see the same documents and prompts. Before the model loads, the candidate's documents
and few-shot pool are checked against the hashes the baseline recorded.

A baseline is a file from someone else: nothing in it names a path that regress reads or writes.
Task names are checked with the rule `run` uses, the task configs are written under fixed names in
a temporary folder, and the data directory comes from `--data-dir` or the spec, never from the
baseline's results.json (regress stops with one line when the baseline used local data and none
is given).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .comparability import describe_source
from .compare import ADJUSTMENTS, Comparison, Tolerance, check_test_options, compare_runs, open_run, parse_tolerance
from ..errors import EvalkitError
from ..tasks import available_tasks, load_task_file, parse_task
from ..tasks.loader import TASK_NAME, _Fields, read_yaml

SPEC_KEYS = {"baseline", "tasks", "metrics", "tolerances", "alpha", "adjust", "allow_untestable", "iterations", "seed",
             "data_dir"}


@dataclass
class RegressionSpec:
    baseline: Path
    tasks: list[str] | None = None
    metrics: list[str] | None = None
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    alpha: float = 0.05
    adjust: str = "holm"
    allow_untestable: bool = False
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
    spec.adjust = top.get("adjust", str, "holm")
    if spec.adjust not in ADJUSTMENTS:
        top.fail(f"must be one of {', '.join(ADJUSTMENTS)}, got '{spec.adjust}'", "adjust")
    spec.allow_untestable = top.get("allow_untestable", bool, False)
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
    for i, task in enumerate(tasks):
        if not isinstance(task, str) or not TASK_NAME.fullmatch(task):
            raise EvalkitError(f"the baseline names a task {str(task)[:60]!r}, which is not a task name (letters, digits, "
                               "'.', '_', '-'); the results file is damaged or crafted")
        stored = base_results["config"]["tasks"].get(task) or {}
        if "spec" not in stored or "hash" not in stored:
            raise EvalkitError(f"the baseline run does not record the config of task '{task}'; re-run the baseline with this evalkit")
        spec = parse_task(stored["spec"], f"baseline config of task '{task}'")
        if spec.task != task:
            raise EvalkitError(f"the baseline's config of task '{task}' names task '{spec.task}'; the results file is damaged or crafted")
        recorded = stored.get("spec_hash") or stored["hash"]
        if spec.config_hash != recorded:
            raise EvalkitError(f"the baseline's config of task '{task}' hashes to {spec.config_hash}, not its recorded "
                               f"{recorded}; it was written by an incompatible evalkit version")
        if task in on_disk:
            try:
                changed = load_task_file(on_disk[task]).config_hash != spec.config_hash
            except EvalkitError:
                changed = True
            if changed:
                log(f"evalkit: note: {on_disk[task]} differs from the baseline's config of '{task}'; using the baseline's")
        path = folder / f"task-{i}.yaml"  # a fixed name: never a path built from the results file
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
    check_test_options(spec.alpha, spec.iterations, spec.adjust)
    check_against_baseline(spec)
    base = open_run(spec.baseline)
    tasks = spec.tasks or list(base.results["tasks"])
    config = base.results["config"]
    data_dir = spec.data_dir  # from the command line or the spec; never from the baseline's results file
    if data_dir is None and config.get("data_dir"):
        raise EvalkitError("the baseline read its task data from local files (--data-dir); pass --data-dir (or set "
                           "data_dir in the spec): regress never takes a data directory from a results file")
    if data_dir and not Path(data_dir).is_dir():
        raise EvalkitError(f"data directory '{data_dir}' does not exist; pass --data-dir with the folder of the task data")
    # a chat-template baseline is re-run with the same chat options
    chat = next((t["prompt_format"] for t in config.get("tasks", {}).values() if t.get("prompt_format")), None) or {}
    with tempfile.TemporaryDirectory(prefix="evalkit-regress-") as folder:
        options = RunOptions(
            apply_chat_template=bool(chat), system_prompt=chat.get("system_prompt"),
            fewshot_as_multiturn=bool(chat.get("fewshot_as_multiturn")),
            tasks=baseline_task_files(base.results, tasks, Path(folder), log), model=model, adapter=adapter_name,
            limit=config.get("limit"), limit_mode=config.get("limit_mode") or "random", fewshot=config.get("fewshot"),
            seed=config.get("seed", 1234),
            bootstrap_iters=config.get("bootstrap_iters", 1000), data_dir=data_dir, output=output,
            batch_size=batch_size, device=device, dtype=dtype, progress=progress,
        )
        check_same_inputs(base.results, options)
        run_dir, _ = evaluate(options, adapter=adapter, log=log)
    comparison = compare_runs(base.path, run_dir, alpha=spec.alpha, tolerances=spec.tolerances, tasks=tasks,
                              metrics=spec.metrics, iterations=spec.iterations, seed=spec.seed, adjust=spec.adjust,
                              allow_untestable=spec.allow_untestable)
    return comparison, run_dir


def check_same_inputs(base_results: dict[str, Any], options) -> None:
    """Before the model loads: the candidate's documents and few-shot pool must hash as the baseline's did."""
    from ..engine import prepare_task
    from ..tasks import resolve_task

    for path in options.tasks:
        prepared = prepare_task(resolve_task(path), options, log=lambda _msg: None)  # evaluate() says its notes
        stored = base_results["config"]["tasks"].get(prepared.spec.task) or {}
        parts = [f"{name} {describe_source(stored.get(key) or {})} (baseline) vs {describe_source(prepared.identity[key] or {})} (here)"
                 for key, name in (("data", "data"), ("fewshot_pool", "few-shot pool"))
                 if (stored.get(key) or {}).get("sha256") != (prepared.identity[key] or {}).get("sha256")]
        if "spec_hash" not in stored or not parts:
            continue  # the same inputs, or a baseline from before data hashes were recorded (compare checks each document)
        raise EvalkitError(f"task '{prepared.spec.task}': the candidate would read different inputs than the baseline: "
                           f"{'; '.join(parts)}; pass --data-dir (or data_dir) with the baseline's data")
