"""Jinja2 prompt rendering in a sandbox with StrictUndefined.

A template cannot reach Python internals (`__class__`, `os`, ...), and a field the document lacks
is an error that names the field, not an empty string.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

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


MAX_RESULT_LEN = 1_000_000  # a prompt longer than this is a runaway template, not a prompt


class _BoundedSandbox(SandboxedEnvironment):
    """The sandbox, plus limits on `*` and `**`: `{{ 'x' * 10**10 }}` or `{{ 9**9**9 }}` fail instead of eating the machine."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if (operator == "**" and isinstance(right, (int, float)) and isinstance(left, (int, float)) and abs(left) > 1
                and abs(right) * math.log10(abs(left)) > 1000):
            raise jinja2.exceptions.SecurityError(f"the power {left!r} ** {right!r} is too large for a template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_RESULT_LEN:
                    raise jinja2.exceptions.SecurityError(f"repeating a sequence {times} times makes it longer than {MAX_RESULT_LEN:,}")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def _env() -> SandboxedEnvironment:
    env = _BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["wikitext_detokenize"] = wikitext_detokenize
    env.filters["clean_html"] = _clean_html
    return env


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    try:
        return _env().from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise EvalkitError(f"template syntax error at line {err.lineno}: {err.message}") from None


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
    """Render one template for one document; `where` names the task, field and doc for errors."""
    try:
        return check_unicode(_compile(source).render(**doc), where)
    except jinja2.UndefinedError as err:
        fields = ", ".join(sorted(str(k) for k in doc)) or "none"
        raise EvalkitError(f"{where}: {err.message} (the document has fields: {fields})") from None
    except jinja2.exceptions.SecurityError as err:
        raise EvalkitError(f"{where}: template refused by the sandbox: {err}") from None
    except EvalkitError:
        raise
    except Exception as err:  # a template error on odd data: name it, do not crash
        raise EvalkitError(f"{where}: template failed: {type(err).__name__}: {err}") from None
