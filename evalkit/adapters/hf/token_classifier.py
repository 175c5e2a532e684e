"""hf-token-classifier: a token classifier (AutoModelForTokenClassification), what pipeline("ner") wraps.

It answers sequence-labelling tasks (`TagWords`): the sentence comes split into words, the
tokenizer splits each word into pieces (`is_split_into_words`, a fast tokenizer's word ids), and
**each word takes the label the model predicts on its first piece** (the argmax of that position's
logits); the other pieces are not read. This is the alignment the Hugging Face token-classification
recipe trains with (labels on first pieces, -100 elsewhere). Model labels map to the task's tags
case-insensitively or through `label_map` (labels.py); each must map, since each may be predicted.

A sentence whose pieces do not fit the model's context is tagged in consecutive windows of whole
words, each read without the others (counted as truncated). A word the tokenizer turns into no
piece at all (e.g. a lone zero-width character) is tagged "O".
"""

from __future__ import annotations

from typing import Any, Sequence

from ...errors import EvalkitError
from ...requests import TagWords, WordTags
from ..base import Progress
from .adapter import HFLabelledAdapter
from .labels import tag_mapping
from .scoring import encoder_outputs, per_document

OUTSIDE = "O"


class HFTokenClassifierAdapter(HFLabelledAdapter):
    name = "hf-token-classifier"
    auto_class = "AutoModelForTokenClassification"
    request_types = frozenset({TagWords})
    truncation = "tagged in consecutive windows of whole words"

    def __init__(self, model: str | None = None, label_map: Any = None, **kwargs: Any):
        super().__init__(model, label_map=label_map, **kwargs)
        if not self.tokenizer.is_fast:
            raise EvalkitError(f"{self.name}: the model's tokenizer is not a fast (Rust) tokenizer, so words cannot be "
                               "aligned with their pieces; save the model with a tokenizer.json")
        self.room = self.max_length - self.tokenizer.num_special_tokens_to_add()
        self.pieceless_words = 0

    def run_stats(self) -> dict[str, Any]:
        return {**super().run_stats(), "words_without_pieces": self.pieceless_words}

    def loglikelihood(self, requests, progress: Progress | None = None):
        raise self.refusal("log-likelihoods: a token classifier only tags words", "hf-classifier, hf-causal or hf-seq2seq")

    def loglikelihood_rolling(self, requests, progress: Progress | None = None):
        raise self.refusal("perplexity: a token classifier only tags words", "hf-causal or hf-seq2seq")

    def generate(self, requests, progress: Progress | None = None):
        raise self.refusal("generation: a token classifier only tags words", "hf-causal or hf-seq2seq")

    def tag_words(self, requests: Sequence[TagWords], progress: Progress | None = None) -> list[WordTags]:
        mappings: dict[tuple[str, ...], list[int]] = {}
        windows: list[tuple[int, int, list[int | None], list[int]]] = []  # (request, first word, first pieces, ids)
        for i, r in enumerate(requests):
            if r.labels not in mappings:
                mappings[r.labels] = tag_mapping(self.name, self.model_labels, list(r.labels), self.label_map)
            for start, words in self.word_windows(list(r.words)):
                ids, firsts = self.encode_words(words)
                windows.append((i, start, firsts, ids))
        predicted = encoder_outputs(self.model, [w[3] for w in windows], self.plan, self.device, self.tokenizer.pad_token_id,
                                    lambda logits, n: logits[:n].argmax(-1).tolist(),
                                    per_document(progress, len(requests), len(windows)), self.empty_cache)
        tags: list[list[str]] = [[""] * len(r.words) for r in requests]
        n_windows = [0] * len(requests)
        for (i, start, firsts, _), pred in zip(windows, predicted):
            labels, mapping = requests[i].labels, mappings[requests[i].labels]
            n_windows[i] += 1
            for k, pos in enumerate(firsts):
                tags[i][start + k] = labels[mapping[pred[pos]]] if pos is not None else self._outside(requests[i])
        self.truncated += sum(n > 1 for n in n_windows)
        return [WordTags(tuple(t), truncated=n > 1) for t, n in zip(tags, n_windows)]

    def word_windows(self, words: list[str]) -> list[tuple[int, list[str]]]:
        """Consecutive runs of whole words whose pieces fit the context: [(index of the first word, words)]."""
        enc = self.tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        pieces = [0] * len(words)
        for w in enc.word_ids():
            if w is not None:
                pieces[w] += 1
        out, start, used = [], 0, 0
        for k, n in enumerate(pieces):
            if used + n > self.room and k > start:
                out.append((start, words[start:k]))
                start, used = k, 0
            used += n
        out.append((start, words[start:]))
        return out

    def encode_words(self, words: list[str]) -> tuple[list[int], list[int | None]]:
        """The window's ids (special tokens included) and, per word, the position of its first piece (None: no piece)."""
        enc = self.tokenizer(words, is_split_into_words=True, truncation=True, max_length=self.max_length)
        firsts: list[int | None] = [None] * len(words)
        for pos, w in enumerate(enc.word_ids()):
            if w is not None and firsts[w] is None:
                firsts[w] = pos
        return list(enc["input_ids"]), firsts

    def _outside(self, request: TagWords) -> str:
        if OUTSIDE not in request.labels:
            raise EvalkitError(f"{self.name}: a word has no word pieces, and the task has no '{OUTSIDE}' tag to give it "
                               f"(words: {' '.join(request.words)[:80]})")
        self.pieceless_words += 1
        return OUTSIDE
