"""hf-classifier: a sequence classifier (AutoModelForSequenceClassification), what pipeline("sentiment-analysis") wraps.

It answers multiple-choice tasks only. The engine sends it one request per choice with the task's
raw `input` text as the context and the choice's label name as the continuation; the answer is the
log-softmax probability of the model label that maps to that name (see labels.py), so accuracy, F1,
compare and McNemar work unchanged. `is_greedy` says whether that label is the model's top label
over all of its labels. A model label no choice maps to (NEUTRAL on a two-way task) stays in the
softmax and is never predicted.

Input: the tokenizer's own special tokens ([CLS] text [SEP]); a text longer than the model's
context keeps its beginning (the tokenizer's truncation, as the pipeline does) and counts as truncated.
Each distinct text runs once, however many choices ask about it. Generation and perplexity are refused.
"""

from __future__ import annotations

from typing import Any, Sequence

from ...errors import EvalkitError
from ...requests import Loglikelihood, LoglikelihoodResponse, RollingLoglikelihood
from ..base import Progress
from .adapter import HFLabelledAdapter
from .labels import classifier_label_index
from .scoring import encoder_outputs, per_document


class HFClassifierAdapter(HFLabelledAdapter):
    name = "hf-classifier"
    auto_class = "AutoModelForSequenceClassification"
    request_types = frozenset({Loglikelihood})
    classifier_input = True
    truncation = "cut, keeping their beginning (the tokenizer's truncation, as the pipeline does)"

    def __init__(self, model: str | None = None, label_map: Any = None, **kwargs: Any):
        super().__init__(model, label_map=label_map, **kwargs)
        if self.tokenizer.truncation_side != "right":
            self.truncation = "cut to their end"

    def loglikelihood(self, requests: Sequence[Loglikelihood], progress: Progress | None = None) -> list[LoglikelihoodResponse]:
        if any(r.messages for r in requests):
            raise EvalkitError(f"{self.name} reads raw text; it cannot take chat messages (drop --apply-chat-template)")
        asked = list(dict.fromkeys(r.continuation for r in requests))
        index = {name: classifier_label_index(self.name, self.model_labels, name, self.label_map, asked) for name in asked}
        texts = list(dict.fromkeys(r.context for r in requests))
        encoded = [self.encode_input(text) for text in texts]
        logits = encoder_outputs(self.model, [ids for ids, _ in encoded], self.plan, self.device, self.tokenizer.pad_token_id,
                                 lambda row, n: row.log_softmax(-1), per_document(progress, len(requests), len(texts)),
                                 self.empty_cache)
        by_text = {text: (lp, truncated, len(ids)) for text, lp, (ids, truncated) in zip(texts, logits, encoded)}
        self.truncated += sum(truncated for _, truncated in encoded)
        out = []
        for r in requests:
            lp, truncated, n = by_text[r.context]
            label = index[r.continuation]
            out.append(LoglikelihoodResponse(float(lp[label]), int(lp.argmax()) == label, n, truncated))
        return out

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihood], progress: Progress | None = None):
        raise self.refusal("perplexity: a classifier has no probability for a text", "hf-causal or hf-seq2seq")

    def generate(self, requests, progress: Progress | None = None):
        raise self.refusal("generation: a classifier only scores its labels", "hf-causal or hf-seq2seq")

    def encode_input(self, text: str) -> tuple[list[int], bool]:
        """The tokenizer's ids with its special tokens, cut to the model's context keeping the start; (ids, truncated)."""
        full = self.tokenizer(text)["input_ids"]
        if not full:
            raise EvalkitError(f"{self.name}: an input text is empty after tokenisation ({text!r}); fix the task's input template or data")
        if len(full) <= self.max_length:
            return full, False
        return self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"], True
