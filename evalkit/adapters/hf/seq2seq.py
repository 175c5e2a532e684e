"""hf-seq2seq: encoder-decoder models (AutoModelForSeq2SeqLM: T5, BART, Marian, mT5).

Conventions, those of lm-eval 0.4's HFLM with the seq2seq backend, so numbers are comparable:
- Log-likelihood: the encoder reads the context (encoded with the tokenizer's default special
  tokens), the decoder starts from the model's decoder start token and is scored on the
  continuation (encoded without special tokens). A context's trailing whitespace moves to the
  continuation; an empty context is the prefix token (BOS, else EOS). Each side keeps its last
  `max_length` tokens (counted as truncated).
- Rolling perplexity: lm-eval's windows (tokens.rolling_windows over the text encoded with the
  tokenizer's default special tokens): the decoder scores each window of up to `max_length` tokens,
  and the encoder reads only what lm-eval gives it, the prefix token for the first window and the
  one token before each later window. Every token is predicted once, from the decoder's own left
  context; the encoder adds almost nothing, so this is the decoder's perplexity, as in lm-eval.
- Generation: greedy, the prompt in the encoder (right-padded), cut at the first stop sequence.
Batching, `--batch-size auto` with its out-of-memory back-off, the response cache and the model
identity are those of hf-causal.
"""

from __future__ import annotations

from typing import Any

from ...errors import EvalkitError
from ..base import Progress
from ..model_args import ModelArg
from .adapter import COMMON_MODEL_ARGS, HFLanguageModel
from .scoring import score_seq2seq_pairs
from .tokens import encode_seq2seq_pair


class HFSeq2SeqAdapter(HFLanguageModel):
    name = "hf-seq2seq"
    auto_class = "AutoModelForSeq2SeqLM"

    model_args = {**COMMON_MODEL_ARGS, "kv_cache": ModelArg(str, "generation key-value cache (encoder-decoder: dynamic)")}

    def __init__(self, model: str | None = None, kv_cache: str | None = "dynamic", **kwargs: Any):
        if kv_cache not in (None, "auto", "dynamic"):
            raise EvalkitError(f"{self.name}: kv_cache '{kv_cache}' is for decoder-only models; an encoder-decoder "
                               "model decodes with the dynamic cache (drop the argument)")
        super().__init__(model, kv_cache="dynamic", **kwargs)
        start = self.model.config.decoder_start_token_id
        if start is None:
            start = getattr(self.model.generation_config, "decoder_start_token_id", None)
        if start is None:
            raise EvalkitError(f"{self.name}: the model's config has no decoder_start_token_id; is it an encoder-decoder model?")
        self.decoder_start_id = int(start)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        return encode_seq2seq_pair(self.tokenizer, context, continuation, self.prefix_token_id)

    def score_pairs(self, pairs: list[tuple[list[int], list[int]]], progress: Progress | None) -> list[tuple[float, bool]]:
        return score_seq2seq_pairs(self.model, pairs, self.max_length, self.plan, self.device, self.tokenizer.pad_token_id,
                                   self.decoder_start_id, progress, self.empty_cache)

    def too_long(self, ctx: list[int], cont: list[int]) -> bool:
        return len(ctx) > self.max_length or len(cont) > self.max_length
