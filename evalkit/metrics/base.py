"""The scorer protocol, and standard errors: closed form where one exists, else a seeded bootstrap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EvalkitError

DEFAULT_BOOTSTRAP = 1000


@dataclass
class MetricValue:
    value: float
    stderr: float
    higher_is_better: bool
    scale: str
    stderr_method: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"value": self.value, "stderr": self.stderr, "higher_is_better": self.higher_is_better,
               "scale": self.scale, "stderr_method": self.stderr_method}
        out.update(self.extra)
        return out


class Scorer:
    """Per-sample statistics of one metric family over n documents.

    Subclasses set `names`, `higher_is_better` and `scale`, compute their statistics in
    `__init__`, and implement `score(idx)`: the corpus value(s) on documents `idx` (repeats allowed).
    """

    names: tuple[str, ...] = ()
    higher_is_better: bool = True
    scale: str = "0-1"

    def __init__(self, records: list[dict[str, Any]], options: dict[str, Any], labels: tuple[str, ...] = ()):
        if not records:
            raise EvalkitError("cannot score an empty set of samples")
        self.n = len(records)
        self.options = options
        self.labels = labels

    def score(self, idx: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def point(self) -> dict[str, float]:
        """The reported value(s) on all documents; a family may compute them with its reference library."""
        return self.score(np.arange(self.n))

    def closed_form_stderr(self) -> dict[str, float] | None:
        """Standard errors without resampling, where the metric is a plain mean; None otherwise."""
        return None

    def higher_is_better_for(self, name: str) -> bool:
        return self.higher_is_better

    def per_sample(self) -> list[dict[str, Any]]:
        """Per-document scores to write into the samples file."""
        return [{} for _ in range(self.n)]

    def extra(self) -> dict[str, Any]:
        """Facts to record beside the value: signatures, averaging, positive label."""
        return {}


def mean_stderr(x: np.ndarray) -> float:
    """Standard error of a mean (sample std, ddof=1), as lm-eval reports it."""
    return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def bootstrap_stderr(scorer: Scorer, iterations: int = DEFAULT_BOOTSTRAP, seed: int = 1234) -> dict[str, float]:
    """Seeded bootstrap over documents: resample n docs with replacement, recompute the corpus metric."""
    if scorer.n < 2:
        return {name: float("nan") for name in scorer.names}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in scorer.names}
    for _ in range(iterations):
        for name, value in scorer.score(rng.integers(0, scorer.n, scorer.n)).items():
            draws[name].append(value)
    return {name: float(np.std(values, ddof=1)) for name, values in draws.items()}


def summarize(scorer: Scorer, bootstrap_iters: int = DEFAULT_BOOTSTRAP, seed: int = 1234) -> dict[str, MetricValue]:
    values = scorer.point()
    closed = scorer.closed_form_stderr()
    if closed is not None:
        stderr, method = closed, "closed_form"
    elif bootstrap_iters > 0:
        stderr, method = bootstrap_stderr(scorer, bootstrap_iters, seed), f"bootstrap({bootstrap_iters}, seed={seed})"
    else:
        stderr, method = {n: float("nan") for n in scorer.names}, "none"
    extra = scorer.extra()
    return {
        name: MetricValue(float(values[name]), float(stderr[name]), scorer.higher_is_better_for(name),
                          scorer.scale, method, dict(extra))
        for name in scorer.names
    }
