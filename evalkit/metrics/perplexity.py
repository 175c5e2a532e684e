"""Document-level perplexity, following lm-eval's convention.

Each document's log-likelihood is summed over disjoint windows of the model's context (every token
predicted once, the first conditioned on the BOS/EOS prefix). Corpus values are ratios of sums:
word_perplexity = exp(-sum ll / sum words), byte_perplexity = exp(-sum ll / sum bytes),
bits_per_byte = -sum ll / sum bytes / ln 2, token_perplexity = exp(-sum ll / sum tokens).
"""

from __future__ import annotations

import math

import numpy as np

from .base import Scorer


class Perplexity(Scorer):
    names = ("word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity")
    kinds = ("perplexity",)
    higher_is_better = False
    scale = "ratio"

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        self.table = np.array([[r["loglikelihood"], r["words"], r["bytes"], r["tokens"]] for r in records], dtype=np.float64)

    def score(self, idx):
        ll, words, nbytes, tokens = self.table[idx].sum(axis=0)
        return {
            "word_perplexity": math.exp(-ll / words),
            "byte_perplexity": math.exp(-ll / nbytes),
            "bits_per_byte": -ll / nbytes / math.log(2),
            "token_perplexity": math.exp(-ll / tokens),
        }

    def per_sample(self):
        return [{"word_perplexity": math.exp(-ll / w), "token_perplexity": math.exp(-ll / t)} for ll, w, _, t in self.table]

    def extra(self):
        return {"convention": "lm-eval loglikelihood_rolling: disjoint windows of the model's max length, "
                              "first window after the BOS/EOS prefix; words = len(re.split(r'\\s+', text))"}
