"""The seed's story, part 1: train a real sentiment classifier here, on the CPU, in a few minutes.

No pretrained weights can be downloaded on these machines, so the classifier starts from scratch: a
small DistilBERT-shaped model (the shape of the pipeline's default sentiment model) with a WordPiece
tokenizer trained by `tokenizers` on the same SST-2 sentences. Training uses a seeded subset of
../shared/data/sst2/train.tsv, plus pseudo-reviews made of 2 to 16 same-label phrases joined
together, so that the model learns positions up to its 256-token context (SST-2 phrases alone are
short; a review is long). Longer inputs are truncated to 256 tokens by the evaluation. The result is saved with
`save_pretrained` (model and tokenizer), with id2label {0: NEGATIVE, 1: POSITIVE}, the labels of
`pipeline("sentiment-analysis")`'s default model.

    python examples/train_sst2_classifier.py --out results/sst2-classifier
    python examples/train_sst2_classifier.py --out /tmp/tiny --train-size 2000 --max-seconds 30   # a quick one

Part 2 (examples/imdb_story.py) evaluates it on IMDB through `evalkit run --adapter hf-classifier`.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from small_models import train_loop, wordpiece_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}


def read_sst2(path: Path) -> list[tuple[str, int]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["sentence"].strip(), int(row["label"])) for row in rows if row["sentence"].strip()]


def make_documents(rows: list[tuple[str, int]], n: int, rng: random.Random, most: int = 16) -> list[tuple[str, int]]:
    """`n` pseudo-reviews: 2..`most` random phrases of one label, joined into one text with that label."""
    by_label: dict[int, list[str]] = {}
    for text, label in rows:
        by_label.setdefault(label, []).append(text)
    docs = []
    for _ in range(n):
        label = rng.choice(sorted(by_label))
        docs.append((" ".join(rng.sample(by_label[label], rng.randint(2, most))), label))
    return docs


def length_batches(examples: list[tuple[str, int]], batch_size: int, rng: random.Random) -> list[list[tuple[str, int]]]:
    """Shuffled batches of similar length (sorted within pools of 50 batches): less padding, same data."""
    rng.shuffle(examples)
    pool = 50 * batch_size
    batches = []
    for p in range(0, len(examples), pool):
        part = sorted(examples[p: p + pool], key=lambda e: len(e[0]))
        batches += [part[b: b + batch_size] for b in range(0, len(part) - batch_size + 1, batch_size)]
    rng.shuffle(batches)
    return batches


def train(out: Path, train_size: int = 20000, epochs: int = 2, max_seconds: float = 540.0, seed: int = 0,
          dim: int = 128, layers: int = 3, vocab_size: int = 8000, batch_size: int = 32, context: int = 256,
          threads: int = 1, data_dir: Path = SHARED / "data") -> dict:
    """Train and save; `max_seconds` bounds the training loop's CPU time (process time, not wall time)."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = random.Random(seed)
    rows = read_sst2(data_dir / "sst2" / "train.tsv")
    rng.shuffle(rows)
    rows = rows[:train_size]
    tokenizer = wordpiece_tokenizer([t for t, _ in rows], vocab_size, max_length=context, lowercase=True)
    # learned positions: transformers' sinusoidal option left the model stuck at chance here
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=dim, n_layers=layers, n_heads=4, hidden_dim=4 * dim, max_position_embeddings=context,
        dropout=0.1, attention_dropout=0.1, seq_classif_dropout=0.1,
        pad_token_id=tokenizer.pad_token_id, id2label=dict(LABELS), label2id={v: k for k, v in LABELS.items()})
    model = DistilBertForSequenceClassification(config)
    examples = rows + make_documents(rows, len(rows) // 4, rng)

    def inputs(batch):
        enc = tokenizer([t for t, _ in batch], padding=True, truncation=True, max_length=context, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                "labels": torch.tensor([y for _, y in batch])}

    epoch_batches = (length_batches(examples, batch_size, rng) for _ in range(epochs))
    steps_total = epochs * (len(examples) // batch_size)  # an upper bound (length_batches drops pool remainders)
    facts = train_loop(model, epoch_batches, inputs, steps_total, lr=5e-4, warmup=0.05, max_seconds=max_seconds)
    dev = read_sst2(data_dir / "sst2" / "dev.tsv")
    correct = 0
    with torch.inference_mode():
        for b in range(0, len(dev), 64):
            batch = dev[b: b + 64]
            enc = tokenizer([t for t, _ in batch], padding=True, truncation=True, return_tensors="pt")
            pred = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1)
            correct += sum(int(p) == y for p, (_, y) in zip(pred.tolist(), batch))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    facts.update(train_rows=len(rows), pseudo_documents=len(examples) - len(rows), epochs_planned=epochs,
                 sst2_dev_accuracy=round(correct / len(dev), 4), parameters=sum(p.numel() for p in model.parameters()),
                 seed=seed)
    (out / "training.json").write_text(json.dumps(facts, indent=2))
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "sst2-classifier")
    parser.add_argument("--train-size", type=int, default=20000, help="SST-2 training rows used (default 20000 of 67349)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=540.0,
                        help="stop training after this much CPU time (default 540 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=SHARED / "data")
    args = parser.parse_args()
    facts = train(args.out, args.train_size, args.epochs, args.max_seconds, args.seed, threads=args.threads,
                  data_dir=args.data_dir)
    print(json.dumps(facts, indent=2))
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
