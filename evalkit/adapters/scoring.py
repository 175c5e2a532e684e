"""Log-likelihood of continuation tokens, batched, without a full-vocabulary log-softmax.

Only the positions that predict continuation tokens go through the output head, in chunks, and
each gets logsumexp plus a gather. Rows are sorted longest first and padded on the right, so the
numbers do not depend on the batch size (to fp32 rounding).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..batching import BatchPlan, run_batches

# configs whose forward() rescales logits after the head: score them through the full forward
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")
_CHUNK_ELEMENTS = 1 << 27  # logits per chunk: 512 MB in fp32


def _uses_backbone(model) -> bool:
    cfg = model.config
    return (getattr(model, "base_model", None) is not None and model.base_model is not model
            and model.get_output_embeddings() is not None
            and not any(getattr(cfg, attr, None) for attr in _LOGIT_TRANSFORMS))


def _prepare(ctx: list[int], cont: list[int], max_len: int) -> tuple[list[int], list[int]]:
    """(input ids, target ids): the input keeps its end when too long; the targets are its last positions."""
    full = (ctx + cont)[-(max_len + 1):]
    inp = full[:-1]
    n = min(len(cont), len(inp))
    return inp, cont[len(cont) - n:]


@torch.inference_mode()
def _score_batch(model, batch: list[tuple[list[int], list[int]]], device: str) -> list[tuple[float, bool]]:
    width = max(len(inp) for inp, _ in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, targets, owners = [], [], [], []
    for b, (inp, tgt) in enumerate(batch):
        ids[b, : len(inp)] = torch.tensor(inp)
        mask[b, : len(inp)] = 1
        start = len(inp) - len(tgt)
        rows += [b] * len(tgt)
        cols += range(start, len(inp))
        targets += tgt
        owners += [b] * len(tgt)
    ids, mask = ids.to(device), mask.to(device)
    rows_t, cols_t = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
    tgt_t = torch.tensor(targets, device=device)
    if _uses_backbone(model):
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state[rows_t, cols_t]
        head = model.get_output_embeddings()
        vocab = head.weight.shape[0]
        step = max(1, _CHUNK_ELEMENTS // vocab)
        logps, greedy = [], []
        for s in range(0, hidden.shape[0], step):
            logits = head(hidden[s: s + step]).float()
            t = tgt_t[s: s + step]
            logps.append(logits.gather(1, t[:, None])[:, 0] - torch.logsumexp(logits, dim=-1))
            greedy.append(logits.argmax(dim=-1) == t)
        token_lp, token_greedy = torch.cat(logps), torch.cat(greedy)
    else:
        logits = model(input_ids=ids, attention_mask=mask).logits[rows_t, cols_t].float()
        token_lp = logits.gather(1, tgt_t[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
        token_greedy = logits.argmax(dim=-1) == tgt_t
    owner_t = torch.tensor(owners, device=device)
    sums = torch.zeros(len(batch), dtype=torch.float64, device=device).index_add_(0, owner_t, token_lp.double())
    misses = torch.zeros(len(batch), dtype=torch.long, device=device).index_add_(0, owner_t, (~token_greedy).long())
    return [(float(s), int(m) == 0) for s, m in zip(sums.cpu(), misses.cpu())]


def score_token_pairs(model, pairs: list[tuple[list[int], list[int]]], max_len: int, plan: BatchPlan, device: str,
                      progress: Callable[[int, int], None] | None = None,
                      empty_cache: Callable[[], None] | None = None) -> list[tuple[float, bool]]:
    """(sum log p(cont | ctx), cont is the greedy continuation) for each (ctx, cont) token pair."""
    prepared = [_prepare(ctx, cont, max_len) for ctx, cont in pairs]
    order = sorted(range(len(prepared)), key=lambda i: (-len(prepared[i][0]), i))
    items = [prepared[i] for i in order]
    lengths = [len(inp) for inp, _ in items]

    def done(batch, _out):
        if progress:
            progress(len(batch), sum(len(inp) for inp, _ in batch))

    scored = run_batches(items, lengths, plan, lambda batch: _score_batch(model, batch, device), done, empty_cache)
    out: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
    for pos, i in enumerate(order):
        out[i] = scored[pos]
    return out
