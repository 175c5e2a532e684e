"""A real checkpoint story: fine-tune stories260K on XSum summaries, then compare it with the base model.

stories260K is a 260K-parameter Llama trained on children's stories. A few hundred AdamW steps on
BBC summary sentences (seconds on a laptop CPU) move it towards news English. The summaries of the
XSum articles that the evaluation samples are held out. The script saves the result as a normal
checkpoint (save_pretrained, tokenizer included), evaluates base and fine-tuned with evalkit on the
same documents (wikitext2, sst2, xsum by default), and prints `evalkit compare`'s table; its exit
status is compare's (1 when a metric regressed significantly).

    python examples/finetune_stories.py            # fine-tune + evaluate + compare, in results/finetune-stories
    python examples/finetune_stories.py --no-eval  # only write results/finetune-stories/stories260K-xsum
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def training_summaries(data_dir: Path, held_out: int, seed: int = 1234) -> list[str]:
    """XSum reference summaries (not articles), leaving out the `held_out` documents that
    `evalkit run --tasks xsum --limit held_out --seed seed` evaluates, so that task stays unseen."""
    from evalkit.data import load_documents, select_documents
    from evalkit.tasks import resolve_task

    docs = load_documents(resolve_task("xsum"), data_dir)
    evaluated = {d["doc_id"] for d in select_documents(docs, held_out, seed)}
    return [d["summary"].strip() for d in docs if d["doc_id"] not in evaluated and d["summary"].strip()]


def finetune(base: Path, texts: list[str], out_dir: Path, steps: int = 300, batch_size: int = 8,
             block: int = 64, lr: float = 3e-3, seed: int = 0) -> dict[str, float]:
    """Train on random blocks of the concatenated, EOS-separated texts; save model and tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    ids = [tok for text in texts for tok in [tokenizer.bos_token_id, *tokenizer.encode(text, add_special_tokens=False),
                                             tokenizer.eos_token_id]]
    stream = torch.tensor(ids, dtype=torch.long)
    if len(stream) <= block + 1:
        raise SystemExit(f"only {len(stream)} tokens of training text; need more than {block + 1}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 260K-parameter model: more threads only add synchronisation
    start = time.perf_counter()
    losses = []
    try:
        for _ in range(steps):
            offsets = torch.randint(0, len(stream) - block - 1, (batch_size,))
            batch = torch.stack([stream[o: o + block] for o in offsets.tolist()])
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    head, tail = losses[: max(1, steps // 10)], losses[-max(1, steps // 10):]
    return {"seconds": seconds, "steps": steps, "tokens_seen": steps * batch_size * block,
            "loss_first": sum(head) / len(head), "loss_last": sum(tail) / len(tail)}


def evaluate_both(base: Path, tuned: Path, tasks: list[str], limit: int, data_dir: Path, output: Path,
                  bootstrap_iters: int = 1000) -> tuple[Path, Path]:
    """Both checkpoints on the same tasks and documents (same limit and seed): runs output/base, output/finetuned."""
    from evalkit.engine import RunOptions, evaluate

    runs = []
    for model, name in ((base, "base"), (tuned, "finetuned")):
        options = RunOptions(tasks=tasks, model=str(model), limit=limit, data_dir=str(data_dir), output=str(output),
                             device="cpu", batch_size=16, progress=False, run_id=name, bootstrap_iters=bootstrap_iters)
        run_dir, _ = evaluate(options, log=lambda _m: None)
        runs.append(run_dir)
    return runs[0], runs[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=SHARED / "models" / "stories260K-hf")
    parser.add_argument("--data-dir", type=Path, default=SHARED / "data")
    parser.add_argument("--output", type=Path, default=Path("results/finetune-stories"),
                        help="checkpoint and runs go here (default: results/finetune-stories)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--tasks", default="wikitext2,sst2,xsum")
    parser.add_argument("--limit", type=int, default=40, help="documents per task (held out from training)")
    parser.add_argument("--no-eval", action="store_true", help="only fine-tune and save the checkpoint")
    args = parser.parse_args(argv)

    tuned = args.output / "stories260K-xsum"
    stats = finetune(args.base, training_summaries(args.data_dir, args.limit), tuned, steps=args.steps)
    print(f"fine-tuned {stats['steps']} steps ({stats['tokens_seen']:,} tokens) in {stats['seconds']:.1f} s; "
          f"train loss {stats['loss_first']:.3f} -> {stats['loss_last']:.3f}; saved {tuned}")
    if args.no_eval:
        return 0
    from evalkit.analysis.compare import compare_runs, format_comparison

    tasks = [t for t in args.tasks.split(",") if t]
    base_run, tuned_run = evaluate_both(args.base, tuned, tasks, args.limit, args.data_dir, args.output / "runs")
    comparison = compare_runs(base_run, tuned_run)
    print(format_comparison(comparison, "table"))
    return comparison.exit_code


if __name__ == "__main__":
    sys.exit(main())
