"""Hugging Face causal-LM adapter: batched scoring and greedy generation on CPU or CUDA.

Tokenisation follows lm-eval 0.4's HFLM so that numbers are comparable: the tokenizer's default
special tokens are added (BOS for Llama tokenizers, see tokens.py), trailing whitespace of a context
moves to the continuation, an empty context is replaced by the BOS (or EOS) prefix token, and inputs
longer than the context keep their end (counted as truncated).
Scoring pads on the right, generation on the left.
"""

from __future__ import annotations

from typing import Any

from ...batching import BatchPlan
from ..base import Progress
from ..model_args import ModelArg
from .adapter import COMMON_MODEL_ARGS, HFLanguageModel
from .generation import CACHE_MODES
from .scoring import decided_scoring_path, score_token_pairs
from .tokens import clip_for_tokens, encode_pair, rolling_windows


class HFCausalAdapter(HFLanguageModel):
    name = "hf-causal"
    auto_class = "AutoModelForCausalLM"
    data_parallel = True  # its batches go through batching.run_batches: torchrun ranks share them
    model_args = {**COMMON_MODEL_ARGS,
                  "kv_cache": ModelArg(str, "generation key-value cache", choices=CACHE_MODES)}

    def __init__(self, model: str | None = None, kv_cache: str | None = "auto", **kwargs: Any):
        kv_cache = self.model_args["kv_cache"].convert("kv_cache", kv_cache, self.name) or "auto"
        super().__init__(model, kv_cache=kv_cache, **kwargs)

    def run_stats(self) -> dict[str, Any]:
        return {**super().run_stats(), "scoring_path": decided_scoring_path(self.model)}

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        context = clip_for_tokens(self.tokenizer, context, self.max_length)  # only its end can be scored
        return encode_pair(self.tokenizer, context, continuation, self.prefix_token_id)

    def score_pairs(self, pairs: list[tuple[list[int], list[int]]], progress: Progress | None) -> list[tuple[float, bool]]:
        return score_token_pairs(self.model, pairs, self.max_length, self.plan, self.device, progress, self.empty_cache)

    def too_long(self, ctx: list[int], cont: list[int]) -> bool:
        return len(ctx) + len(cont) > self.max_length + 1


__all__ = ["HFCausalAdapter", "BatchPlan", "rolling_windows"]
