"""Jinja2 prompt rendering in a sandbox with StrictUndefined.

A template cannot reach Python internals (`__class__`, `os`, ...) or change a list or mapping, and a
field the document lacks is an error that names the field, not an empty string. A runaway template
is refused per document: its output and every value it builds are capped in size, and it must finish
in a few seconds (see `_BoundedSandbox`).

Values that are not strings render like this: a list or mapping as JSON (`["a", "b"]`, `{"k": 1}`),
anything else as Python's str() writes it (`3`, `0.5`, `True`, `None`).
"""

from __future__ import annotations

import functools
import json
import math
import re
import string
import threading
import time
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from ..errors import EvalkitError


def wikitext_detokenize(text: str) -> str:
    """lm-eval's `wikitext_detokenizer`, so that perplexities are comparable with lm-eval's."""
    s = text.replace("s '", "s'")
    s = re.sub(r"/' [0-9]/", r"/'[0-9]/", s)
    for a, b in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" : ", ": "), (" ; ", "; "),
                 (" . ", ". "), (" ! ", "! "), (" ? ", "? "), (" , ", ", ")):
        s = s.replace(a, b)
    s = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", s)
    s = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", s)
    s = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", s)
    s = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', s)
    s = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", s)
    for a, b in (("= = = =", "===="), ("= = =", "==="), ("= =", "=="), (" " + chr(176) + " ", chr(176)),
                 (" \n", "\n"), ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s")):
        s = s.replace(a, b)
    return s


def _clean_html(text: str) -> str:
    return re.sub(r"<br\s*/?>", " ", text)


MAX_RESULT_LEN = 1_000_000  # characters a template may add beyond the document's own text
MAX_RENDER_SECONDS = 2.0  # per document, plus one second per 2M characters of the document's own text
_CHARS_PER_SECOND = 2_000_000
_AMPLIFYING_FILTERS = ("center", "indent", "slice")  # an integer argument sets the size of what they build
_LOOP_GUARD, _SIZE_GUARD = "_evalkit_loop", "_evalkit_sized"


class _Budget(threading.local):
    """Limits of the render in progress: the size any value may reach, and the time it must end by."""

    limit = MAX_RESULT_LEN
    deadline = math.inf


_budget = _Budget()


def _refuse(problem: str) -> None:
    raise jinja2.exceptions.SecurityError(problem)


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > _budget.limit:
        _refuse(f"the template built a value of {len(value):,} characters or items, more than the {_budget.limit:,} "
                "allowed for this document")
    return value


def _check_time() -> None:
    if time.monotonic() > _budget.deadline:
        _refuse("rendering one document took too long (a runaway loop?)")


def _check_int_args(what: str, args: Any) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > _budget.limit:
            _refuse(f"{what} with {arg:,} would build a value longer than the {_budget.limit:,} characters allowed")


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_format(fmt: str, args: tuple, kwargs: dict, style: str) -> None:
    """Refuse a format string whose width or precision (literal, or taken from an argument) is runaway."""
    numbers: list[str] = []
    if style == "%":
        for width, precision in _PERCENT_SPEC.findall(fmt):
            numbers += [width, precision]
    else:
        try:
            parsed = list(string.Formatter().parse(fmt))
        except ValueError:
            return  # str.format will raise its own error
        for _, _, spec, _ in parsed:
            numbers += re.findall(r"\d+|\{", spec or "")
    if "*" in numbers or "{" in numbers:  # the width comes from the arguments
        values = args if isinstance(args, tuple) else (args,)
        _check_int_args("a format width", [*values, *kwargs.values()])
    for number in numbers:
        if number.isdigit() and int(number) > _budget.limit:
            _refuse(f"a format width or precision of {int(number):,} is larger than the {_budget.limit:,} characters allowed")


def _bounded_filter(name: str, fn):
    @functools.wraps(fn)  # keeps jinja's pass_context / pass_environment marker
    def bounded(*args, **kwargs):
        if name in _AMPLIFYING_FILTERS:
            _check_int_args(f"the filter {name}", [*args, *kwargs.values()])
        if name == "format" and len(args) > 0:
            _check_format(str(args[0]), args[1:], kwargs, "%")
        return _check_size(fn(*args, **kwargs))

    return bounded


def _loop_guard(iterable: Any):
    """Wraps the iterable of every `{% for %}`: the render-time limit holds inside loops that call nothing."""
    for i, item in enumerate(iterable):
        if not i & 255:
            _check_time()
        yield item


class _GuardLoops(NodeTransformer):
    """Template AST rewrite: every for-loop iterates through _loop_guard, every `~` result is size-checked."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name(_LOOP_GUARD, "load"), [node.iter], [], None, None).set_lineno(node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return nodes.Call(nodes.Name(_SIZE_GUARD, "load"), [node], [], None, None).set_lineno(node.lineno)


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on what a template builds and how long it renders.

    `{{ 'x' * 10**10 }}`, `{{ 9**9**9 }}`, `'x'.center(300000000)`, `'%999999999s'|format(x)`, a
    `namespace` string doubled in a loop, or nested `range(100000)` loops fail with one line instead
    of eating the machine: sizes are checked before and after each operator, call and filter, and
    every loop checks the clock.
    """

    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def _parse(self, source, name, filename):
        return _GuardLoops().visit(super()._parse(source, name, filename))

    def call_binop(self, context, operator, left, right):
        _check_time()
        if (operator == "**" and isinstance(right, (int, float)) and isinstance(left, (int, float)) and abs(left) > 1
                and abs(right) * math.log10(abs(left)) > 1000):
            _refuse(f"the power {left!r} ** {right!r} is too large for a template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > _budget.limit:
                    _refuse(f"repeating a sequence {times} times makes it longer than {_budget.limit:,}")
        if operator == "%" and isinstance(left, str):
            _check_format(left, right if isinstance(right, tuple) else (right,), right if isinstance(right, dict) else {}, "%")
        return _check_size(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value):
        """jinja's sandboxed str.format / format_map, with the format's widths checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args, **kwargs):
            mapping = args[0] if value.__name__ == "format_map" and args and isinstance(args[0], dict) else {}
            _check_format(fmt, args, {**kwargs, **mapping}, "{")
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's own signature
        _check_time()
        if isinstance(getattr(__obj, "__self__", None), str):  # str.center(300000000) and the like
            _check_int_args(f"str.{getattr(__obj, '__name__', 'method')}", [*args, *kwargs.values()])
        return _check_size(super().call(__context, __obj, *args, **kwargs))


def _finalize(value: Any) -> Any:
    """How a `{{ value }}` that is not a string renders: lists and mappings as JSON, the rest as str() does."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


@lru_cache(maxsize=1)
def _env() -> SandboxedEnvironment:
    env = _BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                          finalize=_finalize)
    env.filters["wikitext_detokenize"] = wikitext_detokenize
    env.filters["clean_html"] = _clean_html
    for name, fn in list(env.filters.items()):
        env.filters[name] = _bounded_filter(name, fn)
    env.globals[_LOOP_GUARD] = _loop_guard
    env.globals[_SIZE_GUARD] = _check_size
    return env


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    try:
        return _env().from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise EvalkitError(f"template syntax error at line {err.lineno}: {err.message}") from None


def _own_chars(value: Any, depth: int = 0) -> int:
    """Characters of text a document brings (strings, and strings in lists or mappings a few levels down)."""
    if isinstance(value, str):
        return len(value)
    if depth < 3 and isinstance(value, (list, tuple)):
        return sum(_own_chars(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict):
        return sum(_own_chars(v, depth + 1) for v in value.values())
    return 0


def check_unicode(text: str, where: str) -> str:
    """`text`, if it can be written as UTF-8; a lone surrogate (e.g. from a JSON "\\ud800" escape) is a data error."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise EvalkitError(f"{where}: the document holds text that is not valid Unicode ({text[err.start]!r} at "
                           f"character {err.start}, e.g. a JSON '\\ud800' escape); fix the data") from None
    return text


def check_template(source: str) -> None:
    _compile(source)


def render(source: str, doc: dict[str, Any], where: str) -> str:
    """Render one template for one document; `where` names the task, field and doc for errors.

    The output may be at most MAX_RESULT_LEN characters longer than twice the document's own text,
    and must be done within MAX_RENDER_SECONDS (more for long documents). The document is passed as
    one mapping, so a data column may be named like a Python keyword argument (`self`, ...).
    """
    own = _own_chars(doc)
    try:
        _budget.limit = MAX_RESULT_LEN + 2 * own
        _budget.deadline = time.monotonic() + MAX_RENDER_SECONDS + own / _CHARS_PER_SECOND
        parts, size = [], 0
        for i, chunk in enumerate(_compile(source).generate(doc)):
            size += len(chunk)
            if size > _budget.limit:
                _refuse(f"the rendered text is longer than the {_budget.limit:,} characters allowed for this document")
            if not i & 63:
                _check_time()
            parts.append(chunk)
        return check_unicode("".join(parts), where)
    except jinja2.UndefinedError as err:
        fields = ", ".join(sorted(str(k) for k in doc)) or "none"
        raise EvalkitError(f"{where}: {err.message} (the document has fields: {fields})") from None
    except jinja2.exceptions.SecurityError as err:
        raise EvalkitError(f"{where}: template refused by the sandbox: {err}") from None
    except EvalkitError:
        raise
    except Exception as err:  # a template error on odd data: name it, do not crash
        raise EvalkitError(f"{where}: template failed: {type(err).__name__}: {str(err)[:300]}") from None
    finally:
        _budget.limit, _budget.deadline = MAX_RESULT_LEN, math.inf
