"""Task + documents -> requests. One DocWork per document: its prompt, requests and gold answer.

How a prompt reaches the model depends on a PromptStyle:
  - plain (the default): the prompt is one string, few-shot examples joined by the task's delimiter.
  - chat (`--apply-chat-template`), following lm-eval 0.4's conventions: the request carries chat
    messages, an optional system turn, then one user turn holding the plain prompt (few-shot
    examples included), or with `--fewshot-as-multiturn` one user/assistant pair per example and a
    final user turn. The adapter renders them with the model's chat template and adds the generation
    prompt. Multiple-choice continuations then start right after that prompt: the target delimiter is
    dropped (lm-eval sets it to "" under a chat template). Perplexity tasks score raw text and are
    unchanged. `context` stays the plain prompt.
  - classifier input: a text classifier reads the task's `input` template (the raw text), and each
    choice's request names the label (`continuation` = the label name); no few-shot, no chat.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import EvalkitError
from .requests import Generate, Loglikelihood, Message, Request, RollingLoglikelihood, TagWords
from .tasks.prompts import check_unicode, render
from .tasks.spec import TaskSpec


MAX_SCORED_CHARS = 10_000_000  # perplexity: characters in one document (a long book is a few million)


@dataclass(frozen=True)
class PromptStyle:
    chat: bool = False  # render prompts as chat messages through the model's chat template
    system_prompt: str | None = None  # chat: a system turn first
    fewshot_as_multiturn: bool = False  # chat: each few-shot example as its own user/assistant turns
    classifier_input: bool = False  # a text classifier: the task's raw `input` text, the label names as continuations

    def to_dict(self) -> dict[str, Any] | None:
        """What enters the task's config hash and results.json; None for plain prompts (hashes unchanged)."""
        if not self.chat:
            return None
        return {"apply_chat_template": True, "system_prompt": self.system_prompt,
                "fewshot_as_multiturn": self.fewshot_as_multiturn}


@dataclass
class DocWork:
    doc_id: int
    prompt: str
    requests: list[Request]
    gold: str | list[str] | None = None  # multiple choice: the gold label name; sequence labelling: the gold tags
    references: list[str] = field(default_factory=list)  # generation
    counts: dict[str, int] = field(default_factory=dict)  # perplexity: words and bytes
    messages: tuple[Message, ...] = ()  # chat: the conversation the model's template renders
    words: list[str] = field(default_factory=list)  # sequence labelling


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


def fewshot_examples(spec: TaskSpec, doc: dict[str, Any], pool: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """k (question, answer) examples drawn with a per-document seed, never the document itself."""
    fs = spec.fewshot
    if fs.k == 0:
        return []
    # the pool is either a separate split or the evaluation docs themselves (the same objects): draw one
    # spare, and drop the document itself if it was drawn (O(k), not O(pool), per document)
    picks = random.Random(fs.seed * 1_000_003 + int(doc["doc_id"])).sample(range(len(pool)), min(len(pool), fs.k + 1))
    examples = [pool[i] for i in picks if pool[i] is not doc][: fs.k]
    if len(examples) < fs.k:
        available = sum(d is not doc for d in pool)
        raise EvalkitError(f"task '{spec.task}': fewshot.k is {fs.k} but only {available} examples are available")
    return [(render(spec.doc_to_text, ex, f"task '{spec.task}' few-shot doc {ex['doc_id']} doc_to_text"), _target_text(spec, ex))
            for ex in examples]


def fewshot_prefix(spec: TaskSpec, doc: dict[str, Any], pool: list[dict[str, Any]]) -> str:
    shots = [q + spec.target_delimiter + a for q, a in fewshot_examples(spec, doc, pool)]
    return "".join(shot + spec.fewshot.delimiter for shot in shots)


def chat_messages(spec: TaskSpec, doc: dict[str, Any], pool: list[dict[str, Any]], text: str,
                  style: PromptStyle) -> tuple[Message, ...]:
    """The conversation for one document (lm-eval's `fewshot_context` with a chat template)."""
    messages: list[Message] = [("system", style.system_prompt)] if style.system_prompt else []
    if style.fewshot_as_multiturn:
        for question, answer in fewshot_examples(spec, doc, pool):
            messages += [("user", question), ("assistant", answer)]
        return tuple(messages + [("user", text)])
    return tuple(messages + [("user", fewshot_prefix(spec, doc, pool) + text)])


def tag_set(spec: TaskSpec, docs: list[dict[str, Any]]) -> tuple[str, ...]:
    """The task's tags: its `labels`, else every tag its documents use (all of them, not a --limit sample)."""
    return spec.labels or tuple(sorted({t for doc in docs for t in _words_and_tags(spec, doc)[1]}))


def _words_and_tags(spec: TaskSpec, doc: dict[str, Any]) -> tuple[list[str], list[str]]:
    where = f"task '{spec.task}' doc {doc['doc_id']}"
    out = []
    for key in (spec.words_field, spec.tags_field):
        value = doc.get(key or "")
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            raise EvalkitError(f"{where}: field '{key}' must be a non-empty list of strings (the document has: "
                               f"{', '.join(map(str, doc))})")
        out.append([check_unicode(v, f"{where} {key}") for v in value])
    if len(out[0]) != len(out[1]):
        raise EvalkitError(f"{where}: {len(out[0])} words but {len(out[1])} tags")
    return out[0], out[1]


def _sequence_work(spec: TaskSpec, doc: dict[str, Any], tags: tuple[str, ...]) -> DocWork:
    words, gold = _words_and_tags(spec, doc)
    unknown = sorted(set(gold) - set(tags))
    if unknown:
        raise EvalkitError(f"task '{spec.task}' doc {doc['doc_id']}: gold tag(s) {', '.join(unknown)} not in the task's "
                           f"labels ({', '.join(tags)}); add them to `labels`")
    prompt = render(spec.doc_to_text, doc, f"task '{spec.task}' doc {doc['doc_id']} doc_to_text") if spec.doc_to_text else " ".join(words)
    return DocWork(doc["doc_id"], prompt, [TagWords(tuple(words), tags)], gold=gold, words=words)


def _classifier_work(spec: TaskSpec, doc: dict[str, Any]) -> DocWork:
    if spec.input is None:
        raise EvalkitError(f"task '{spec.task}' has no `input` template, the raw text a classifier reads "
                           f"(e.g. input: \"{{{{ text }}}}\"); add one to {spec.source_file or 'the task file'}")
    text = render(spec.input, doc, f"task '{spec.task}' doc {doc['doc_id']} input")
    reqs: list[Request] = [Loglikelihood(text, label) for label in spec.label_names]
    return DocWork(doc["doc_id"], text, reqs, gold=gold_label(spec, doc))


def build_work(spec: TaskSpec, docs: list[dict[str, Any]], pool: list[dict[str, Any]],
               style: PromptStyle = PromptStyle(), tags: tuple[str, ...] = ()) -> list[DocWork]:
    work = []
    if spec.kind == "sequence_labeling":
        tags = tags or tag_set(spec, docs)
        return [_sequence_work(spec, doc, tags) for doc in docs]
    if spec.kind == "multiple_choice" and style.classifier_input:
        return [_classifier_work(spec, doc) for doc in docs]
    chat = style.chat and spec.kind != "perplexity"
    for doc in docs:
        where = f"task '{spec.task}' doc {doc['doc_id']}"
        text = render(spec.doc_to_text, doc, f"{where} doc_to_text")
        if spec.kind == "perplexity":
            if not text.strip():
                raise EvalkitError(f"{where}: the text to score is empty; remove the document or fix doc_to_text")
            if len(text) > MAX_SCORED_CHARS:  # every token is scored, so it cannot be cut; the tokenizer would not cope
                raise EvalkitError(f"{where}: the text to score has {len(text):,} characters, more than the "
                                   f"{MAX_SCORED_CHARS:,} scored in one document; split it (dataset.local.split_on)")
            count_text = render(spec.doc_to_count, doc, f"{where} doc_to_count") if spec.doc_to_count else text
            counts = {"words": len(re.split(r"\s+", count_text)), "bytes": len(count_text.encode("utf-8"))}
            work.append(DocWork(doc["doc_id"], text, [RollingLoglikelihood(text)], counts=counts))
            continue
        prompt = fewshot_prefix(spec, doc, pool) + text
        messages = chat_messages(spec, doc, pool, text, style) if chat else ()
        if spec.kind == "multiple_choice":
            delimiter = "" if chat else spec.target_delimiter
            reqs: list[Request] = [Loglikelihood(prompt, delimiter + c, messages) for c in spec.choices]
            work.append(DocWork(doc["doc_id"], prompt, reqs, gold=gold_label(spec, doc), messages=messages))
        else:
            gen = spec.generation
            work.append(DocWork(doc["doc_id"], prompt, [Generate(prompt, gen.until, gen.max_new_tokens, messages)],
                                references=references(spec, doc), messages=messages))
    return work
