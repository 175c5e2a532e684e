"""Greedy batched generation with left padding; each row stops at EOS or its first stop sequence.

The key-value cache is preallocated (transformers' static cache) where the model supports it: no
cache is re-concatenated at every step, and on CUDA transformers compiles the decoding step into
CUDA graphs. A model that cannot use it falls back to the eager dynamic cache, with the same
tokens. Stop sequences are checked on the last few tokens of the rows still running, and the batch
ends as soon as every row has stopped.

An encoder-decoder model (hf-seq2seq) takes the prompt in its encoder, padded on the right (learned
absolute positions, as BART's, would shift under left padding), its whole context for the prompt,
and decodes from its decoder start token with the eager cache.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from ...batching import BatchPlan, is_oom, run_batches
from ...errors import EvalkitError
from ...requests import Generate, GenerateResponse
from .tokens import clip_for_tokens, encode_text

CACHE_MODES = ("auto", "static", "dynamic")
_CUDA_CACHE_BUCKET = 256  # static cache lengths on CUDA are rounded up to this, so few shapes get compiled
_TAIL_SLACK = 4  # tokens decoded beyond the longest stop sequence's length in characters


class _StopSequences(StoppingCriteria):
    """Marks a row done once its generated text contains a stop sequence, or it produced EOS.

    Only rows still running are looked at, and only their last tokens are decoded; a stop sequence
    seen there is confirmed on the row's whole text, so no row ever stops early.
    """

    def __init__(self, tokenizer, prompt_width: int, until: tuple[str, ...], eos: list[int], n_rows: int, device):
        self.tokenizer, self.prompt_width, self.until = tokenizer, prompt_width, until
        self.tail = max((len(s) for s in until), default=0) + _TAIL_SLACK
        self.eos = torch.tensor(eos, dtype=torch.long, device=device)
        self.stopped_at: list[int | None] = [None] * n_rows  # tokens generated when a stop sequence appeared
        self.done = torch.zeros(n_rows, dtype=torch.bool, device=device)

    def __call__(self, input_ids, scores, **kwargs):
        generated = input_ids[:, self.prompt_width:]
        self.done |= torch.isin(generated[:, -1], self.eos)
        running = (~self.done).nonzero().flatten().tolist()
        if self.until and running:
            tails = self.tokenizer.batch_decode(generated[running, -self.tail:].tolist(), skip_special_tokens=True)
            for row, tail in zip(running, tails):
                if any(stop in tail for stop in self.until) and self._stops(generated[row]):
                    self.stopped_at[row] = generated.shape[1]
                    self.done[row] = True
        return self.done.clone()

    def _stops(self, tokens) -> bool:
        text = self.tokenizer.decode(tokens.tolist(), skip_special_tokens=True)
        return any(stop in text for stop in self.until)


def cut_at_stop(text: str, until: tuple[str, ...]) -> tuple[str, str | None]:
    """The text before the earliest stop sequence, and which one stopped it."""
    best, which = len(text), None
    for stop in until:
        at = text.find(stop)
        if at != -1 and at < best:
            best, which = at, stop
    return text[:best], which


def eos_ids(model, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    ids.append(tokenizer.eos_token_id)
    return sorted({t for t in ids if t is not None})


class Generator:
    """Greedy generation for one model; remembers whether the static cache works for it."""

    def __init__(self, model, tokenizer, device: str, cache: str = "auto"):
        if cache not in CACHE_MODES:
            raise EvalkitError(f"kv_cache must be one of {', '.join(CACHE_MODES)}, got '{cache}'")
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        if self.encoder_decoder and cache == "static":
            raise EvalkitError("kv_cache static is for decoder-only models; an encoder-decoder model decodes with the dynamic cache")
        self.static = cache != "dynamic" and not self.encoder_decoder
        self.strict = cache == "static"
        self.eos = eos_ids(model, tokenizer)
        self._caches: dict[tuple[int, int], object] = {}  # CUDA: one static cache per (rows, length), reused
        # transformers 5.2x renamed past_key_values to cache (the old name still works, with a warning)
        self._cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def prompt_room(self, max_len: int, max_new: int) -> int:
        """Prompt tokens that fit: the encoder's whole context, or a decoder-only model's context less the new tokens."""
        return max_len if self.encoder_decoder else max_len - max_new

    @property
    def cache_mode(self) -> str:
        return "static" if self.static else "dynamic"

    def _cache_args(self, rows: int, width: int, max_new: int) -> dict:
        """A preallocated cache for one batch.

        On the CPU it is exactly as long as the batch needs, so short prompts attend over short
        caches. On CUDA its length is rounded up and one cache per shape is kept and zeroed for
        reuse, so the compiled decoding step sees few shapes and fixed addresses (CUDA graphs).
        """
        if not self.static:
            return {}
        from transformers import StaticCache

        if not self.device.startswith("cuda"):
            return {self._cache_kwarg: StaticCache(config=self.model.config, max_cache_len=width + max_new)}
        length = -(-(width + max_new) // _CUDA_CACHE_BUCKET) * _CUDA_CACHE_BUCKET
        cache = self._caches.get((rows, length))
        if cache is None:
            cache = self._caches[(rows, length)] = StaticCache(config=self.model.config, max_cache_len=length)
        else:
            cache.reset()
        return {self._cache_kwarg: cache}

    @torch.inference_mode()
    def generate_batch(self, batch: list[tuple[int, list[int]]], until: tuple[str, ...], max_new: int):
        width = max(len(ids) for _, ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, (_, ids) in enumerate(batch):
            start = 0 if self.encoder_decoder else width - len(ids)  # right padding for an encoder, left for a decoder
            input_ids[b, start: start + len(ids)] = torch.tensor(ids)
            mask[b, start: start + len(ids)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        prompt_width = 1 if self.encoder_decoder else width  # the decoder's output starts with its start token
        while True:
            criteria = _StopSequences(self.tokenizer, prompt_width, until, self.eos, len(batch), self.device)
            try:
                out = self.model.generate(
                    input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                    temperature=None, top_p=None, top_k=None, num_beams=1, pad_token_id=pad, eos_token_id=self.eos,
                    stopping_criteria=StoppingCriteriaList([criteria]), **self._cache_args(len(batch), width, max_new),
                )
                break
            except Exception as err:  # noqa: BLE001 - a model without static-cache support: retry eagerly
                if not self.static or self.strict or is_oom(err):
                    raise
                self.static = False
        return self._decode(out[:, prompt_width:], criteria.stopped_at, until)

    def _decode(self, new: torch.Tensor, stopped_at: list[int | None], until: tuple[str, ...]):
        is_eos = torch.isin(new, torch.tensor(self.eos, dtype=torch.long, device=new.device))
        first_eos = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), new.shape[1]).tolist()
        lengths = [min(e, s if s is not None else e) for e, s in zip(first_eos, stopped_at)]
        rows = new.cpu().tolist()
        texts = self.tokenizer.batch_decode([row[:n] for row, n in zip(rows, lengths)], skip_special_tokens=True)
        results = []
        for text, n in zip(texts, lengths):
            text, stopped = cut_at_stop(text, until)
            results.append((text, n, stopped))
        return results


def generate_greedy(generator: Generator, requests: list[Generate], max_len: int, plan: BatchPlan,
                    progress: Callable[[int, int], None] | None = None,
                    empty_cache: Callable[[], None] | None = None) -> tuple[list[GenerateResponse], int]:
    tokenizer = generator.tokenizer
    responses: list[GenerateResponse | None] = [None] * len(requests)
    truncated_total = 0
    groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault((tuple(r.until), r.max_new_tokens), []).append(i)
    for (until, max_new), members in groups.items():
        room = generator.prompt_room(max_len, max_new)
        if room < 1:
            raise EvalkitError(f"max_new_tokens {max_new} leaves no room for a prompt in the model's context of {max_len}")
        encoded = {}
        all_ids = [encode_text(tokenizer, clip_for_tokens(tokenizer, requests[i].context, room)) for i in members]
        for i, ids in zip(members, all_ids):
            if len(ids) > room:
                truncated_total += 1
            encoded[i] = (len(ids) > room, ids[-room:] or [tokenizer.eos_token_id])
        order = sorted(members, key=lambda i: (-len(encoded[i][1]), i))
        items = [(i, encoded[i][1]) for i in order]

        def done(batch, out):
            if progress:
                progress(len(batch), sum(len(ids) for _, ids in batch) + sum(n for _, n, _ in out))

        outs = run_batches(items, [len(ids) + max_new for _, ids in items], plan,
                           lambda batch: generator.generate_batch(batch, until, max_new), done, empty_cache)
        for (i, _), (text, n, stopped) in zip(items, outs):
            responses[i] = GenerateResponse(text=text, n_tokens=n, truncated=encoded[i][0], stopped_by=stopped)
    return [r for r in responses if r is not None], truncated_total
