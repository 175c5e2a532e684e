"""Log-likelihood of continuation tokens, batched, without a full-vocabulary log-softmax.

Only the positions that predict continuation tokens go through the output head, in chunks small
enough to stay in cache, and each gets a log-softmax plus a gather. Requests whose model inputs are
identical, or a prefix of another request's input, share one row: in a causal model the positions
of the shorter input are the same in the longer one. So the choices of a multiple-choice question
with one-token answers cost one forward of the context. Rows are sorted longest first and padded on
the right, so the numbers do not depend on the batch size (to fp32 rounding). With right padding a
causal model needs no attention mask (padding only follows the real tokens), so none is built and
attention takes its causal fast path, as in lm-eval.

The head-only-where-needed path is used only after it has reproduced the model's own forward() on a
probe batch (`scoring_path`); a model that rescales or caps its logits is scored with the full forward.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable

import torch

from ...batching import BatchPlan, run_batches

_CHUNK_ELEMENTS = 1 << 23  # logits per chunk: 32 MB in fp32, about 160 positions of a 50k vocabulary


@dataclass
class _Row:
    """One model input and the requests read from it: (request index, first target position, targets)."""

    inp: list[int]
    reads: list[tuple[int, int, list[int]]] = field(default_factory=list)


FAST, FULL = "output head on the backbone's states", "full forward"
_PROBE_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-6}  # max |log-prob difference|; 16-bit types: 5e-2
_verified: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def scoring_path(model) -> dict:
    """Which way log-probs are computed for `model`, decided once per model and recorded in the results.

    The fast path runs the backbone and applies the output head only where a log-prob is needed. A
    model whose forward() changes the logits after the head (a multiplier, a soft cap, under any
    config name) would be scored wrongly that way, so the fast path must first give the model's own
    log-probs on a probe batch; otherwise every batch takes the full forward.
    """
    if model in _verified:
        return _verified[model]
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    backbone = getattr(model, "base_model", None)
    if head is None or backbone is None or backbone is model:
        result = {"path": FULL, "reason": "no separate output head"}
    else:
        result = _probe(model, backbone, head)
    _verified[model] = result
    return result


def decided_scoring_path(model) -> dict | None:
    """The recorded decision for `model`, or None when nothing has been scored yet."""
    return _verified.get(model)


@torch.inference_mode()
def _probe(model, backbone, head) -> dict:
    vocab = head.weight.shape[0]
    device = head.weight.device
    ids = (torch.arange(2 * 16, device=device).reshape(2, 16) * 7919 + 11) % vocab
    try:
        full = model(input_ids=ids, use_cache=False).logits.float().log_softmax(-1)
        fast = head(backbone(input_ids=ids, use_cache=False).last_hidden_state).float().log_softmax(-1)
        diff = float((full - fast).abs().max())
    except Exception as err:  # noqa: BLE001 - a backbone that cannot run alone: score with the full forward
        return {"path": FULL, "reason": f"the backbone does not run alone ({type(err).__name__})"}
    tolerance = _PROBE_TOLERANCE.get(head.weight.dtype, 5e-2)
    if diff <= tolerance:
        return {"path": FAST, "probe_max_abs_diff": diff, "tolerance": tolerance}
    return {"path": FULL, "reason": f"the fast path differs from the model's forward by {diff:.3g} on a probe batch",
            "probe_max_abs_diff": diff, "tolerance": tolerance}


def _prepare(ctx: list[int], cont: list[int], max_len: int) -> tuple[list[int], list[int]]:
    """(input ids, target ids): the input keeps its end when too long; the targets are its last positions."""
    full = (ctx + cont)[-(max_len + 1):]
    inp = full[:-1]
    n = min(len(cont), len(inp))
    return inp, cont[len(cont) - n:]


def shared_rows(prepared: list[tuple[list[int], list[int]]]) -> list[_Row]:
    """Group requests so that each distinct input is run once, inside the longest input it prefixes.

    In lexicographic order an input that prefixes others is directly followed by one of them, so
    one backward pass assigns every input to the longest input of its prefix chain.
    """
    order = sorted(range(len(prepared)), key=lambda i: prepared[i][0])
    owner = [0] * len(prepared)
    rows: dict[int, _Row] = {}
    for k in range(len(order) - 1, -1, -1):
        i = order[k]
        inp = prepared[i][0]
        if k + 1 < len(order):
            nxt = prepared[order[k + 1]][0]
            if len(nxt) >= len(inp) and nxt[: len(inp)] == inp:
                owner[i] = owner[order[k + 1]]
                continue
        owner[i] = i
        rows[i] = _Row(inp)
    for i, (inp, tgt) in enumerate(prepared):
        rows[owner[i]].reads.append((i, len(inp) - len(tgt), tgt))
    return list(rows.values())


def _target_logprobs(model, ids, rows_t, cols_t, tgt_t) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(target), target is the argmax) at the given (row, position) pairs."""
    if scoring_path(model)["path"] == FULL:
        logits = model(input_ids=ids, use_cache=False).logits[rows_t, cols_t].float()
        return logits.log_softmax(-1).gather(1, tgt_t[:, None])[:, 0], logits.argmax(dim=-1) == tgt_t
    hidden = model.base_model(input_ids=ids, use_cache=False).last_hidden_state[rows_t, cols_t]
    head = model.get_output_embeddings()
    step = max(1, _CHUNK_ELEMENTS // head.weight.shape[0])
    logps, greedy = [], []
    for s in range(0, hidden.shape[0], step):
        logits = head(hidden[s: s + step]).float()
        t = tgt_t[s: s + step]
        logps.append(logits.log_softmax(-1).gather(1, t[:, None])[:, 0])
        greedy.append(logits.argmax(dim=-1) == t)
    return torch.cat(logps), torch.cat(greedy)


@torch.inference_mode()
def _score_batch(model, batch: list[_Row], device: str) -> list[list[tuple[float, bool]]]:
    width = max(len(row.inp) for row in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    rows, cols, targets, owners = [], [], [], []
    n_reads = 0
    for b, row in enumerate(batch):
        ids[b, : len(row.inp)] = torch.tensor(row.inp)
        for _, start, tgt in row.reads:
            rows += [b] * len(tgt)
            cols += range(start, start + len(tgt))
            targets += tgt
            owners += [n_reads] * len(tgt)
            n_reads += 1
    ids = ids.to(device)
    rows_t, cols_t = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
    tgt_t = torch.tensor(targets, device=device)
    token_lp, token_greedy = _target_logprobs(model, ids, rows_t, cols_t, tgt_t)
    owner_t = torch.tensor(owners, device=device)
    sums = torch.zeros(n_reads, dtype=torch.float64, device=device).index_add_(0, owner_t, token_lp.double())
    misses = torch.zeros(n_reads, dtype=torch.long, device=device).index_add_(0, owner_t, (~token_greedy).long())
    flat = [(float(s), int(m) == 0) for s, m in zip(sums.cpu().tolist(), misses.cpu().tolist())]
    out, pos = [], 0
    for row in batch:
        out.append(flat[pos: pos + len(row.reads)])
        pos += len(row.reads)
    return out


def score_token_pairs(model, pairs: list[tuple[list[int], list[int]]], max_len: int, plan: BatchPlan, device: str,
                      progress: Callable[[int, int], None] | None = None,
                      empty_cache: Callable[[], None] | None = None) -> list[tuple[float, bool]]:
    """(sum log p(cont | ctx), cont is the greedy continuation) for each (ctx, cont) token pair."""
    prepared = [_prepare(ctx, cont, max_len) for ctx, cont in pairs]
    items = sorted(shared_rows(prepared), key=lambda row: (-len(row.inp), row.reads[0][0]))
    lengths = [len(row.inp) for row in items]

    def done(batch, _out):
        if progress:
            progress(sum(len(row.reads) for row in batch), sum(len(row.inp) for row in batch))

    scored = run_batches(items, lengths, plan, lambda batch: _score_batch(model, batch, device), done, empty_cache)
    out: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
    for row, answers in zip(items, scored):
        for (i, _, _), answer in zip(row.reads, answers):
            out[i] = answer
    return out
