"""Reported metric names: `as:` gives a metric its own name, so one family can be listed twice.

A family with one value (f1) is reported under the alias itself (`as: f1_micro`); a family with
several values (rouge) under `ALIAS.value` (`as: rouge_raw` gives rouge_raw.rouge1, ...).
Per-sample scores are renamed the same way, so two F1s never overwrite each other anywhere.
"""

from __future__ import annotations

import re
from typing import Any

from .base import Scorer

METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")  # no '.', '/', ',' or '=': those separate names in flags and keys


def renamed(names: tuple[str, ...], alias: str) -> dict[str, str]:
    """{value name: reported name} for a family reported under `alias`."""
    if len(names) == 1:
        return {names[0]: alias}
    return {n: f"{alias}.{n}" for n in names}


class Renamed(Scorer):
    """Another scorer's values under an alias."""

    def __init__(self, inner: Scorer, alias: str, family: str):
        self.inner, self.alias, self.family = inner, alias, family
        self.n, self.options, self.labels = inner.n, inner.options, inner.labels
        self.to_reported = renamed(inner.names, alias)
        self.from_reported = {v: k for k, v in self.to_reported.items()}
        self.names = tuple(self.to_reported[n] for n in inner.names)
        self.binary_outcomes = tuple(self.to_reported[n] for n in inner.binary_outcomes)
        self.higher_is_better, self.scale = inner.higher_is_better, inner.scale

    def _key(self, key: str) -> str:
        return self.to_reported.get(key, f"{self.alias}.{key}")

    def score(self, idx):
        return {self._key(k): v for k, v in self.inner.score(idx).items()}

    def point(self):
        return {self._key(k): v for k, v in self.inner.point().items()}

    def closed_form_stderr(self):
        closed = self.inner.closed_form_stderr()
        return None if closed is None else {self._key(k): v for k, v in closed.items()}

    def higher_is_better_for(self, name: str) -> bool:
        return self.inner.higher_is_better_for(self.from_reported[name])

    def per_sample(self) -> list[dict[str, Any]]:
        return [{self._key(k): v for k, v in row.items()} for row in self.inner.per_sample()]

    def extra(self) -> dict[str, Any]:
        return {**self.inner.extra(), "metric": self.family}
