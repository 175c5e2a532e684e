"""A classifier's own labels (config.id2label) matched to a task's labels.

Names match case-insensitively (`POSITIVE` is the task's `positive`), or through `label_map`
(model label -> task label, also case-insensitive), which takes precedence. A sequence classifier
needs, for each task label it is asked about, exactly one model label that maps to it. A token
classifier needs every model label to map to a task tag: each is a tag it may predict. A label that
maps to nothing is one line listing both label sets.

The map comes as a mapping (Python API, or YAML `{POSITIVE: positive}` on the command line), or as
the command line's short form `POSITIVE:positive,NEGATIVE:negative`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ...errors import EvalkitError

_FORM = "label_map takes MODEL_LABEL:task_label pairs, e.g. label_map=POSITIVE:positive,NEGATIVE:negative"


def parse_label_map(value: Any) -> dict[str, str]:
    """A {model label: task label} mapping from a mapping, a YAML mapping or the `A:a,B:b` form; {} for none."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError:
                raise EvalkitError(f"{_FORM} (or a YAML mapping); got {text!r}") from None
        else:
            value = [_pair(item, text) for item in text.split(",")]
    if isinstance(value, Mapping):
        value = list(value.items())
    if not isinstance(value, list):
        raise EvalkitError(f"{_FORM}; got {value!r}")
    out: dict[str, str] = {}
    for key, target in value:
        if not isinstance(key, (str, int)) or not isinstance(target, (str, int)) or not str(key).strip() or not str(target).strip():
            raise EvalkitError(f"{_FORM}; got the pair {key!r}: {target!r}")
        if str(key).strip().lower() in (k.lower() for k in out):
            raise EvalkitError(f"label_map names the model label '{key}' twice")
        out[str(key).strip()] = str(target).strip()
    return out


def _pair(item: str, whole: str) -> tuple[str, str]:
    key, sep, target = item.partition(":")
    if not sep or not key.strip() or not target.strip() or ":" in target:
        raise EvalkitError(f"{_FORM}; got {whole!r}")
    return key.strip(), target.strip()


def _folded(name: str) -> str:
    return name.strip().lower()


def _refuse(adapter: str, problem: str, model_labels: list[str], task_labels: list[str]) -> EvalkitError:
    return EvalkitError(f"{adapter}: {problem} (model labels: {', '.join(model_labels)}; task labels: "
                        f"{', '.join(task_labels)}); match them with --model-arg label_map=MODEL_LABEL:task_label,...")


def classifier_label_index(adapter: str, model_labels: list[str], task_label: str, label_map: Mapping[str, str],
                           task_labels: list[str] | None = None) -> int:
    """The index of the one model label that maps to `task_label` (through label_map, else by name)."""
    if label_map:
        hits = [i for i, m in enumerate(model_labels)
                if any(_folded(k) == _folded(m) and _folded(v) == _folded(task_label) for k, v in label_map.items())]
        unknown = [k for k in label_map if _folded(k) not in {_folded(m) for m in model_labels}]
        if unknown:
            raise _refuse(adapter, f"label_map names {', '.join(unknown)}, not a model label", model_labels,
                          task_labels or [task_label])
    else:
        hits = [i for i, m in enumerate(model_labels) if _folded(m) == _folded(task_label)]
    if len(hits) != 1:
        problem = (f"the task label '{task_label}' maps to no model label" if not hits else
                   f"the task label '{task_label}' maps to several model labels ({', '.join(model_labels[i] for i in hits)})")
        raise _refuse(adapter, problem, model_labels, task_labels or [task_label])
    return hits[0]


def tag_mapping(adapter: str, model_labels: list[str], task_labels: list[str], label_map: Mapping[str, str]) -> list[int]:
    """For each model label, the index of the task tag it names (label_map first, else the same name).

    Every model label must map: each one is a tag the model can predict."""
    targets = {_folded(k): v for k, v in label_map.items()}
    unknown = [k for k in label_map if _folded(k) not in {_folded(m) for m in model_labels}]
    if unknown:
        raise _refuse(adapter, f"label_map names {', '.join(unknown)}, not a model label", model_labels, task_labels)
    folded_tasks = [_folded(t) for t in task_labels]
    out, unmapped = [], []
    for m in model_labels:
        target = _folded(targets.get(_folded(m), m))
        if target not in folded_tasks:
            unmapped.append(m)
        else:
            out.append(folded_tasks.index(target))
    if unmapped:
        raise _refuse(adapter, f"model label(s) {', '.join(unmapped)} map to no task label", model_labels, task_labels)
    return out
