"""ROUGE from Google's rouge-score, with the Porter stemmer, reported as F-measures on a 0-100 scale.

rougeLsum needs one sentence per line. nltk's punkt model cannot be downloaded offline, so sentences
are split with pysbd (rule-based, no data files; it keeps "Dr.", "U.S.", "Gov." and "Rev." inside
their sentence). Existing line breaks are kept: by default a text that already has them is taken as
one sentence per line and not split again (CNN/DailyMail highlights), and a single-line text is
split with pysbd. The splitter's name and version are recorded in the result.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import version

import numpy as np

from .base import Scorer, mean_stderr
from .options import Option

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
SPLIT_MODES = ("auto", "pysbd", "newline")


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def splitter_name() -> str:
    return f"pysbd {version('pysbd')} (language=en, clean=False)"


def split_sentences(text: str, mode: str = "auto") -> str:
    """One sentence per line, for rougeLsum. Line breaks always end a sentence; `auto` splits a text
    with pysbd only when it has none, `pysbd` splits every line, `newline` splits at line breaks only."""
    lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
    if mode == "newline" or (mode == "auto" and len(lines) > 1):
        return "\n".join(lines)
    sentences: list[str] = []
    for line in lines:
        for i, piece in enumerate(p.strip() for p in _segmenter().segment(line)):
            if i and sentences and not any(c.isalnum() for c in piece):
                sentences[-1] += piece  # pysbd splits a closing quote off ("as 'flattering." + "'"): keep it
            elif piece:
                sentences.append(piece)
    return "\n".join(sentences)


class Rouge(Scorer):
    names = ROUGE_TYPES
    kinds = ("generate",)
    scale = "0-100"
    OPTIONS = {
        "use_stemmer": Option(bool, help="Porter stemmer (default true)"),
        "sentence_split": Option(str, choices=SPLIT_MODES, help="rougeLsum sentences (default auto)"),
    }

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        from rouge_score import rouge_scorer

        self.use_stemmer = bool(options.get("use_stemmer", True))
        self.mode = options.get("sentence_split", "auto")
        scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=self.use_stemmer)
        self.table = np.zeros((self.n, len(ROUGE_TYPES)))
        for i, r in enumerate(records):
            refs = [split_sentences(ref, self.mode) for ref in r["references"]]
            scores = scorer.score_multi(refs, split_sentences(r["prediction"], self.mode))
            self.table[i] = [scores[t].fmeasure * 100 for t in ROUGE_TYPES]

    def score(self, idx):
        means = self.table[idx].mean(axis=0)
        return {t: float(means[k]) for k, t in enumerate(ROUGE_TYPES)}

    def closed_form_stderr(self):
        return {t: mean_stderr(self.table[:, k]) for k, t in enumerate(ROUGE_TYPES)}

    def per_sample(self):
        return [{t: float(row[k]) for k, t in enumerate(ROUGE_TYPES)} for row in self.table]

    def extra(self):
        return {"measure": "fmeasure", "use_stemmer": self.use_stemmer, "sentence_splitter": splitter_name(),
                "sentence_split": self.mode, "aggregation": "mean over documents, max over references",
                "rouge_score_version": version("rouge-score")}
