"""The ceiling: bare transformers loops over the same tokens, with no harness around them.

- perplexity: lm-eval's disjoint windows, a plain forward, log-softmax of the logits, a gather;
- multiple choice: one forward per context, the log-softmax at its last position (when every
  choice is one token; otherwise one forward per choice);
- generation: model.generate, greedy, same batches and left padding, stopping at EOS only;
  the text is cut at the stop sequences afterwards.
"""

from __future__ import annotations

import torch

from evalkit.adapters.hf.tokens import encode_text  # lm-eval's rule for special tokens: the same tokens on every side


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start: start + size]


def _right_padded(rows: list[list[int]], pad: int, device: str):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        mask[b, : len(r)] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def perplexity(model, tok, texts: list[str], max_len: int, batch_size: int, device: str) -> list[float]:
    """Summed log-likelihood of each text."""
    from evalkit.adapters.hf.causal import rolling_windows

    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    windows = []
    for doc, text in enumerate(texts):
        tokens = encode_text(tok, text)
        windows += [(doc, (ctx + cont)[:-1], cont) for ctx, cont in rolling_windows(tokens, prefix, max_len)]
    windows.sort(key=lambda w: -len(w[1]))
    totals = [0.0] * len(texts)
    for batch in _batches(windows, batch_size):
        ids, mask = _right_padded([w[1] for w in batch], 0, device)
        logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for b, (doc, inp, cont) in enumerate(batch):
            start = len(inp) - len(cont)
            picked = logprobs[b, start: len(inp)].gather(1, torch.tensor(cont, device=device)[:, None])
            totals[doc] += float(picked.double().sum())
    return totals


@torch.inference_mode()
def multiple_choice(model, tok, contexts: list[str], choices: list[str], batch_size: int, device: str) -> list[list[float]]:
    """Log-likelihood of each choice after each context."""
    ctx_ids = [encode_text(tok, c) for c in contexts]
    conts = [[encode_text(tok, c + ch)[len(ids):] for ch in choices]
             for c, ids in zip(contexts, ctx_ids)]
    single = all(len(t) == 1 for per_doc in conts for t in per_doc)
    rows = [(d, -1, ids) for d, ids in enumerate(ctx_ids)] if single else \
        [(d, k, (ids + cont)[:-1]) for d, ids in enumerate(ctx_ids) for k, cont in enumerate(conts[d])]
    rows.sort(key=lambda r: -len(r[2]))
    out = [[0.0] * len(choices) for _ in contexts]
    for batch in _batches(rows, batch_size):
        ids, mask = _right_padded([r[2] for r in batch], 0, device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        for b, (doc, k, inp) in enumerate(batch):
            targets = range(len(choices)) if k < 0 else [k]
            for j in targets:
                cont = conts[doc][j]
                lp = torch.log_softmax(logits[b, len(inp) - len(cont): len(inp)].float(), dim=-1)
                out[doc][j] = float(lp.gather(1, torch.tensor(cont, device=device)[:, None]).sum())
    return out


@torch.inference_mode()
def generate(model, tok, prompts: list[str], until: tuple[str, ...], max_new: int, max_len: int,
             batch_size: int, device: str) -> tuple[list[str], int]:
    """Greedy texts cut at the stop sequences, and the number of tokens generated."""
    room = max_len - max_new
    encoded = [(i, encode_text(tok, p)[-room:]) for i, p in enumerate(prompts)]
    encoded.sort(key=lambda e: -len(e[1]))
    texts, generated = [""] * len(prompts), 0
    for batch in _batches(encoded, batch_size):
        width = max(len(ids) for _, ids in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, (_, row) in enumerate(batch):
            ids[b, width - len(row):] = torch.tensor(row)
            mask[b, width - len(row):] = 1
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new,
                             do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[:, width:]
        generated += int((new != tok.pad_token_id).sum())
        for (i, _), text in zip(batch, tok.batch_decode(new, skip_special_tokens=True)):
            for stop in until:
                text = text.split(stop)[0]
            texts[i] = text
    return texts, generated
