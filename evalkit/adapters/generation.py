"""Greedy batched generation with left padding; each row stops at EOS or its first stop sequence."""

from __future__ import annotations

from typing import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ..batching import BatchPlan, run_batches
from ..errors import EvalkitError
from ..requests import Generate, GenerateResponse


class _StopSequences(StoppingCriteria):
    """Marks a row done once its generated text contains a stop sequence."""

    def __init__(self, tokenizer, prompt_width: int, until: tuple[str, ...]):
        self.tokenizer, self.prompt_width, self.until = tokenizer, prompt_width, until

    def __call__(self, input_ids, scores, **kwargs):
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width:], skip_special_tokens=True)
        return torch.tensor([any(stop in text for stop in self.until) for text in texts], device=input_ids.device)


def cut_at_stop(text: str, until: tuple[str, ...]) -> tuple[str, str | None]:
    """The text before the earliest stop sequence, and which one stopped it."""
    best, which = len(text), None
    for stop in until:
        at = text.find(stop)
        if at != -1 and at < best:
            best, which = at, stop
    return text[:best], which


@torch.inference_mode()
def _generate_batch(model, tokenizer, batch, until, max_new, device):
    width = max(len(ids) for _, ids in batch)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, (_, ids) in enumerate(batch):
        input_ids[b, width - len(ids):] = torch.tensor(ids)
        mask[b, width - len(ids):] = 1
    criteria = StoppingCriteriaList([_StopSequences(tokenizer, width, until)]) if until else None
    out = model.generate(
        input_ids=input_ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new,
        do_sample=False, temperature=None, top_p=None, top_k=None, num_beams=1,
        pad_token_id=pad, stopping_criteria=criteria,
    )
    new = out[:, width:].cpu()
    eos = {t for t in ([model.generation_config.eos_token_id] if isinstance(model.generation_config.eos_token_id, int)
                       else (model.generation_config.eos_token_id or [])) if t is not None}
    eos.add(tokenizer.eos_token_id)
    results = []
    for row in new.tolist():
        n = len(row)
        for k, token in enumerate(row):
            if token in eos:
                n = k
                break
        text = tokenizer.decode(row[:n], skip_special_tokens=True)
        text, stopped = cut_at_stop(text, until)
        results.append((text, n, stopped))
    return results


def generate_greedy(model, tokenizer, requests: list[Generate], max_len: int, plan: BatchPlan, device: str,
                    progress: Callable[[int, int], None] | None = None,
                    empty_cache: Callable[[], None] | None = None) -> tuple[list[GenerateResponse], int]:
    responses: list[GenerateResponse | None] = [None] * len(requests)
    truncated_total = 0
    groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((tuple(r.until), r.max_new_tokens), []).append(i)
    for (until, max_new), members in groups.items():
        room = max_len - max_new
        if room < 1:
            raise EvalkitError(f"max_new_tokens {max_new} leaves no room for a prompt in the model's context of {max_len}")
        encoded = {}
        for i in members:
            ids = tokenizer(requests[i].context, add_special_tokens=False)["input_ids"]
            if len(ids) > room:
                truncated_total += 1
            encoded[i] = (len(ids) > room, ids[-room:] or [tokenizer.eos_token_id])
        order = sorted(members, key=lambda i: (-len(encoded[i][1]), i))
        items = [(i, encoded[i][1]) for i in order]

        def done(batch, out):
            if progress:
                progress(len(batch), sum(len(ids) for _, ids in batch) + sum(n for _, n, _ in out))

        outs = run_batches(items, [len(ids) for _, ids in items], plan,
                           lambda batch: _generate_batch(model, tokenizer, batch, until, max_new, device), done, empty_cache)
        for (i, _), (text, n, stopped) in zip(items, outs):
            responses[i] = GenerateResponse(text=text, n_tokens=n, truncated=encoded[i][0], stopped_by=stopped)
    return [r for r in responses if r is not None], truncated_total
