"""The SQuAD JSON layout (`format: squad`): nested articles, paragraphs and questions, flattened to rows.

Input, as in the official `dev-v1.1.json`:
  {"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}
Each question becomes one row shaped like the hub's rajpurkar/squad rows, so one task file reads both:
  {"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}
"""

from __future__ import annotations

from typing import Any

from .errors import EvalkitError

SHAPE = ('{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", '
         '"answers": [{"text", "answer_start"}]}]}]}]}')


def _get(obj: Any, key: str, kind: type, where: str, prefix: str) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
        raise EvalkitError(f"{prefix}: {where} needs '{key}' ({kind.__name__}); format 'squad' expects {SHAPE}")
    return obj[key]


def squad_rows(data: Any, prefix: str) -> list[dict[str, Any]]:
    """One row per question; `prefix` names the task and the file in errors."""
    rows = []
    for a, article in enumerate(_get(data, "data", list, "the top level", prefix)):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for p, para in enumerate(_get(article, "paragraphs", list, f"data[{a}]", prefix)):
            where = f"data[{a}].paragraphs[{p}]"
            context = _get(para, "context", str, where, prefix)
            for q, qa in enumerate(_get(para, "qas", list, where, prefix)):
                at = f"{where}.qas[{q}]"
                answers = _get(qa, "answers", list, at, prefix)
                texts = [_get(ans, "text", str, f"{at}.answers[{i}]", prefix) for i, ans in enumerate(answers)]
                starts = [ans.get("answer_start") for ans in answers]
                rows.append({"id": _get(qa, "id", str, at, prefix),
                             "title": str(title), "context": context, "question": _get(qa, "question", str, at, prefix),
                             "answers": {"text": texts, "answer_start": starts}})
    return rows
