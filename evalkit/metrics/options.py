"""Declared metric options: each scorer class lists what it accepts, and task files are checked against it.

A family declares `OPTIONS = {"average": Option(str, choices=(...)), ...}` next to its scorer. The
task loader checks every option of every metric when the file is read, so a typo (`postive:`), a
value of the wrong type (`use_stemmer: "false"`, a string, which Python counts as true) or one out
of range (`char_order: 3000000`) is one line naming the file and the field, before any model loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Option:
    """One option: its type, and optionally the allowed values or an inclusive range."""

    kind: type  # bool, int, float or str (a str option also takes an integer: a label such as 1)
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    help: str = ""

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable, or None."""
        if not self._type_ok(value):
            got = f"the string {value!r}" if isinstance(value, str) else f"{type(value).__name__} {value!r}"
            return f"must be {_TYPE_NAMES.get(self.kind, self.kind.__name__)}, got {got}"
        if self.choices and value not in self.choices:
            return f"unknown value {value!r} (use one of: {', '.join(map(str, self.choices))})"
        if self.kind in (int, float):
            if not math.isfinite(value):
                return f"must be a finite number, got {value!r}"
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                return f"must be {self._range()}, got {value!r}"
        return None

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f"between {_num(self.low)} and {_num(self.high)}"
        return f"at least {_num(self.low)}" if self.low is not None else f"at most {_num(self.high)}"

    def _type_ok(self, value: Any) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        if self.kind is float:
            return isinstance(value, (int, float))
        if self.kind is str:
            return isinstance(value, (str, int))
        return isinstance(value, self.kind)


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else str(x)


def option_problems(schema: Mapping[str, Option], options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(option, problem) for every unknown or invalid option, in the order given."""
    out = []
    for key, value in options.items():
        if key not in schema:
            allowed = ", ".join(sorted(schema)) or "none"
            out.append((key, f"unknown option (allowed: {allowed})"))
        elif (why := schema[key].problem(value)) is not None:
            out.append((key, why))
    return out


def describe(schema: Mapping[str, Option]) -> str:
    """A one-line summary for docs and `--help`: name (type: choices or range)."""
    parts = []
    for key, opt in schema.items():
        if opt.choices:
            detail = "|".join(map(str, opt.choices))
        elif opt.low is not None or opt.high is not None:
            detail = f"{_TYPE_NAMES[opt.kind]} {opt._range()}"
        else:
            detail = _TYPE_NAMES.get(opt.kind, opt.kind.__name__)
        parts.append(f"{key} ({detail})")
    return ", ".join(parts)
