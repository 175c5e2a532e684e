"""Train a real named-entity tagger here, on the CPU: a small BERT-shaped token classifier on CoNLL-2003.

No pretrained weights can be downloaded on these machines, so the tagger starts from scratch: a
WordPiece tokenizer trained by `tokenizers` on the words of ../shared/data/conll2003/eng.train
(cased: capitals matter for names), and a 3-layer BERT-shaped `BertForTokenClassification`. Each
word's tag is learned on its first word piece; the other pieces are ignored (label -100), which is
the convention `hf-token-classifier` reads predictions back with. The tags are the file's own (IOB1),
the nine CoNLL-2003 labels. eng.testa is not used for training. Saved with `save_pretrained`.

    python examples/train_conll_tagger.py --out results/conll-tagger
    evalkit run --adapter hf-token-classifier --model results/conll-tagger --tasks conll2003 --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from small_models import train_loop, wordpiece_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]  # tasks/conll2003.yaml's labels


def read_sentences(path: Path) -> list[dict]:
    """Sentences of a CoNLL file through evalkit's own `conll` reader (the format the task uses)."""
    from evalkit.data import read_local
    from evalkit.tasks.spec import LocalSource

    src = LocalSource(path=path.name, format="conll", columns=("tokens", "pos", "chunk", "ner"))
    return read_local(src, path.parent, "conll2003")


def encode(tokenizer, words_batch: list[list[str]], tags_batch: list[list[str]] | None, max_length: int):
    """Word pieces of pre-split words; labels on each word's first piece, -100 elsewhere."""
    import torch

    enc = tokenizer(words_batch, is_split_into_words=True, padding=True, truncation=True, max_length=max_length,
                    return_tensors="pt")
    if tags_batch is None:
        return enc, None
    labels = torch.full(enc["input_ids"].shape, -100, dtype=torch.long)
    for b, tags in enumerate(tags_batch):
        previous = None
        for pos, word in enumerate(enc.word_ids(b)):
            if word is not None and word != previous:
                labels[b, pos] = TAGS.index(tags[word])
            previous = word
    return enc, labels


def train(out: Path, epochs: int = 6, max_seconds: float = 540.0, seed: int = 0, hidden: int = 128, layers: int = 3,
          vocab_size: int = 8000, batch_size: int = 32, threads: int = 1, data_dir: Path = SHARED / "data",
          limit: int | None = None) -> dict:
    """Train and save; `max_seconds` bounds the training loop's CPU time (process time, not wall time)."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = random.Random(seed)
    sentences = read_sentences(data_dir / "conll2003" / "eng.train")
    if limit:
        sentences = rng.sample(sentences, limit)
    tokenizer = wordpiece_tokenizer((" ".join(s["tokens"]) for s in sentences), vocab_size, max_length=512, lowercase=False)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=4 * hidden, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                        id2label=dict(enumerate(TAGS)), label2id={t: i for i, t in enumerate(TAGS)})
    model = BertForTokenClassification(config)

    def epoch_batches():
        order = sorted(rng.sample(sentences, len(sentences)), key=lambda s: len(s["tokens"]))  # length buckets
        batches = [order[b: b + batch_size] for b in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        return batches

    def inputs(batch):
        enc, labels = encode(tokenizer, [s["tokens"] for s in batch], [s["ner"] for s in batch], 128)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}

    steps_total = epochs * -(-len(sentences) // batch_size)
    facts = train_loop(model, (epoch_batches() for _ in range(epochs)), inputs, steps_total, lr=2e-3, warmup=0.1,
                       max_seconds=max_seconds)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    facts.update(train_sentences=len(sentences), epochs_planned=epochs, seed=seed,
                 parameters=sum(p.numel() for p in model.parameters()))
    (out / "training.json").write_text(json.dumps(facts, indent=2))
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "conll-tagger")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-seconds", type=float, default=540.0, help="stop training after this much CPU time (default 540 s)")
    parser.add_argument("--limit", type=int, default=None, help="train on a seeded sample of N sentences (default: all 14,041)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=SHARED / "data")
    args = parser.parse_args()
    facts = train(args.out, args.epochs, args.max_seconds, args.seed, threads=args.threads, data_dir=args.data_dir,
                  limit=args.limit)
    print(json.dumps(facts, indent=2))
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
