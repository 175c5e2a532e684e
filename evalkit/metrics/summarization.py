"""ROUGE from Google's rouge-score, with the Porter stemmer, reported as F-measures on a 0-100 scale.

rougeLsum needs one sentence per line. nltk's punkt model cannot be downloaded offline, so
sentences are split with a small regex splitter (after ., ! or ? followed by whitespace).
"""

from __future__ import annotations

import re

import numpy as np
from rouge_score import rouge_scorer

from .base import Scorer, mean_stderr

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> str:
    """One sentence per line, for rougeLsum."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


class Rouge(Scorer):
    names = ROUGE_TYPES
    scale = "0-100"

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=bool(options.get("use_stemmer", True)))
        self.table = np.zeros((self.n, len(ROUGE_TYPES)))
        for i, r in enumerate(records):
            refs = [split_sentences(ref) for ref in r["references"]]
            scores = scorer.score_multi(refs, split_sentences(r["prediction"]))
            self.table[i] = [scores[t].fmeasure * 100 for t in ROUGE_TYPES]

    def score(self, idx):
        means = self.table[idx].mean(axis=0)
        return {t: float(means[k]) for k, t in enumerate(ROUGE_TYPES)}

    def closed_form_stderr(self):
        return {t: mean_stderr(self.table[:, k]) for k, t in enumerate(ROUGE_TYPES)}

    def per_sample(self):
        return [{t: float(row[k]) for k, t in enumerate(ROUGE_TYPES)} for row in self.table]

    def extra(self):
        return {"measure": "fmeasure", "use_stemmer": bool(self.options.get("use_stemmer", True)),
                "sentence_split": "regex (?<=[.!?])\\s+", "aggregation": "mean over documents, max over references"}
