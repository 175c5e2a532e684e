"""Accuracy, length-normalised accuracy and F1 (multiple choice), and exact match (generation).

Accuracy compares each prediction with its own gold label. acc_norm and acc_bytes are lm-eval
0.4.13's: the prediction is the choice with the highest log-likelihood divided by the choice's
length in characters (acc_norm) or UTF-8 bytes (acc_bytes), the length of the choice text alone,
without the target delimiter. F1 is sklearn's `f1_score` with the averaging and the positive label
stated in the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EvalkitError
from .base import Scorer, mean_stderr
from .options import Option

AVERAGES = ("binary", "macro", "micro", "weighted")


class _PerDocumentOutcome(Scorer):
    """A mean of per-document 0/1 outcomes: closed-form standard error, McNemar in compare."""

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        self.outcome = np.array([self.correct(r) for r in records], dtype=float)
        self.binary_outcomes = self.names

    def correct(self, record: dict[str, Any]) -> bool:
        raise NotImplementedError

    def score(self, idx):
        return {self.names[0]: float(self.outcome[idx].mean())}

    def closed_form_stderr(self):
        return {self.names[0]: mean_stderr(self.outcome)}

    def per_sample(self):
        return [{self.names[0]: float(c)} for c in self.outcome]


class Accuracy(_PerDocumentOutcome):
    names = ("accuracy",)
    kinds = ("multiple_choice",)

    def correct(self, record):
        return record["prediction"] == record["gold"]


class AccNorm(_PerDocumentOutcome):
    """lm-eval's acc_norm: argmax of loglikelihood / len(choice) in characters (Python `len` of the
    choice as the task lists it, without the target delimiter); ties go to the first choice (np.argmax)."""

    names = ("acc_norm",)
    kinds = ("multiple_choice",)

    @staticmethod
    def length(choice: str) -> float:
        return float(len(choice))

    def correct(self, record):
        lls = np.array(record["loglikelihoods"], dtype=np.float64)
        lengths = np.array([self.length(c) for c in record["choices"]])
        with np.errstate(divide="ignore", invalid="ignore"):
            best = int(np.argmax(lls / lengths))
        names = self.labels or tuple(c.strip() for c in record["choices"])
        return names[best] == record["gold"]

    def extra(self):
        return {"normalisation": "loglikelihood / characters of the choice (no target delimiter), as lm-eval 0.4.13's acc_norm"}


class AccBytes(AccNorm):
    """lm-eval's acc_bytes: the same with the choice's length in UTF-8 bytes."""

    names = ("acc_bytes",)

    @staticmethod
    def length(choice: str) -> float:
        return float(len(choice.encode("utf-8")))

    def extra(self):
        return {"normalisation": "loglikelihood / UTF-8 bytes of the choice (no target delimiter), as lm-eval 0.4.13's acc_bytes"}


class F1(Scorer):
    names = ("f1",)
    kinds = ("multiple_choice",)
    OPTIONS = {
        "average": Option(str, choices=AVERAGES, help="default: binary for two labels, else macro"),
        "positive": Option(str, help="the positive label for average: binary (default: the last label)"),
    }

    @classmethod
    def check_options(cls, options, labels):
        average = options.get("average", "binary" if len(labels) == 2 else "macro")
        if average == "binary" and len(labels) != 2:
            return f"average 'binary' needs exactly two labels, the task has {len(labels)}; use average: macro"
        pos = options.get("positive")
        if pos is not None and average != "binary":
            return f"'positive' applies to average: binary only (average is '{average}')"
        if pos is not None and str(pos) not in labels:
            return f"positive label '{pos}' is not one of the labels {list(labels)}"
        return None

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        self.label_names = list(labels) or sorted({r["gold"] for r in records} | {r["prediction"] for r in records})
        index = {name: i for i, name in enumerate(self.label_names)}
        self.gold = np.array([index[r["gold"]] for r in records])
        self.pred = np.array([index[r["prediction"]] for r in records])
        self.average = options.get("average", "binary" if len(self.label_names) == 2 else "macro")
        if self.average not in AVERAGES:
            raise EvalkitError(f"f1: unknown average '{self.average}' (use binary, macro, micro or weighted)")
        self.positive = None
        if self.average == "binary":
            if len(self.label_names) != 2:
                raise EvalkitError("f1: average 'binary' needs exactly two labels; use average: macro")
            self.positive = str(options.get("positive", self.label_names[-1]))
            self.pos_index = index[self.positive]

    def point(self):
        from sklearn.metrics import f1_score

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


class ExactMatch(_PerDocumentOutcome):
    """Share of predictions equal to one of the references after stripping whitespace."""

    names = ("exact_match",)
    kinds = ("generate",)
    OPTIONS = {"ignore_case": Option(bool, help="compare lower-cased text")}

    def correct(self, record):
        fold = (lambda s: s.strip().lower()) if self.options.get("ignore_case") else (lambda s: s.strip())
        return any(fold(record["prediction"]) == fold(ref) for ref in record["references"])
