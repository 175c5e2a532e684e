"""Task + documents -> requests. One DocWork per document: its prompt, requests and gold answer."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import EvalkitError
from .requests import Generate, Loglikelihood, Request, RollingLoglikelihood
from .tasks.prompts import check_unicode, render
from .tasks.spec import TaskSpec


@dataclass
class DocWork:
    doc_id: int
    prompt: str
    requests: list[Request]
    gold: str | None = None  # multiple choice: the gold label name
    references: list[str] = field(default_factory=list)  # generation
    counts: dict[str, int] = field(default_factory=dict)  # perplexity: words and bytes


def gold_label(spec: TaskSpec, doc: dict[str, Any]) -> str:
    """The gold label name: the target template may give a label name, a choice text or an index."""
    where = f"task '{spec.task}' doc {doc['doc_id']} doc_to_target"
    value = render(spec.doc_to_target or "", doc, where).strip()
    names = spec.label_names
    if value in names:
        return value
    stripped = [c.strip() for c in spec.choices]
    if value in stripped:
        return names[stripped.index(value)]
    if re.fullmatch(r"-?\d+", value) and 0 <= int(value) < len(names):
        return names[int(value)]
    raise EvalkitError(f"{where}: gold '{value}' is neither a label {list(names)} nor a choice index 0..{len(names) - 1}")


_MISSING = object()


def _lookup(doc: dict[str, Any], field_name: str) -> Any:
    """A field, or with dots a nested one (`answers.text` in SQuAD's {"answers": {"text": [...]}})."""
    if field_name in doc:
        return doc[field_name]
    value: Any = doc
    for part in field_name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def references(spec: TaskSpec, doc: dict[str, Any]) -> list[str]:
    where = f"task '{spec.task}' doc {doc['doc_id']}"
    if spec.references_field:
        value = _lookup(doc, spec.references_field)
        if value is _MISSING:
            raise EvalkitError(f"{where}: references_field '{spec.references_field}' is missing (the document has: {', '.join(map(str, doc))})")
        refs = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
        if not refs or not all(isinstance(r, str) for r in refs):
            raise EvalkitError(f"{where}: references_field '{spec.references_field}' must be a string or a non-empty list of strings")
        return [check_unicode(r, f"{where} references_field") for r in refs]
    return [render(spec.doc_to_target or "", doc, f"{where} doc_to_target")]


def _target_text(spec: TaskSpec, doc: dict[str, Any]) -> str:
    if spec.kind == "multiple_choice":
        return spec.choices[spec.label_names.index(gold_label(spec, doc))]
    return references(spec, doc)[0]


def fewshot_prefix(spec: TaskSpec, doc: dict[str, Any], pool: list[dict[str, Any]]) -> str:
    """k examples drawn with a per-document seed, never the document itself."""
    fs = spec.fewshot
    if fs.k == 0:
        return ""
    # the pool is either a separate split or the evaluation docs themselves (the same objects)
    candidates = [d for d in pool if d is not doc]
    if len(candidates) < fs.k:
        raise EvalkitError(f"task '{spec.task}': fewshot.k is {fs.k} but only {len(candidates)} examples are available")
    examples = random.Random(fs.seed * 1_000_003 + int(doc["doc_id"])).sample(candidates, fs.k)
    shots = [render(spec.doc_to_text, ex, f"task '{spec.task}' few-shot doc {ex['doc_id']} doc_to_text")
             + spec.target_delimiter + _target_text(spec, ex) for ex in examples]
    return fs.delimiter.join(shots) + fs.delimiter


def build_work(spec: TaskSpec, docs: list[dict[str, Any]], pool: list[dict[str, Any]]) -> list[DocWork]:
    work = []
    for doc in docs:
        where = f"task '{spec.task}' doc {doc['doc_id']}"
        text = render(spec.doc_to_text, doc, f"{where} doc_to_text")
        if spec.kind == "perplexity":
            if not text.strip():
                raise EvalkitError(f"{where}: the text to score is empty; remove the document or fix doc_to_text")
            count_text = render(spec.doc_to_count, doc, f"{where} doc_to_count") if spec.doc_to_count else text
            counts = {"words": len(re.split(r"\s+", count_text)), "bytes": len(count_text.encode("utf-8"))}
            work.append(DocWork(doc["doc_id"], text, [RollingLoglikelihood(text)], counts=counts))
            continue
        prompt = fewshot_prefix(spec, doc, pool) + text
        if spec.kind == "multiple_choice":
            reqs: list[Request] = [Loglikelihood(prompt, spec.target_delimiter + c) for c in spec.choices]
            work.append(DocWork(doc["doc_id"], prompt, reqs, gold=gold_label(spec, doc)))
        else:
            gen = spec.generation
            work.append(DocWork(doc["doc_id"], prompt, [Generate(prompt, gen.until, gen.max_new_tokens)],
                                references=references(spec, doc)))
    return work
