"""Hugging Face causal-LM adapter: batched scoring and greedy generation on CPU or CUDA.

Tokenisation follows lm-eval 0.4's HFLM so that numbers are comparable: the tokenizer's default
special tokens are added (BOS for Llama tokenizers, see tokens.py), trailing whitespace of a context
moves to the continuation, an empty context is replaced by the BOS (or EOS) prefix token, and inputs
longer than the context keep their end (counted as truncated).
Scoring pads on the right, generation on the left.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...batching import BatchPlan, parse_batch_size, run_batches
from ...errors import EvalkitError
from ...requests import (
    Generate,
    GenerateResponse,
    Loglikelihood,
    LoglikelihoodResponse,
    RollingLoglikelihood,
    RollingResponse,
)
from ..base import Adapter, Progress
from .generation import CACHE_MODES, Generator, generate_greedy
from .loading import load_model
from .scoring import decided_scoring_path, score_token_pairs
from .tokens import document_windows, encode_pair, encode_text, prefix_token_id, rolling_windows

_DTYPES = {"auto": "auto", "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


class HFCausalAdapter(Adapter):
    name = "hf-causal"
    data_parallel = True  # its batches go through batching.run_batches: torchrun ranks share them

    def __init__(self, model: str | None = None, dtype: str = "auto", device: str = "auto",
                 batch_size: str | int | None = "auto", max_length: int | None = None,
                 trust_remote_code: bool = False, revision: str | None = None, kv_cache: str = "auto", **unknown: Any):
        if unknown:
            raise EvalkitError(f"hf-causal: unknown model argument(s) {', '.join(sorted(unknown))} (known: dtype, device, batch_size, max_length, revision, kv_cache)")
        if kv_cache not in CACHE_MODES:
            raise EvalkitError(f"kv_cache must be one of {', '.join(CACHE_MODES)}, got '{kv_cache}'")
        if dtype not in _DTYPES:
            raise EvalkitError(f"--dtype must be one of {', '.join(_DTYPES)}, got '{dtype}'")
        self.device = _pick_device(device)
        _quiet_transformers()
        # "auto" keeps the checkpoint's own dtype (as lm-eval does); the dtype used is recorded in the identity
        self.model, self.tokenizer, self._identity = load_model(model, _DTYPES[dtype], trust_remote_code, revision)
        self._identity["dtype_requested"] = dtype
        self.model.to(self.device).eval()
        self.dtype = str(self.model.dtype).replace("torch.", "")
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
        self.prefix_token_id = prefix_token_id(tok)
        self.max_length = int(max_length or _model_max_length(self.model, tok))
        self.plan = parse_batch_size(batch_size, self.device)
        self.truncated = 0
        self.generator = Generator(self.model, tok, self.device, kv_cache)

    # -- identity ---------------------------------------------------------------------------------
    @property
    def identity(self) -> dict[str, Any]:
        return {**self._identity, "adapter": self.name, "dtype": self.dtype, "device": self.device,
                "max_length": self.max_length, "class": type(self.model).__name__}

    def run_stats(self) -> dict[str, Any]:
        return {"batch_size": self.plan.size, "final_batch_size": self.plan.final_size or self.plan.size,
                "batch_size_auto": self.plan.auto, "oom_backoffs": self.plan.backoffs, "truncated_inputs": self.truncated,
                "token_budget": self.plan.token_budget, "kv_cache": self.generator.cache_mode,
                "scoring_path": decided_scoring_path(self.model)}

    def _encode(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text)

    def _empty_cache(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    # -- scoring ----------------------------------------------------------------------------------
    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        return encode_pair(self.tokenizer, context, continuation, self.prefix_token_id)

    def _score(self, pairs: list[tuple[list[int], list[int]]], progress: Progress | None) -> list[tuple[float, bool]]:
        for ctx, cont in pairs:
            if len(ctx) + len(cont) > self.max_length + 1:
                self.truncated += 1
        return score_token_pairs(self.model, pairs, self.max_length, self.plan, self.device, progress, self._empty_cache)

    def loglikelihood(self, requests: Sequence[Loglikelihood], progress: Progress | None = None) -> list[LoglikelihoodResponse]:
        pairs = [self._encode_pair(r.context, r.continuation) for r in requests]
        for i, (_, cont) in enumerate(pairs):
            if not cont:
                raise EvalkitError(f"request {i}: the continuation {requests[i].continuation!r} is empty after tokenisation")
        scored = self._score(pairs, progress)
        return [LoglikelihoodResponse(lp, greedy, len(cont), len(ctx) + len(cont) > self.max_length + 1)
                for (lp, greedy), (ctx, cont) in zip(scored, pairs)]

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihood], progress: Progress | None = None) -> list[RollingResponse]:
        owners, pairs, token_counts = document_windows(self.tokenizer, [r.text for r in requests], self.prefix_token_id,
                                                       self.max_length)
        scored = score_token_pairs(self.model, pairs, self.max_length, self.plan, self.device,
                                   _per_document(progress, len(requests), len(pairs)), self._empty_cache)
        totals = [0.0] * len(requests)
        for owner, (lp, _) in zip(owners, scored):
            totals[owner] += lp
        return [RollingResponse(totals[i], token_counts[i]) for i in range(len(requests))]

    # -- generation -------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Generate], progress: Progress | None = None) -> list[GenerateResponse]:
        responses, truncated = generate_greedy(self.generator, list(requests), self.max_length, self.plan,
                                               progress, self._empty_cache)
        self.truncated += truncated
        return responses


def _per_document(progress: Progress | None, n_docs: int, n_windows: int) -> Progress | None:
    """Turn window counts into document counts, so the bar counts the requests it was given."""
    if progress is None or n_windows == 0:
        return progress
    state = {"windows": 0, "reported": 0}

    def update(windows: int, tokens: int) -> None:
        state["windows"] += windows
        docs = state["windows"] * n_docs // n_windows
        progress(docs - state["reported"], tokens)
        state["reported"] = docs

    return update


def _pick_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalkitError(f"--device {device} asked for, but no CUDA device is available; use --device cpu or auto")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise EvalkitError(f"--device must be auto, cpu, cuda or cuda:N, got '{device}'")
    return device


def _quiet_transformers() -> None:
    """No weight-loading bars or over-length warnings: evalkit truncates itself and reports it."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _model_max_length(model, tok) -> int:
    """lm-eval's rule: the model config's context size, else the tokenizer's, else 2048."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(model.config, attr, None)
        if value:
            return int(value)
    if tok.model_max_length and tok.model_max_length < 1_000_000:
        return int(tok.model_max_length)
    return 2048


__all__ = ["HFCausalAdapter", "BatchPlan", "rolling_windows"]
