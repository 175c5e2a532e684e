"""Metrics: a per-sample part (statistics logged per document) and a corpus part (recomputed from them).

Each family lives in its own module and is imported only when a task uses it. A scorer's
`score(idx)` recomputes the corpus metric on any (re)sample of documents, which is what both the
bootstrap standard error and `evalkit compare`'s paired bootstrap need.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import MetricValue, Scorer, bootstrap_stderr, summarize

# family -> (module, class, request kinds it applies to)
_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "accuracy": ("classification", "Accuracy", ("multiple_choice",)),
    "f1": ("classification", "F1", ("multiple_choice",)),
    "exact_match": ("classification", "ExactMatch", ("generate",)),
    "bleu": ("translation", "Bleu", ("generate",)),
    "chrf": ("translation", "Chrf", ("generate",)),
    "ter": ("translation", "Ter", ("generate",)),
    "rouge": ("summarization", "Rouge", ("generate",)),
    "perplexity": ("perplexity", "Perplexity", ("perplexity",)),
    "entity_f1": ("sequence_labeling", "EntityF1", ("sequence_labeling",)),
}


def metric_names(kind: str | None = None) -> list[str]:
    return sorted(name for name, (_, _, kinds) in _FAMILIES.items() if kind is None or kind in kinds)


def build_scorer(name: str, options: dict[str, Any], records: list[dict[str, Any]], labels: tuple[str, ...] = ()) -> Scorer:
    """The scorer of metric family `name` over logged sample records."""
    module, cls, _ = _FAMILIES[name]
    scorer_cls = getattr(import_module(f"{__name__}.{module}"), cls)
    return scorer_cls(records, options=dict(options), labels=labels)


__all__ = ["MetricValue", "Scorer", "bootstrap_stderr", "build_scorer", "metric_names", "summarize"]
