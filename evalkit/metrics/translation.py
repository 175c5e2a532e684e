"""BLEU, chrF and TER from sacrebleu: corpus-level, never averaged sentence scores.

Sentence statistics are extracted once; a corpus score on any subset (or bootstrap resample) is the
metric applied to summed statistics, exactly as `corpus_score` does it. Several references are
supported (WMT21 de-en has two).

Options are sacrebleu's own keyword arguments, declared here with their allowed values so a task file
is checked when it is read (sacrebleu itself is imported only to score). tests/test_metric_options.py
checks these lists against the installed sacrebleu.
"""

from __future__ import annotations

import numpy as np

from ..errors import EvalkitError
from .base import Scorer
from .options import Option

# sacrebleu 2.x: BLEU.TOKENIZERS and BLEU.SMOOTH_DEFAULTS
TOKENIZERS = ("none", "zh", "13a", "intl", "char", "ja-mecab", "ko-mecab", "spm", "flores101", "flores200", "spBLEU-1K")
SMOOTH_METHODS = ("none", "floor", "add-k", "exp")


class _Sacrebleu(Scorer):
    scale = "0-100"
    kinds = ("generate",)
    metric_cls_name = "BLEU"

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        import sacrebleu.metrics

        try:
            self.metric = getattr(sacrebleu.metrics, self.metric_cls_name)(**options)
        except (TypeError, ValueError, ImportError, RuntimeError) as err:
            raise EvalkitError(f"{self.names[0]}: bad options {options}: {err}") from None
        hyps = [r["prediction"] for r in records]
        n_refs = max(len(r["references"]) for r in records)
        streams = [[r["references"][k] if k < len(r["references"]) else None for r in records] for k in range(n_refs)]
        self.stats = np.array(self.metric._extract_corpus_statistics(hyps, streams), dtype=float)
        self.signature = str(self.metric.get_signature())
        self.n_refs = n_refs

    def _score_stats(self, summed: np.ndarray) -> float:
        return float(self.metric._compute_score_from_stats(summed.tolist()).score)

    def score(self, idx):
        return {self.names[0]: self._score_stats(self.stats[idx].sum(axis=0))}

    def per_sample(self):
        return [{f"sentence_{self.names[0]}": self._score_stats(row)} for row in self.stats]

    def extra(self):
        import sacrebleu

        return {"signature": self.signature, "sacrebleu_version": sacrebleu.__version__}


class Bleu(_Sacrebleu):
    names = ("bleu",)
    metric_cls_name = "BLEU"
    OPTIONS = {
        "tokenize": Option(str, choices=TOKENIZERS, help="default 13a (zh, ja-mecab, ko-mecab for trg_lang zh/ja/ko)"),
        "smooth_method": Option(str, choices=SMOOTH_METHODS, help="default exp"),
        "smooth_value": Option(float, low=0, high=100, help="for floor (default 0.1) and add-k (default 1)"),
        "max_ngram_order": Option(int, low=1, high=10, help="default 4"),
        "lowercase": Option(bool),
        "effective_order": Option(bool, help="for sentence-level BLEU"),
        "trg_lang": Option(str, help="target language code; picks the default tokenizer"),
        "force": Option(bool, help="score tokenized input without a warning"),
    }

    def _score_stats(self, summed):
        # sacrebleu's BLEU stats are integers; pass ints so its arithmetic matches corpus_score exactly
        return float(self.metric._compute_score_from_stats([int(x) for x in summed]).score)


class Chrf(_Sacrebleu):
    names = ("chrf",)
    metric_cls_name = "CHRF"
    OPTIONS = {
        "char_order": Option(int, low=0, high=20, help="default 6"),
        "word_order": Option(int, low=0, high=10, help="default 0; 2 gives chrF++"),
        "beta": Option(int, low=0, high=100, help="default 2"),
        "lowercase": Option(bool),
        "whitespace": Option(bool, help="keep whitespace in character n-grams"),
        "eps_smoothing": Option(bool, help="chrF++.py / NLTK smoothing instead of the Moses one"),
    }

    @classmethod
    def check_options(cls, options, labels):
        if options.get("char_order", 6) + options.get("word_order", 0) < 1:
            return "char_order and word_order cannot both be 0"
        return None


class Ter(_Sacrebleu):
    names = ("ter",)
    metric_cls_name = "TER"
    higher_is_better = False
    OPTIONS = {
        "normalized": Option(bool),
        "no_punct": Option(bool),
        "asian_support": Option(bool),
        "case_sensitive": Option(bool),
    }
