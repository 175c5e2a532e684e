"""BLEU, chrF and TER from sacrebleu: corpus-level, never averaged sentence scores.

Sentence statistics are extracted once; a corpus score on any subset (or bootstrap resample) is the
metric applied to summed statistics, exactly as `corpus_score` does it. Several references are
supported (WMT21 de-en has two).
"""

from __future__ import annotations

import numpy as np
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF, TER

from ..errors import EvalkitError
from .base import Scorer


class _Sacrebleu(Scorer):
    scale = "0-100"
    metric_cls: type = BLEU

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        try:
            self.metric = self.metric_cls(**options)
        except TypeError as err:
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
        return {"signature": self.signature, "sacrebleu_version": sacrebleu.__version__}


class Bleu(_Sacrebleu):
    names = ("bleu",)
    metric_cls = BLEU

    def _score_stats(self, summed):
        # sacrebleu's BLEU stats are integers; pass ints so its arithmetic matches corpus_score exactly
        return float(self.metric._compute_score_from_stats([int(x) for x in summed]).score)


class Chrf(_Sacrebleu):
    names = ("chrf",)
    metric_cls = CHRF


class Ter(_Sacrebleu):
    names = ("ter",)
    metric_cls = TER
    higher_is_better = False
