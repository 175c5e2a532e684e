"""Entity-level precision, recall and F1 for sequence labelling (named entities), from `seqeval`.

An entity is a (type, first word, last word) span; a predicted entity counts only when the gold has
exactly that span with that type. Scores are micro-averaged over all entities of all sentences, as
CoNLL papers report them.

Options, declared by the task:
  scheme: IOB1, IOB2 or IOBES, the tagging scheme of the task's tags (default IOB2). Gold tags with a
          prefix the scheme does not have are a task error.
  mode:   conlleval (default): seqeval's default chunking, the conlleval.pl rules the CoNLL-2003 F1 is
          defined by; it reads IOB1, IOB2 and IOBES alike, so a model tagging in IOB2 is scored fairly
          against IOB1 gold. strict: seqeval's strict mode with the declared scheme, where an entity
          must be tagged exactly as the scheme says (an IOB1 entity that starts with B- after O is not one).

The reported values come from seqeval's own precision/recall/f1 functions on all sentences. For the
bootstrap standard error and `compare`'s paired tests the same entities are counted per sentence
(true positives, predicted, gold), so a resample of sentences sums counts instead of re-running seqeval.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EvalkitError
from .base import Scorer
from .options import Option

SCHEMES = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES"}
MODES = ("conlleval", "strict")


def _ratios(tp: float, pred: float, gold: float) -> dict[str, float]:
    precision = tp / pred if pred else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * tp / (pred + gold) if pred + gold else 0.0
    return {"entity_precision": precision, "entity_recall": recall, "entity_f1": f1}


class EntityF1(Scorer):
    names = ("entity_precision", "entity_recall", "entity_f1")
    kinds = ("sequence_labeling",)
    OPTIONS = {
        "scheme": Option(str, choices=tuple(SCHEMES), help="the task's tagging scheme (default IOB2)"),
        "mode": Option(str, choices=MODES, help="conlleval (default): conlleval.pl chunking; strict: the scheme's rules"),
    }

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        self.scheme = str(options.get("scheme", "IOB2")).upper()
        self.mode = str(options.get("mode", "conlleval"))
        if self.scheme not in SCHEMES:
            raise EvalkitError(f"entity_f1: unknown scheme '{options.get('scheme')}' (use {', '.join(SCHEMES)})")
        if self.mode not in MODES:
            raise EvalkitError(f"entity_f1: unknown mode '{self.mode}' (use {' or '.join(MODES)})")
        self.gold = [list(r["gold"]) for r in records]
        self.pred = [list(r["prediction"]) for r in records]
        for r, gold, pred in zip(records, self.gold, self.pred):
            if len(gold) != len(pred):
                raise EvalkitError(f"entity_f1: doc {r.get('doc_id')} has {len(gold)} gold tags but {len(pred)} predicted")
        self._check_scheme()
        counts = [self._counts(g, p) for g, p in zip(self.gold, self.pred)]
        self.tp, self.n_pred, self.n_gold = (np.array(c, dtype=float) for c in zip(*counts))

    def _check_scheme(self) -> None:
        allowed = SCHEMES[self.scheme]
        for r, tags in zip(range(self.n), self.gold):
            for tag in tags:
                if tag != "O" and (len(tag) < 3 or tag[1] != "-" or tag[0] not in allowed):
                    raise EvalkitError(f"entity_f1: gold tag '{tag}' (sentence {r}) is not an {self.scheme} tag "
                                       f"(O or {'/'.join(allowed)}-TYPE); fix the task's scheme option or its data")

    def _entities(self, tags: list[str]) -> set[tuple[Any, ...]]:
        if self.mode == "conlleval":
            from seqeval.metrics.sequence_labeling import get_entities

            return set(get_entities(tags))
        from seqeval import scheme as schemes

        return {e.to_tuple()[1:] for e in schemes.Entities([tags], getattr(schemes, self.scheme)).entities[0]}

    def _counts(self, gold: list[str], pred: list[str]) -> tuple[int, int, int]:
        g, p = self._entities(gold), self._entities(pred)
        return len(g & p), len(p), len(g)

    def _seqeval_kwargs(self) -> dict[str, Any]:
        if self.mode == "conlleval":
            return {}
        from seqeval import scheme as schemes

        return {"mode": "strict", "scheme": getattr(schemes, self.scheme)}

    def point(self):
        from seqeval.metrics import f1_score, precision_score, recall_score

        kw = {"zero_division": 0, **self._seqeval_kwargs()}
        return {"entity_precision": float(precision_score(self.gold, self.pred, **kw)),
                "entity_recall": float(recall_score(self.gold, self.pred, **kw)),
                "entity_f1": float(f1_score(self.gold, self.pred, **kw))}

    def score(self, idx):
        return _ratios(self.tp[idx].sum(), self.n_pred[idx].sum(), self.n_gold[idx].sum())

    def per_sample(self):
        return [{"entity_tp": int(t), "entity_predicted": int(p), "entity_gold": int(g)}
                for t, p, g in zip(self.tp, self.n_pred, self.n_gold)]

    def extra(self):
        from seqeval.metrics import classification_report

        report = classification_report(self.gold, self.pred, output_dict=True, zero_division=0, **self._seqeval_kwargs())
        per_type = {name: round(float(v["f1-score"]), 6) for name, v in report.items() if not name.endswith(" avg")}
        return {"scheme": self.scheme, "mode": self.mode, "average": "micro", "per_type_f1": per_type,
                "entities_gold": int(self.n_gold.sum()), "entities_predicted": int(self.n_pred.sum())}
