"""QA-style exact match and token F1, as the official SQuAD v1.1 evaluation script computes them.

Both normalise answers the same way (lower-case, drop punctuation, drop the articles a/an/the,
collapse whitespace). Token F1 is the overlap of the two bags of tokens. Each prediction takes the
maximum over its references; the corpus value is the mean, on a 0-100 scale like the official script.
These are different metrics from classification `f1` and from the plain `exact_match`, and have
their own names: `squad_f1` and `squad_exact_match`.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from .base import SampleCorpusMetric

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower-case, remove punctuation, remove articles, fix whitespace."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:  # v1.1: also when both are empty
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


class _Squad(SampleCorpusMetric):
    kinds = ("generate",)
    scale = "0-100"

    def extra(self):
        return {"convention": "SQuAD v1.1 evaluate-v1.1.py: normalised answers, max over references, mean x 100"}


class SquadExactMatch(_Squad):
    names = ("squad_exact_match",)
    binary_outcomes = ("squad_exact_match",)

    def sample(self, record):
        return {"squad_exact_match": 100.0 * max(exact(record["prediction"], ref) for ref in record["references"])}


class SquadF1(_Squad):
    names = ("squad_f1",)

    def sample(self, record):
        return {"squad_f1": 100.0 * max(token_f1(record["prediction"], ref) for ref in record["references"])}
