"""Accuracy and F1 over predicted vs gold labels (multiple choice), and exact match (generation).

Accuracy compares each prediction with its own gold label. F1 is sklearn's `f1_score` with the
averaging and the positive label stated in the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from ..errors import EvalkitError
from .base import Scorer, mean_stderr


class Accuracy(Scorer):
    names = ("accuracy",)

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        self.correct = np.array([r["prediction"] == r["gold"] for r in records], dtype=float)

    def score(self, idx):
        return {"accuracy": float(self.correct[idx].mean())}

    def closed_form_stderr(self):
        return {"accuracy": mean_stderr(self.correct)}

    def per_sample(self):
        return [{"accuracy": float(c)} for c in self.correct]


class F1(Scorer):
    names = ("f1",)

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        self.label_names = list(labels) or sorted({r["gold"] for r in records} | {r["prediction"] for r in records})
        index = {name: i for i, name in enumerate(self.label_names)}
        self.gold = np.array([index[r["gold"]] for r in records])
        self.pred = np.array([index[r["prediction"]] for r in records])
        self.average = options.get("average", "binary" if len(self.label_names) == 2 else "macro")
        if self.average not in ("binary", "macro", "micro", "weighted"):
            raise EvalkitError(f"f1: unknown average '{self.average}' (use binary, macro, micro or weighted)")
        self.positive = None
        if self.average == "binary":
            if len(self.label_names) != 2:
                raise EvalkitError("f1: average 'binary' needs exactly two labels; use average: macro")
            self.positive = str(options.get("positive", self.label_names[-1]))
            self.pos_index = index[self.positive]

    def point(self):
        kwargs: dict[str, Any] = {"average": self.average, "labels": list(range(len(self.label_names))), "zero_division": 0.0}
        if self.positive is not None:
            kwargs = {"average": "binary", "pos_label": self.pos_index, "zero_division": 0.0}
        return {"f1": float(f1_score(self.gold, self.pred, **kwargs))}

    def score(self, idx):
        """F1 from confusion counts: sklearn's formulas (zero_division=0), fast enough for 1,000 resamples."""
        k = len(self.label_names)
        confusion = np.bincount(self.gold[idx] * k + self.pred[idx], minlength=k * k).reshape(k, k)
        tp = np.diag(confusion).astype(float)
        fp, fn = confusion.sum(axis=0) - tp, confusion.sum(axis=1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        if self.positive is not None:
            value = per_class[self.pos_index]
        elif self.average == "macro":
            value = per_class.mean()
        elif self.average == "micro":
            denom = 2 * tp.sum() + fp.sum() + fn.sum()
            value = 2 * tp.sum() / denom if denom else 0.0
        else:  # weighted by support
            support = confusion.sum(axis=1)
            value = float((per_class * support).sum() / support.sum()) if support.sum() else 0.0
        return {"f1": float(value)}

    def extra(self):
        out: dict[str, Any] = {"average": self.average}
        if self.positive is not None:
            out["positive_label"] = self.positive
        return out


class ExactMatch(Scorer):
    """Share of predictions equal to one of the references after stripping whitespace."""

    names = ("exact_match",)

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        fold = (lambda s: s.strip().lower()) if options.get("ignore_case") else (lambda s: s.strip())
        self.hits = np.array([any(fold(r["prediction"]) == fold(ref) for ref in r["references"]) for r in records], dtype=float)

    def score(self, idx):
        return {"exact_match": float(self.hits[idx].mean())}

    def closed_form_stderr(self):
        return {"exact_match": mean_stderr(self.hits)}

    def per_sample(self):
        return [{"exact_match": float(h)} for h in self.hits]
