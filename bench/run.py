"""evalkit vs lm-eval vs a bare transformers loop, side by side in one run.

    .venv/bin/python -m bench.run                      # the default workload, a few minutes on 2 CPU cores
    .venv/bin/python -m bench.run --models gpt2-16m --workloads wikitext2 --limit-wikitext2 62 --repeats 3

Each side of each (model, workload) runs in its own process, one after the other, in an order that
alternates between repeats; the table (Markdown and JSON) lands in --out. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.models import MODEL_NAMES, model_spec, vllm_folder  # noqa: E402
from bench.table import SIDES, markdown, summarize  # noqa: E402
from bench.workloads import WORKLOADS, selected_docs, write_lm_eval_task  # noqa: E402

VLLM_PYTHON = Path(os.environ.get("VLLM_VENV") or Path.home() / ".cache" / "evalkit" / "venv-vllm") / "bin" / "python"

# documents per workload and model: sized so that the default run takes a few minutes on 2 CPU cores
DEFAULT_LIMITS = {
    "gpt2-16m": {"wikitext2": 6, "sst2": 200, "xsum": 16},
    "gpt2-124m": {"wikitext2": 62, "sst2": 872, "xsum": 256},
    "smollm2": {"wikitext2": 1, "sst2": 48, "xsum": 8},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="gpt2-16m,smollm2", help=f"comma-separated, of {', '.join(MODEL_NAMES)}")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    p.add_argument("--sides", default="evalkit,lm-eval,raw",
                   help="comma-separated, of evalkit, lm-eval, raw, evalkit-vllm, lm-eval-vllm (the vllm sides run in "
                        "--vllm-python; default: evalkit,lm-eval,raw)")
    p.add_argument("--vllm-python", default=str(VLLM_PYTHON),
                   help="the Python of the vLLM environment (default: $VLLM_VENV/bin/python, built by make install-vllm)")
    for name in WORKLOADS:
        p.add_argument(f"--limit-{name}", type=int, default=None, metavar="N",
                       help=f"documents for {name} (default per model: " +
                       ", ".join(f"{m} {lim[name]}" for m, lim in DEFAULT_LIMITS.items()) + ")")
    p.add_argument("--batch-size", type=int, default=16, help="rows per batch, the same on every side (default 16)")
    p.add_argument("--max-length", type=int, default=1024, help="context length on every side (default 1024)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: float32 on CPU, bfloat16 on CUDA)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads in each side's process (default 1: on a shared CPU, OpenMP threads waiting for "
                        "each other time the scheduler, not the code; 0: torch's own default)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each side; the table shows medians (default 1)")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--tokenizer-dir", default=str(ROOT.parent / "shared" / "models" / "gpt2-tokenizer"),
                   help="the GPT-2 tokenizer the GPT-2-shaped models are built from")
    p.add_argument("--out", default=str(ROOT / "bench" / "out"), help="where the table, the models and lm-eval's task files go")
    p.add_argument("--timeout", type=int, default=3600, help="seconds one side may run before it is stopped")
    args = p.parse_args(argv)
    args.models = _names(args.models, MODEL_NAMES, "--models")
    args.workloads = _names(args.workloads, tuple(WORKLOADS), "--workloads")
    args.sides = _names(args.sides, SIDES, "--sides")
    if any(s.endswith("vllm") for s in args.sides) and not Path(args.vllm_python).is_file():
        raise SystemExit(f"bench: the vllm sides need the vLLM environment ({args.vllm_python} is missing): run make install-vllm")
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    return args


def _names(value: str, known: tuple[str, ...], flag: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"bench: {flag} takes a comma-separated list of {', '.join(known)}; got {value!r}")
    return names


def limit_for(args: argparse.Namespace, model: str, workload: str) -> int:
    given = getattr(args, f"limit_{workload}")
    return given if given is not None else DEFAULT_LIMITS.get(model, DEFAULT_LIMITS["gpt2-16m"])[workload]


def run_side(job: dict, out: Path, timeout: int) -> dict:
    jobs = out / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    stem = f"{job['model']}-{job['workload']}-{job['side']}-{job['repeat']}"
    spec_file, result_file = jobs / f"{stem}.json", jobs / f"{stem}.result.json"
    spec_file.write_text(json.dumps(job))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_DATASETS_CACHE": str(out / "hf-datasets"), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if job.get("threads"):
        env["OMP_NUM_THREADS"] = str(job["threads"])
    python = sys.executable
    if job["side"].endswith("vllm"):
        python = job["vllm_python"]
        env["VLLM_LOGGING_LEVEL"] = "WARNING"
        if job.get("threads") and job["device"] == "cpu":  # vLLM binds its OpenMP threads to cores itself
            env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(str(c) for c in range(job["threads"]))
    start = time.perf_counter()
    proc = subprocess.run([python, "-m", "bench.worker", str(spec_file), str(result_file)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"bench: {stem} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(result_file.read_text())
    result.update(model=job["model"], workload=job["workload"], side=job["side"], repeat=job["repeat"],
                  process_s=time.perf_counter() - start)
    return result


def agreement(workload: str, ours: dict, theirs: dict) -> str:
    kind = WORKLOADS[workload].kind
    if kind == "perplexity":
        rel = abs(ours["score"] - theirs["score"]) / theirs["score"]
        return f"word perplexity {ours['score']:.4f} vs {theirs['score']:.4f} (relative difference {rel:.1e})"
    if kind == "multiple_choice":
        diff = max(abs(a - b) for x, y in zip(ours["loglikelihoods"], theirs["loglikelihoods"]) for a, b in zip(x, y))
        return f"accuracy {ours['score']:.4f} vs {theirs['score']:.4f}; largest log-likelihood difference {diff:.1e}"
    same = sum(a == b for a, b in zip(ours["predictions"], theirs["predictions"]))
    return f"ROUGE-1 {ours['score']:.2f} vs {theirs['score']:.2f}; {same}/{len(ours['predictions'])} generations identical"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs, agreements = [], {}
    for model in args.models:
        spec = model_spec(model, Path(args.tokenizer_dir), out)
        vllm_spec = vllm_folder(model, spec, out) if any(s.endswith("vllm") for s in args.sides) else None
        for workload in args.workloads:
            limit = limit_for(args, model, workload)
            lm_eval_dir = out / "lm_eval_tasks" / f"{workload}-{limit}"
            task = write_lm_eval_task(WORKLOADS[workload], selected_docs(workload, args.data_dir, limit), lm_eval_dir) \
                if "lm-eval" in args.sides else None
            for repeat in range(args.repeats):
                order = args.sides if repeat % 2 == 0 else list(reversed(args.sides))
                for side in order:
                    job = {"side": side, "model": model, "spec": spec, "workload": workload, "limit": limit,
                           "repeat": repeat, "batch_size": args.batch_size, "max_length": args.max_length,
                           "device": args.device, "dtype": args.dtype, "threads": args.threads, "data_dir": args.data_dir,
                           "lm_eval_dir": str(lm_eval_dir), "lm_eval_task": task,
                           "vllm_spec": vllm_spec, "vllm_python": args.vllm_python}
                    result = run_side(job, out, args.timeout)
                    runs.append(result)
                    print(f"bench: {model} {workload} {side} #{repeat}: model time {result['infer_s']:.2f}s, "
                          f"wall {result['wall_s']:.2f}s, peak RSS {result['peak_rss_mb']:,.0f} MB, score {result['score']:.4f}",
                          flush=True)
            lines = []
            for repeat in range(args.repeats):
                by_side = {r["side"]: r for r in runs if (r["model"], r["workload"], r["repeat"]) == (model, workload, repeat)}
                pairs = [(a, b) for a, b in (("evalkit", "lm-eval"), ("evalkit", "evalkit-vllm"), ("evalkit-vllm", "lm-eval-vllm"))
                         if a in by_side and b in by_side]
                if pairs:
                    lines.append("; ".join(f"{a} vs {b}: {agreement(workload, by_side[a], by_side[b])}" for a, b in pairs))
            if lines:  # every repeat is compared; one that differs from the first is shown too
                agreements[(model, workload)] = "; ".join([lines[0]] + [f"repeat {i}: {line}" for i, line in enumerate(lines)
                                                                         if line != lines[0]])
    write_tables(args, runs, agreements, out)
    return 0


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"


def write_tables(args: argparse.Namespace, runs: list[dict], agreements: dict, out: Path) -> None:
    rows = summarize(runs, agreements)
    config = {k: v for k, v in vars(args).items() if k not in ("out",)}
    header = (f"## evalkit vs lm-eval vs raw transformers\n\nMachine: {machine()}. Device {args.device}, {args.dtype}, "
              f"batch size {args.batch_size}, context {args.max_length}, torch threads per side {args.threads or 'default'}, "
              f"repeats {args.repeats}. "
              f"Documents: " + "; ".join(f"{m}: " + ", ".join(f"{w} {limit_for(args, m, w)}" for w in args.workloads)
                                         for m in args.models) + ".")
    (out / "results.json").write_text(json.dumps({"config": config, "machine": machine(), "rows": rows, "runs": runs},
                                                 indent=1, default=str))
    (out / "results.md").write_text(markdown(rows, header))
    print(markdown(rows, header))
    print(f"bench: wrote {out / 'results.md'} and {out / 'results.json'}")


if __name__ == "__main__":
    sys.exit(main())
