"""Metrics: a per-sample part (statistics logged per document) and a corpus part (recomputed from them).

Each family lives in its own module and is imported only when a task names it; a family module keeps
its heavy imports (sklearn, sacrebleu, rouge-score, evaluate) inside methods, so reading a task file
costs no metric library. A scorer's `score(idx)` recomputes the corpus metric on any (re)sample of
documents, which is what both the bootstrap standard error and `evalkit compare`'s paired bootstrap need.

Lookup is lazy and typed, like the adapters': the built-in families below, then the entry-point group
`evalkit.metrics` (NAME = "package.module:ScorerSubclass"), read when a name is looked up. Nothing
is registered as a side effect of an import.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Mapping

from ..errors import EvalkitError
from .base import MetricValue, SampleCorpusMetric, Scorer, bootstrap_stderr, summarize
from .naming import METRIC_NAME, Renamed
from .options import Option

GROUP = "evalkit.metrics"
EVALUATE = "evaluate"  # the family that runs a Hugging Face `evaluate` module: {evaluate: PATH_OR_ID}
_BUILTIN = {
    "accuracy": "evalkit.metrics.classification:Accuracy",
    "acc_norm": "evalkit.metrics.classification:AccNorm",
    "acc_bytes": "evalkit.metrics.classification:AccBytes",
    "f1": "evalkit.metrics.classification:F1",
    "exact_match": "evalkit.metrics.classification:ExactMatch",
    "squad_exact_match": "evalkit.metrics.qa:SquadExactMatch",
    "squad_f1": "evalkit.metrics.qa:SquadF1",
    "bleu": "evalkit.metrics.translation:Bleu",
    "chrf": "evalkit.metrics.translation:Chrf",
    "ter": "evalkit.metrics.translation:Ter",
    "rouge": "evalkit.metrics.summarization:Rouge",
    "perplexity": "evalkit.metrics.perplexity:Perplexity",
    EVALUATE: "evalkit.metrics.evaluate_bridge:EvaluateMetric",
}


def metric_targets() -> dict[str, str]:
    """Built-in families, then third-party ones; a plugin cannot replace a built-in name."""
    found = {ep.name: ep.value for ep in entry_points(group=GROUP) if ep.name not in _BUILTIN}
    return {**_BUILTIN, **found}


def metric_class(name: str) -> type[Scorer]:
    """The scorer class of family `name` (imports its module, not its metric library)."""
    targets = metric_targets()
    if name not in targets:
        raise EvalkitError(f"unknown metric '{name}' (known: {', '.join(sorted(targets))}); "
                           f"third-party metrics register in the entry-point group '{GROUP}'")
    module, _, attr = targets[name].partition(":")
    try:
        cls = getattr(import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise EvalkitError(f"metric '{name}' ({targets[name]}) cannot be imported: {err}; install its package") from None
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise EvalkitError(f"metric '{name}' ({targets[name]}) is not an evalkit.metrics.Scorer subclass")
    if name != EVALUATE and not (cls.names and all(isinstance(n, str) and METRIC_NAME.fullmatch(n) for n in cls.names)):
        raise EvalkitError(f"metric '{name}' ({targets[name]}) must declare `names`: a tuple of metric names "
                           "(letters, digits, '_' and '-')")
    return cls


def metric_names(kind: str | None = None) -> list[str]:
    """Names of the families that apply to task kind `kind` (all when None); imports each family's module."""
    out = []
    for name in metric_targets():
        try:
            cls = metric_class(name)
        except EvalkitError:
            continue  # a broken plugin is reported when a task names it
        if kind is None or kind in cls.kinds:
            out.append(name)
    return sorted(out)


def build_scorer(name: str, options: Mapping[str, Any], records: list[dict[str, Any]],
                 labels: tuple[str, ...] = ()) -> Scorer:
    """The scorer of metric family `name` over logged sample records (no alias)."""
    return metric_class(name)(records, options=dict(options), labels=labels)


def build_metric(metric: Any, records: list[dict[str, Any]], labels: tuple[str, ...] = (), *,
                 run_code: bool = False) -> Scorer:
    """The scorer of one task metric (a MetricSpec, or its dict as recorded in results.json), under its
    reported name. An `evaluate` module is Python code: it runs only with `run_code` (--trust-remote-code)."""
    spec = metric.to_dict() if hasattr(metric, "to_dict") else dict(metric)
    name, options, alias = spec["name"], spec.get("options") or {}, spec.get("as")
    if name == EVALUATE:
        from .evaluate_bridge import EvaluateMetric

        return EvaluateMetric(records, options=dict(options), labels=labels, module=str(spec.get(EVALUATE) or ""),
                              alias=alias, base_dir=getattr(metric, "base_dir", None) or None, run_code=run_code,
                              higher_is_better=spec.get("higher_is_better", True) is not False)
    scorer = build_scorer(name, options, records, labels)
    return Renamed(scorer, alias, name) if alias else scorer


def prepare_metrics(spec: Any, run_code: bool) -> None:
    """prepare_metric for each metric of a task; errors name the task file and the metric's field."""
    for i, metric in enumerate(spec.metrics):
        try:
            prepare_metric(metric, run_code)
        except EvalkitError as err:
            raise EvalkitError(f"{spec.source_file or spec.task}: field 'metrics[{i}]': {err}") from None


def prepare_metric(metric: Any, run_code: bool) -> None:
    """Checks that need the metric's code, run before the model loads: an evaluate module is loaded
    (once per process) and its options are checked against its compute()."""
    if metric.name != EVALUATE:
        return
    from .evaluate_bridge import load_module, option_problem

    loaded = load_module(metric.module or "", metric.base_dir or None, run_code)
    if (problem := option_problem(loaded.metric, metric.options)) is not None:
        raise EvalkitError(problem)


__all__ = ["GROUP", "MetricValue", "Option", "SampleCorpusMetric", "Scorer", "bootstrap_stderr", "build_metric",
           "build_scorer", "metric_class", "metric_names", "metric_targets", "prepare_metric", "prepare_metrics", "summarize"]
