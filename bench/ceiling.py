"""The raw-model ceilings of the GPU targets, measured on one model in one process.

    python -m bench.ceiling --model FOLDER --device cuda --dtype bfloat16 --json out.json

- perplexity: tokens/s of a bare forward (logits only, nothing done with them) over lm-eval's
  WikiText-2 windows, against evalkit's scoring of the same windows, at each batch size; the target
  compares the best of each;
- generation: new tokens/s of model.generate() at batch 1 (greedy, 64 new tokens, no stop
  sequence) against evalkit's generation of the same XSum prompts at the largest batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workloads import SEED  # noqa: E402
from evalkit.adapters.hf.tokens import encode_text  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _clock(device: str, fn) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _work(task: str, data_dir: str, limit: int):
    from evalkit.engine import RunOptions, prepare_task
    from evalkit.tasks import resolve_task

    return prepare_task(resolve_task(task), RunOptions(tasks=[task], limit=limit, data_dir=data_dir, seed=SEED)).work


def perplexity(adapter, data_dir: str, docs: int, batch_sizes: list[int]) -> dict:
    from evalkit.adapters.hf.causal import rolling_windows
    from evalkit.adapters.hf.scoring import score_token_pairs
    from evalkit.batching import BatchPlan

    pairs = [pair for w in _work("wikitext2", data_dir, docs)
             for pair in rolling_windows(encode_text(adapter.tokenizer, w.requests[0].text), adapter.prefix_token_id, adapter.max_length)]
    inputs = sorted(((ctx + cont)[:-1] for ctx, cont in pairs), key=len, reverse=True)
    tokens = sum(len(cont) for _, cont in pairs)
    model, device = adapter.model, adapter.device

    @torch.inference_mode()
    def raw(bs: int) -> None:
        for start in range(0, len(inputs), bs):
            rows = inputs[start: start + bs]
            ids = torch.zeros((len(rows), len(rows[0])), dtype=torch.long)
            for b, row in enumerate(rows):
                ids[b, : len(row)] = torch.tensor(row)
            model(input_ids=ids.to(device)).logits

    out = {"tokens": tokens, "windows": len(pairs), "raw_tokens_per_s": {}, "evalkit_tokens_per_s": {}}
    raw(batch_sizes[0])  # warm-up
    for bs in batch_sizes:
        out["raw_tokens_per_s"][bs] = tokens / _clock(device, lambda: raw(bs))
        out["evalkit_tokens_per_s"][bs] = tokens / _clock(device, lambda: score_token_pairs(model, pairs, adapter.max_length,
                                                                                            BatchPlan(size=bs), device))
    best_raw, best_ours = max(out["raw_tokens_per_s"].values()), max(out["evalkit_tokens_per_s"].values())
    out["evalkit_share_of_raw_ceiling"] = best_ours / best_raw
    return out


def generation(adapter, data_dir: str, prompts: int, batch1_prompts: int, max_new: int) -> dict:
    from evalkit.requests import Generate

    work = _work("xsum", data_dir, prompts)
    reqs = [Generate(w.prompt, (), max_new) for w in work]
    model, tok, device = adapter.model, adapter.tokenizer, adapter.device
    room = adapter.max_length - max_new
    adapter.generate(reqs[:2])  # warm-up (and compilation on CUDA)
    ours = {}
    ours["s"] = _clock(device, lambda: ours.setdefault("out", adapter.generate(reqs)))
    new_ours = sum(r.n_tokens for r in ours["out"])
    generated = [0]

    @torch.inference_mode()
    def batch1() -> None:
        for w in work[:batch1_prompts]:
            ids = torch.tensor([encode_text(adapter.tokenizer, w.prompt)[-room:]], device=device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
            generated[0] += out.shape[1] - ids.shape[1]

    seconds = _clock(device, batch1)
    return {"evalkit_new_tokens_per_s": new_ours / ours["s"], "evalkit_prompts": len(reqs),
            "generate_batch1_new_tokens_per_s": generated[0] / seconds, "batch1_prompts": batch1_prompts,
            "evalkit_vs_generate_batch1": (new_ours / ours["s"]) / (generated[0] / seconds),
            "kv_cache": adapter.run_stats().get("kv_cache")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.ceiling", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a model folder (bench.run builds the GPT-2-shaped ones)")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--batch-sizes", default="16,32,64,128")
    p.add_argument("--wikitext-docs", type=int, default=62)
    p.add_argument("--xsum-prompts", type=int, default=256)
    p.add_argument("--batch1-prompts", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    from evalkit.adapters.hf.causal import HFCausalAdapter

    sizes = [int(s) for s in args.batch_sizes.split(",")]
    adapter = HFCausalAdapter(model=args.model, device=args.device, dtype=args.dtype, batch_size=max(sizes))
    result = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu", "dtype": args.dtype,
              "perplexity": perplexity(adapter, args.data_dir, args.wikitext_docs, sizes),
              "generation": generation(adapter, args.data_dir, args.xsum_prompts, args.batch1_prompts, args.max_new_tokens)}
    ppl, gen = result["perplexity"], result["generation"]
    print(f"perplexity: {ppl['tokens']:,} tokens; raw forward tokens/s by batch size "
          + ", ".join(f"{bs}: {v:,.0f}" for bs, v in ppl["raw_tokens_per_s"].items()) + "; evalkit "
          + ", ".join(f"{bs}: {v:,.0f}" for bs, v in ppl["evalkit_tokens_per_s"].items())
          + f"; evalkit best / raw best = {ppl['evalkit_share_of_raw_ceiling']:.2f}")
    print(f"generation: evalkit {gen['evalkit_new_tokens_per_s']:,.0f} new tokens/s ({gen['evalkit_prompts']} prompts, "
          f"batch {max(sizes)}, {gen['kv_cache']} cache) vs generate() at batch 1 {gen['generate_batch1_new_tokens_per_s']:,.1f}: "
          f"{gen['evalkit_vs_generate_batch1']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
