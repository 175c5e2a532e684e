"""Declared model arguments: one table per adapter class, checked in one place before any model loads.

An adapter class lists the `--model-arg` names it takes:

    class MyAdapter(Adapter):
        model_args = {
            "max_length": ModelArg(int, "context length in tokens", min=1, max=MAX_CONTEXT),
            "kv_cache": ModelArg(str, "key-value cache", choices=("auto", "static", "dynamic")),
        }

`check_model_args(cls, args)` converts the command line's strings to the declared types, checks
ranges and choices, and refuses unknown names and names that are run flags (`--device`, ...), each
with one line. The engine calls it before the task data and the model load; an adapter calls it in
`__init__` too, so a direct Python construction gets the same checks. An adapter class without a
table (`model_args = None`, e.g. an older third-party one) gets its arguments as given, with
digit-only strings turned into integers (the behaviour before tables existed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import EvalkitError

MAX_CONTEXT = 1 << 22  # 4M tokens: larger than any released model's context, small enough to catch a typo
RUN_FLAGS = {"model": "--model", "dtype": "--dtype", "device": "--device", "batch_size": "--batch-size",
             "trust_remote_code": "--trust-remote-code"}
_INT = re.compile(r"[+-]?\d{1,30}")
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


@dataclass(frozen=True)
class ModelArg:
    """One model argument: its type (int, float, bool or str), what it does, and its allowed values."""

    type: type
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def convert(self, name: str, value: Any, adapter: str) -> Any:
        """`value` (a command-line string or a Python value) as the declared type; None stays None (the default)."""
        if value is None:
            return None
        where = f"{adapter}: model argument {name}"
        kind = self.type.__name__
        if isinstance(value, str) and self.type is not str:
            value = self._parse(value.strip(), where, kind)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.type) or (self.type is not bool and isinstance(value, bool)):
            raise EvalkitError(f"{where} must be {_article(kind)}, got {value!r}")
        if self.type is float and not math.isfinite(value):
            raise EvalkitError(f"{where} must be a finite number, got {value!r}")
        if self.min is not None and value < self.min:
            raise EvalkitError(f"{where} must be >= {_number(self.min)}, got {value!r}{_hint(self)}")
        if self.max is not None and value > self.max:
            raise EvalkitError(f"{where} must be <= {_number(self.max)}, got {value!r}{_hint(self)}")
        if self.choices and value not in self.choices:
            raise EvalkitError(f"{where} must be one of {', '.join(self.choices)}, got {value!r}")
        return value

    def _parse(self, text: str, where: str, kind: str) -> Any:
        if self.type is int and _INT.fullmatch(text):
            return int(text)
        if self.type is float:
            try:
                return float(text)
            except ValueError:
                pass
        if self.type is bool and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise EvalkitError(f"{where} must be {_article(kind)}, got '{text}'")


def _article(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(kind, kind)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _hint(arg: ModelArg) -> str:
    return f" ({arg.help})" if arg.help else ""


def check_model_args(adapter_cls: type, args: Mapping[str, Any]) -> dict[str, Any]:
    """`args` converted to the types `adapter_cls.model_args` declares; one EvalkitError line per problem."""
    name = getattr(adapter_cls, "name", adapter_cls.__name__)
    for key in args:
        if key in RUN_FLAGS:
            raise EvalkitError(f"{name}: '{key}' is not a model argument; use {RUN_FLAGS[key]} instead")
    declared: Mapping[str, ModelArg] | None = getattr(adapter_cls, "model_args", None)
    if declared is None:
        return {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in args.items()}
    unknown = sorted(set(args) - set(declared))
    if unknown:
        known = ", ".join(f"{k} ({a.help})" if a.help else k for k, a in declared.items()) or "none"
        raise EvalkitError(f"{name}: unknown model argument(s) {', '.join(unknown)} (known: {known})")
    return {key: declared[key].convert(key, value, name) for key, value in args.items()}

