"""Shared by the training examples: a WordPiece tokenizer trained on the spot, and a CPU-bounded training loop.

No pretrained weights can be downloaded on these machines, so the example models start from
scratch: a BERT-style WordPiece vocabulary learned from the training text by `tokenizers`, and a
small model built from a config, trained with AdamW and a one-cycle schedule until its epochs or a
CPU-time budget run out.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def wordpiece_tokenizer(texts: Iterable[str], vocab_size: int, max_length: int, lowercase: bool):
    """A BERT-style WordPiece tokenizer ([CLS] text [SEP]) trained on `texts`, ready for save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=max_length, model_input_names=["input_ids", "attention_mask"])


def train_loop(model, epochs: Iterable[list[Any]], inputs: Callable[[Any], dict], steps_total: int, lr: float,
               warmup: float, max_seconds: float) -> dict[str, Any]:
    """AdamW + one-cycle over the batches of each epoch; stops after `max_seconds` of CPU (process) time.

    `epochs` yields one list of batches per epoch; `inputs(batch)` gives the model's keyword arguments,
    labels included.
    """
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps_total = max(steps_total, int(2 / warmup) + 2)  # OneCycleLR needs a warm-up of 2 steps or more
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps_total, pct_start=warmup)
    start, step, losses = time.process_time(), 0, []
    model.train()
    for epoch, batches in enumerate(epochs):
        for batch in batches:
            loss = model(**inputs(batch)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if step < steps_total - 1:
                schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            step += 1
            if step % 100 == 0:
                print(f"epoch {epoch} step {step}/{steps_total} loss {sum(losses[-100:]) / 100:.3f} "
                      f"({time.process_time() - start:.0f} CPU s)", flush=True)
            if time.process_time() - start > max_seconds:
                model.eval()
                return _facts(step, start, losses, stopped_early=True)
    model.eval()
    return _facts(step, start, losses, stopped_early=False)


def _facts(step: int, start: float, losses: list[float], stopped_early: bool) -> dict[str, Any]:
    tail = losses[-100:]
    return {"steps": step, "cpu_seconds": round(time.process_time() - start, 1), "stopped_by_time_budget": stopped_early,
            "final_loss": round(sum(tail) / max(1, len(tail)), 4)}
