"""Driver for the vllm adapter tests, run by the vLLM environment's Python: one engine, several evaluations.

    $VLLM_VENV/bin/python tests/vllm_runs.py MODEL_DIR DATA_DIR OUTPUT task:limit [task:limit ...]

Loading a vLLM engine takes about a minute on 2 cores, so the tasks share one; prints one JSON line
{task: run_dir}. The guard matters: vLLM spawns its engine process, which re-imports this file.
"""

import json
import sys

if __name__ == "__main__":
    from evalkit.engine import RunOptions, evaluate, make_adapter

    model, data, output, *jobs = sys.argv[1:]
    adapter = make_adapter(RunOptions(tasks=[], model=model, adapter="vllm", dtype="float32", device="cpu",
                                      model_args={"enforce_eager": "true"}))
    runs = {}
    for job in jobs:
        task, limit = job.split(":")
        run_dir, _ = evaluate(RunOptions(tasks=[task], model=model, adapter="vllm", limit=int(limit), data_dir=data,
                                         output=output, progress=False, bootstrap_iters=0),
                              adapter=adapter, log=lambda _m: None)
        runs[task] = str(run_dir)
    print(json.dumps(runs))
