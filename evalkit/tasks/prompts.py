"""Jinja2 prompt rendering in a sandbox with StrictUndefined.

A template cannot reach Python internals (`__class__`, `os`, ...), and a field the document lacks
is an error that names the field, not an empty string.
"""

from __future__ import annotations

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


@lru_cache(maxsize=1)
def _env() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["wikitext_detokenize"] = wikitext_detokenize
    env.filters["clean_html"] = _clean_html
    return env


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    try:
        return _env().from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise EvalkitError(f"template syntax error at line {err.lineno}: {err.message}") from None


def check_template(source: str) -> None:
    _compile(source)


def render(source: str, doc: dict[str, Any], where: str) -> str:
    """Render one template for one document; `where` names the task, field and doc for errors."""
    try:
        return _compile(source).render(**doc)
    except jinja2.UndefinedError as err:
        fields = ", ".join(sorted(str(k) for k in doc)) or "none"
        raise EvalkitError(f"{where}: {err.message} (the document has fields: {fields})") from None
    except jinja2.exceptions.SecurityError as err:
        raise EvalkitError(f"{where}: template refused by the sandbox: {err}") from None
    except EvalkitError:
        raise
    except Exception as err:  # a template error on odd data: name it, do not crash
        raise EvalkitError(f"{where}: template failed: {type(err).__name__}: {err}") from None
