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
from ...errors import EvalkitError
from ..base import Progress
from .adapter import HFLanguageModel
from .generation import CACHE_MODES
from .scoring import decided_scoring_path, score_token_pairs
from .tokens import encode_pair, rolling_windows


class HFCausalAdapter(HFLanguageModel):
    name = "hf-causal"
    auto_class = "AutoModelForCausalLM"
    extra_args = ("kv_cache",)

    def __init__(self, model: str | None = None, kv_cache: str = "auto", **kwargs: Any):
        if kv_cache not in CACHE_MODES:
            raise EvalkitError(f"kv_cache must be one of {', '.join(CACHE_MODES)}, got '{kv_cache}'")
        super().__init__(model, kv_cache=kv_cache, **kwargs)

    def run_stats(self) -> dict[str, Any]:
        return {**super().run_stats(), "scoring_path": decided_scoring_path(self.model)}

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        return encode_pair(self.tokenizer, context, continuation, self.prefix_token_id)

    def score_pairs(self, pairs: list[tuple[list[int], list[int]]], progress: Progress | None) -> list[tuple[float, bool]]:
        return score_token_pairs(self.model, pairs, self.max_length, self.plan, self.device, progress, self.empty_cache)

    def too_long(self, ctx: list[int], cont: list[int]) -> bool:
        return len(ctx) + len(cont) > self.max_length + 1


__all__ = ["HFCausalAdapter", "BatchPlan", "rolling_windows"]
