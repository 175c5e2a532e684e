"""Any Hugging Face `evaluate` module as a task metric: `{evaluate: PATH_OR_ID, options: {...}}`.

PATH is a module script (`my_metric.py`) or a folder holding `<name>/<name>.py`, relative to the task
file; an id (`accuracy`, `org/metric`) is loaded from the hub, which needs a network. An evaluate
module is Python code, so it runs only with `--trust-remote-code`. `options` go to the module's
`compute()` and are checked against its signature before the model loads.

The module computes corpus values from all documents' predictions and references; its standard
errors come from the bootstrap over documents (the module recomputed on each resample). Each numeric
value it returns is reported: under the metric's name (`as:`, else the module's name) when there is
one, as `NAME.key` when there are several.
"""

from __future__ import annotations

import hashlib
import inspect
import numbers
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EvalkitError
from .base import Scorer
from .naming import METRIC_NAME


def module_base(module: str) -> str:
    """The module's own name: the file or folder name without `.py` (the last part of a hub id)."""
    name = module.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-3] if name.endswith(".py") else name


def looks_like_path(module: str) -> bool:
    """A script path (`x.py`, `./x`, `../x`, `/x`) rather than a hub id (`accuracy`, `org/metric`)."""
    return module.endswith(".py") or module.startswith((".", "/", "\\")) or os.path.isabs(module)


def local_module(module: str, base_dir: str | os.PathLike | None) -> Path | None:
    """The module script for a local PATH (relative to base_dir), or None when PATH names no file or folder."""
    try:
        path = Path(base_dir or ".") / module
        if path.is_file():
            return path.resolve()
        if path.is_dir() and (path / f"{path.name}.py").is_file():
            return (path / f"{path.name}.py").resolve()
    except (OSError, ValueError):  # a name too long, a NUL byte
        pass
    return None


@dataclass(frozen=True)
class LoadedModule:
    metric: Any  # an evaluate.EvaluationModule
    source: str  # the resolved script path, or the hub id
    sha256: str | None  # of the local script


@lru_cache(maxsize=32)
def _load(target: str, local: bool) -> LoadedModule:
    try:
        import evaluate
    except ImportError as err:
        raise EvalkitError(f"metric evaluate '{target}' needs the `evaluate` package: pip install evaluate ({err})") from None
    try:
        metric = evaluate.load(target)
    except Exception as err:  # noqa: BLE001 - the module's own code failed: the user's to fix
        raise EvalkitError(f"evaluate module '{target}' cannot be loaded: {type(err).__name__}: {err}") from None
    sha = hashlib.sha256(Path(target).read_bytes()).hexdigest() if local else None
    return LoadedModule(metric, target, sha)


def load_module(module: str, base_dir: str | os.PathLike | None, run_code: bool) -> LoadedModule:
    """The evaluate module (loaded once per process); every failure is one EvalkitError line."""
    if not run_code:
        raise EvalkitError(f"metric evaluate '{module}' runs the module's Python code: `evalkit run` does so only with "
                           "--trust-remote-code, and `compare`/`regress` never run code named by a results file")
    script = local_module(module, base_dir)
    if script is None and looks_like_path(module):
        raise EvalkitError(f"evaluate module '{module}' not found (looked for {Path(base_dir or '.') / module}); "
                           "give a path to a module script relative to the task file")
    if script is None:
        from ..hub import hub_reachable

        if not hub_reachable():
            raise EvalkitError(f"evaluate module '{module}' is not a local file next to the task, and the Hugging Face "
                               "hub cannot be reached to fetch it; save the module script beside the task file and "
                               "name its path (e.g. evaluate: my_metric.py)")
    return _load(str(script) if script else module, script is not None)


def compute_parameters(metric: Any) -> tuple[list[str], bool]:
    """The options a module's `_compute` takes (besides predictions and references), and whether it takes **kwargs."""
    params = inspect.signature(metric._compute).parameters.values()
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name not in ("self", "predictions", "references")]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def option_problem(metric: Any, options: dict[str, Any]) -> str | None:
    names, any_kwargs = compute_parameters(metric)
    unknown = [k for k in options if k not in names]
    if unknown and not any_kwargs:
        return f"unknown option '{unknown[0]}' for evaluate module '{metric.name}' (its compute() takes: {', '.join(names) or 'none'})"
    return None


def _feature_sets(metric: Any) -> list[Any]:
    features = metric.features
    return list(features) if isinstance(features, (list, tuple)) else [features]


def _inputs(metric: Any, records: list[dict[str, Any]], labels: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    """Predictions and references in the shape the module's features ask for."""
    sets = _feature_sets(metric)
    if not any("predictions" in f and "references" in f for f in sets):
        raise EvalkitError(f"evaluate module '{metric.name}' does not take predictions and references "
                           f"(its inputs: {', '.join(sets[0]) if sets else 'none'}); evalkit passes those two")
    first = next(f for f in sets if "predictions" in f and "references" in f)
    if "gold" in records[0]:  # multiple choice: label names, or their indices for an integer feature
        as_index = str(getattr(first["predictions"], "dtype", "")).startswith("int")
        index = {name: i for i, name in enumerate(labels)}
        conv = (lambda label: index[label]) if as_index else (lambda label: label)
        return [conv(r["prediction"]) for r in records], [conv(r["gold"]) for r in records]
    many = any(type(f["references"]).__name__ in ("Sequence", "List", "LargeList") for f in sets if "references" in f)
    refs = [list(r["references"]) if many else r["references"][0] for r in records]
    return [r["prediction"] for r in records], refs


def _numbers(result: Any, name: str) -> dict[str, float]:
    if not isinstance(result, dict):
        raise EvalkitError(f"evaluate module '{name}' returned {type(result).__name__}, not a dict of values")
    out = {k: float(v) for k, v in result.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
    if not out:
        raise EvalkitError(f"evaluate module '{name}' returned no numeric value (keys: {', '.join(map(str, result))})")
    return out


class EvaluateMetric(Scorer):
    kinds = ("multiple_choice", "generate")
    OPTIONS = None  # any: checked against the module's compute() when it is loaded

    def __init__(self, records, options, labels=(), *, module: str = "", alias: str | None = None,
                 base_dir: str | None = None, run_code: bool = False, higher_is_better: bool = True):
        super().__init__(records, options, labels)
        self.loaded = load_module(module, base_dir, run_code)
        metric = self.loaded.metric
        if (problem := option_problem(metric, options)) is not None:
            raise EvalkitError(problem)
        self.module, self.higher_is_better = module, higher_is_better
        self.predictions, self.references = _inputs(metric, records, labels)
        try:
            values = _numbers(metric.compute(predictions=self.predictions, references=self.references, **options), metric.name)
            direct = _numbers(metric._compute(predictions=self.predictions, references=self.references, **options), metric.name)
        except EvalkitError:
            raise
        except Exception as err:  # noqa: BLE001 - the module's code failed on these inputs
            raise EvalkitError(f"evaluate module '{metric.name}' failed: {type(err).__name__}: {err}") from None
        base = alias or module_base(module)
        if not METRIC_NAME.fullmatch(base):
            raise EvalkitError(f"evaluate module '{module}': '{base}' is not a metric name; name it with `as:`")
        self.keys = list(values)
        self.names = (base,) if len(self.keys) == 1 else tuple(f"{base}.{k}" for k in self.keys)
        self._point = {n: values[k] for n, k in zip(self.names, self.keys)}
        # resamples call the module's _compute directly (compute() round-trips every call through an Arrow
        # file, ~20 ms); used only when it gives compute()'s values on all documents
        self.direct = direct.keys() == values.keys() and all(np.isclose(direct[k], values[k], rtol=0, atol=1e-12) for k in values)

    def point(self):
        return dict(self._point)

    def score(self, idx):
        preds = [self.predictions[i] for i in idx]
        refs = [self.references[i] for i in idx]
        fn = self.loaded.metric._compute if self.direct else self.loaded.metric.compute
        try:
            values = _numbers(fn(predictions=preds, references=refs, **self.options), self.loaded.metric.name)
        except EvalkitError:
            raise
        except Exception as err:  # noqa: BLE001 - the module's code failed on a resample of the documents
            raise EvalkitError(f"evaluate module '{self.loaded.metric.name}' failed on a bootstrap resample: "
                               f"{type(err).__name__}: {err}") from None
        return {n: values.get(k, float("nan")) for n, k in zip(self.names, self.keys)}

    def extra(self):
        import evaluate

        return {"evaluate_module": self.module, "module_source": self.loaded.source, "module_sha256": self.loaded.sha256,
                "evaluate_version": evaluate.__version__, "resamples_via": "_compute" if self.direct else "compute"}
