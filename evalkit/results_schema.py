"""The schema of results.json, checked whenever a results file is read (leaderboard, report, compare, regress).

Result folders come from other people, so a file is validated (JSON Schema, with the `jsonschema`
library) before any reader looks inside: wrong types, lists where objects belong, numbers of
hundreds of digits, a `created` that is not a time, task names that are not task names (the rule
`run` uses: they name files), nesting deeper than any evalkit file has. NaN and infinities are
allowed where numbers are (evalkit itself writes NaN for an undefined standard error). A bad file
is one line naming the file and the field; `leaderboard` and `report` skip it with a warning,
`compare` and `regress` refuse it.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from .errors import EvalkitError

MAX_DEPTH = 64  # evalkit's own files nest about 8 deep
MAX_DIGITS = 300  # an integer longer than this cannot become a float
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"

_NUMBER = {"type": ["number", "null"]}
_COUNT = {"type": ["integer", "null"], "minimum": 0}
_TEXT = {"type": ["string", "null"], "maxLength": 100_000}
_METRIC = {
    "type": "object",
    "required": ["value"],
    "properties": {"value": _NUMBER, "stderr": _NUMBER, "higher_is_better": {"type": ["boolean", "null"]},
                   "scale": _TEXT, "stderr_method": _TEXT},
}
_TASK_RESULT = {
    "type": "object",
    "required": ["n", "metrics"],
    "properties": {
        "n": {"type": "integer", "minimum": 0},
        "metrics": {"type": "object", "propertyNames": {"maxLength": 200, "pattern": _NO_CONTROL},
                    "additionalProperties": _METRIC},
        "doc_ids": {"type": "array"},
        "seconds": _NUMBER,
        "throughput": {"type": ["object", "null"], "properties": {"requests_per_s": _NUMBER, "tokens_per_s": _NUMBER}},
        "truncated_inputs": _COUNT,
        "nonfinite_loglikelihoods": _COUNT,
        "cache": {"type": ["object", "null"]},
        "samples_file": _TEXT,
    },
}
_TASK_SPEC = {
    "type": "object",
    "required": ["kind", "metrics"],
    "properties": {
        "task": {"type": "string"},
        "kind": {"type": "string"},
        "metrics": {"type": "array", "items": {"type": "object", "required": ["name"],
                                               "properties": {"name": {"type": "string"}, "options": {"type": "object"}}}},
        "choices": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "array", "items": {"type": "string"}},
        "fewshot": {"type": ["object", "null"], "properties": {"k": _COUNT}},
    },
}


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    from .tasks.loader import TASK_NAME

    task_names = {"pattern": f"^{TASK_NAME.pattern}$"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["run_id", "tasks", "config"],
        "properties": {
            "schema_version": {"type": "integer"},
            "run_id": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00-\x1f\x7f-\x9f/\\]+$"},
            "created": {"type": ["string", "null"], "format": "evalkit-time"},
            "command": _TEXT,
            "model": {"type": ["object", "null"], "properties": {
                key: _TEXT for key in ("spec", "source", "location", "sha256", "revision", "dtype", "device")}},
            "config": {
                "type": "object",
                "required": ["tasks"],
                "properties": {
                    "limit": _COUNT, "fewshot": _COUNT, "seed": _COUNT, "bootstrap_iters": _COUNT, "data_dir": _TEXT,
                    "batch_size": {"type": ["string", "integer", "null"]},
                    "tasks": {"type": "object", "propertyNames": task_names, "additionalProperties": {
                        "type": "object",
                        "properties": {"hash": {"type": "string", "maxLength": 128}, "version": {"type": ["string", "number"]},
                                       "spec": _TASK_SPEC},
                    }},
                },
            },
            "versions": {"type": ["object", "null"]},
            "tasks": {"type": "object", "propertyNames": task_names, "additionalProperties": _TASK_RESULT},
            "run": {"type": ["object", "null"]},
        },
    }


def _is_time(value: Any) -> bool:
    """What leaderboard and report do with `created`: pandas ISO 8601, as UTC."""
    if not isinstance(value, str):
        return True
    import pandas as pd

    try:
        pd.to_datetime(value, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return False
    return True


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "number", lambda _c, v: isinstance(v, float) or (_is_int(v) and len(str(abs(v))) <= MAX_DIGITS)).redefine(
        "integer", lambda _c, v: _is_int(v) and abs(v) < 2**63)
    formats = jsonschema.FormatChecker(formats=())
    formats.checks("evalkit-time")(_is_time)
    cls = jsonschema.validators.extend(base, type_checker=checker)
    return cls(_schema(), format_checker=formats)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _too_deep(value: Any) -> bool:
    """True when JSON containers nest deeper than MAX_DEPTH (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def check_results(data: Any, where: str) -> dict[str, Any]:
    """`data` if it is a valid results.json; else one EvalkitError line naming `where` and the field."""
    if not isinstance(data, dict) or "tasks" not in data or "run_id" not in data:
        raise EvalkitError(f"{where} is not an evalkit results file (no run_id/tasks)")
    if _too_deep(data):
        raise EvalkitError(f"{where}: nested more than {MAX_DEPTH} levels deep; not an evalkit results file")
    check_unicode(data, where)
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        field = ".".join(str(p) for p in error.absolute_path) or "<top>"
        raise EvalkitError(f"{where}: field '{field[:200]}': {_short(error)}; the file is damaged or not from evalkit")
    return data


def _short(error) -> str:
    """What is wrong, without echoing a huge or hostile value in full."""
    value = repr(error.instance)
    value = value if len(value) <= 60 else value[:57] + "..."  # repr() shows control characters as escapes
    rule, wanted = error.validator, error.validator_value
    if rule == "type":
        return f"must be {' or '.join(wanted) if isinstance(wanted, list) else wanted}, got {value}"
    if rule == "pattern":
        return f"{value} is not a plain name (letters, digits, '.', '_', '-'; no control characters)"
    if rule == "format":
        return f"{value} is not an ISO 8601 time"
    if rule in ("maxLength", "minLength"):
        return f"{value} has {'more' if rule == 'maxLength' else 'fewer'} than {wanted} characters"
    if rule in ("minimum", "maximum"):
        return f"must be {'>=' if rule == 'minimum' else '<='} {wanted}, got {value}"
    return error.message[:200].encode("unicode_escape").decode("ascii")


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB]")


def check_unicode(data: Any, where: str, raw: str | None = None) -> None:
    """Refuse text that cannot be written as UTF-8: a lone surrogate from a JSON escape such as \\ud800."""
    if raw is not None and not _SURROGATE_ESCAPE.search(raw):
        return
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise EvalkitError(f"{where}: holds text that is not valid Unicode (a lone surrogate escape such as "
                           "\\ud800); the file is damaged or not from evalkit") from None


SAMPLE_CONTAINERS = {"scores": dict, "references": list, "loglikelihoods": list, "choices": list, "is_greedy": list}


def check_sample(row: Any, where: str, raw: str | None = None) -> dict[str, Any]:
    """One samples line: a JSON object whose container fields (scores, references, ...) have their types."""
    if not isinstance(row, dict):
        raise EvalkitError(f"{where}: a sample line must be a JSON object, got {type(row).__name__}")
    check_unicode(row, where, raw)
    for key, kind in SAMPLE_CONTAINERS.items():
        if key in row and not isinstance(row[key], kind):
            raise EvalkitError(f"{where}: field '{key}' must be a JSON {'object' if kind is dict else 'list'}, "
                               f"got {type(row[key]).__name__}; the samples file is damaged or not from evalkit")
    return row
