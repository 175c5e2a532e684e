"""The scorer protocol, and standard errors: closed form where one exists, else a seeded bootstrap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np

from ..errors import EvalkitError
from .options import Option

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

    Subclasses set `names` (the values they report), `kinds` (the task kinds they apply to),
    `OPTIONS` (the options a task file may set), `higher_is_better` and `scale`, compute their
    statistics in `__init__`, and implement `score(idx)`: the corpus value(s) on documents `idx`
    (repeats allowed). Third-party metrics subclass this (or `SampleCorpusMetric`) and register in
    the entry-point group `evalkit.metrics`. Keep heavy imports inside methods: the task loader
    imports the class to check options.
    """

    names: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()  # task kinds: multiple_choice, generate, perplexity
    OPTIONS: ClassVar[Mapping[str, Option] | None] = {}  # None: any options (checked when the metric is built)
    binary_outcomes: tuple[str, ...] = ()  # names whose per-sample score is a 0/1 outcome per document (McNemar in compare)
    higher_is_better: bool = True
    scale: str = "0-1"

    @classmethod
    def check_options(cls, options: Mapping[str, Any], labels: tuple[str, ...]) -> str | None:
        """A problem with the options given the task's labels (after each option passed its own check), or None."""
        return None

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


class SampleCorpusMetric(Scorer):
    """The per-sample / corpus split: `sample(record)` gives one document's statistics, `corpus(table)`
    the corpus value(s) from the statistics of any (re)sample of documents.

    By default `statistics` are the `names` and the corpus value is their mean over documents, with a
    closed-form standard error. Override `corpus` for anything else (the bootstrap then gives the error).
    """

    statistics: tuple[str, ...] = ()  # default: names

    def __init__(self, records, options, labels=()):
        super().__init__(records, options, labels)
        self.stat_names = self.statistics or self.names
        rows = []
        for r in records:
            stats = self.sample(r)
            rows.append([float(stats[k]) for k in self.stat_names])
        self.table = np.array(rows, dtype=np.float64).reshape(self.n, len(self.stat_names))

    def sample(self, record: dict[str, Any]) -> Mapping[str, float]:
        raise NotImplementedError

    def corpus(self, table: np.ndarray) -> dict[str, float]:
        means = table.mean(axis=0)
        return {name: float(means[self.stat_names.index(name)]) for name in self.names}

    def score(self, idx):
        return self.corpus(self.table[idx])

    def closed_form_stderr(self):
        if type(self).corpus is not SampleCorpusMetric.corpus:
            return None
        return {name: mean_stderr(self.table[:, self.stat_names.index(name)]) for name in self.names}

    def per_sample(self):
        return [{k: float(v) for k, v in zip(self.stat_names, row)} for row in self.table]


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
