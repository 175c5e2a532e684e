"""Can two runs' numbers be compared, and on which documents? Checks made before any test runs.

- the task spec (`spec_hash`; runs from before it was recorded: `hash`) must be the same: exit 2;
- the data and few-shot pool (`hash` = spec + data + pool) may differ only if every shared document
  still holds the same content (`doc_hash`: prompt plus gold, references or counted text); otherwise
  exit 2 with how many differ and the first doc_ids;
- token-level metrics are left out when the runs cut a shared document into different numbers of tokens
  (noted when only the tokenizer hashes differ, warned when a hash is unknown);
- a side whose responses all came from the response cache gets a note.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import EvalkitError
from ..provenance import doc_hash
from ..results import read_samples

if TYPE_CHECKING:
    from .compare import RunRef

TOKEN_LEVEL = ("token_perplexity",)  # metrics whose unit is the model's own token


def _task_config(ref: RunRef, task: str) -> dict[str, Any]:
    return ((ref.results.get("config") or {}).get("tasks") or {}).get(task) or {}


def check_same_config(task: str, base: RunRef, cand: RunRef, across_prompt_formats: bool = False) -> str | None:
    """Refuse different task specs; return why the inputs differ (data or few-shot pool), or None.

    A chat-template run and a plain one of the same task config are refused unless
    `across_prompt_formats` (testing one prompt format against the other on purpose)."""
    b_cfg, c_cfg = _task_config(base, task), _task_config(cand, task)
    if not b_cfg.get("hash") or not c_cfg.get("hash") or "spec" not in b_cfg:
        raise EvalkitError(f"cannot compare task '{task}': a run does not record its task config (hash and spec); re-run it with this evalkit")
    b_chat, c_chat = bool(b_cfg.get("prompt_format")), bool(c_cfg.get("prompt_format"))
    if b_chat != c_chat and not across_prompt_formats:
        raise EvalkitError(f"cannot compare task '{task}': the {'baseline' if b_chat else 'candidate'} ran with "
                           f"--apply-chat-template and the {'candidate' if b_chat else 'baseline'} without; pair chat runs "
                           "with chat runs, or pass --across-prompt-formats to test one prompt format against the other")
    across = b_chat != c_chat and b_cfg.get("spec") == c_cfg.get("spec")  # one task config, two prompt formats on purpose
    b_spec, c_spec = b_cfg.get("spec_hash") or b_cfg["hash"], c_cfg.get("spec_hash") or c_cfg["hash"]
    if b_spec != c_spec and not across:
        fields = differences(b_cfg.get("spec"), c_cfg.get("spec")) + [
            f"prompt_format.{f}" for f in differences(b_cfg.get("prompt_format") or {}, c_cfg.get("prompt_format") or {})]
        which = f"; differing fields: {', '.join(fields[:4])}" if fields else ""
        raise EvalkitError(f"cannot compare task '{task}': the runs used different task configs (baseline hash "
                           f"{b_spec}, candidate hash {c_spec}{which}); evaluate both with the same config")
    if b_cfg["hash"] == c_cfg["hash"]:
        return None
    parts = []
    for key, name in (("data", "data"), ("fewshot_pool", "few-shot pool")):
        b_src, c_src = b_cfg.get(key) or {}, c_cfg.get(key) or {}
        if b_src.get("sha256") != c_src.get("sha256"):
            parts.append(f"{name} {describe_source(b_src)} vs {describe_source(c_src)}")
    if across and not parts:
        return None  # the hashes differ only by the prompt format
    return "the runs read different inputs: " + ("; ".join(parts) or "the task hashes differ")


def describe_source(source: dict[str, Any]) -> str:
    if not source:
        return "(not recorded)"
    where = source.get("path") or source.get("test_set") or source.get("source")
    return f"{where} sha256 {str(source.get('sha256'))[:12]}"


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))]
    return [] if a == b else [prefix or "<spec>"]


def aligned_samples(task: str, base: RunRef, cand: RunRef, inputs_differ: str | None) -> tuple[list[dict], list[dict], list[str]]:
    """Both runs' sample records on their shared doc_ids, in the baseline's order, and notes.

    Refuses when a shared doc_id holds different content in the two runs (a reordered or edited data
    file, another few-shot pool): pairing them would test different documents against each other."""
    base_rows, cand_rows = read_samples(base.path, task), read_samples(cand.path, task)
    for ref, rows in ((base, base_rows), (cand, cand_rows)):
        if not all(isinstance(r, dict) and "doc_id" in r for r in rows):
            raise EvalkitError(f"{ref.path}: a sample of task '{task}' has no doc_id; the samples file is damaged or from another tool")
        ids = [json.dumps(r["doc_id"]) for r in rows]
        if len(set(ids)) != len(ids):
            raise EvalkitError(f"{ref.path}: task '{task}' logs a doc_id more than once; the samples file is corrupt")
    by_id = {json.dumps(r["doc_id"]): r for r in cand_rows}
    shared = [r for r in base_rows if json.dumps(r["doc_id"]) in by_id]
    if not shared:
        raise EvalkitError(f"cannot compare task '{task}': the runs share no document (baseline {len(base_rows)} doc_ids, "
                           f"candidate {len(cand_rows)}); run both with the same --limit, --seed and data")
    paired = [by_id[json.dumps(r["doc_id"])] for r in shared]
    changed = [b["doc_id"] for b, c in zip(shared, paired) if _content(b) != _content(c)]
    if changed:
        why = inputs_differ or "the task configs and data hashes match, so a samples file was edited or written by another tool"
        first = ", ".join(json.dumps(d) for d in changed[:5])
        raise EvalkitError(f"cannot compare task '{task}': {len(changed)} of {len(shared)} shared documents differ in content "
                           f"(prompt, gold or references; doc_ids {first}{', ...' if len(changed) > 5 else ''}); {why}")
    notes = []
    if inputs_differ:
        notes.append(f"{task}: {inputs_differ}, but the {len(shared)} shared documents hold the same content; compared")
    if len(shared) != len(base_rows) or len(shared) != len(cand_rows):
        notes.append(f"{task}: compared on the {len(shared)} documents both runs scored "
                     f"(baseline has {len(base_rows)}, candidate {len(cand_rows)})")
    return shared, paired, notes


def _content(record: dict[str, Any]) -> str:
    return str(record.get("doc_hash") or doc_hash(record))


def same_token_counts(base_records: list[dict], cand_records: list[dict]) -> bool:
    """Whether every shared document was cut into the same number of tokens in both runs."""
    return all(b.get("tokens") == c.get("tokens") for b, c in zip(base_records, cand_records))


def tokenizer_check(base: RunRef, cand: RunRef, compared: list[tuple[str, str]], asked: set[str] | None,
                    same_counts: dict[str, bool]) -> tuple[set[tuple[str, str]], list[str]]:
    """Token-level rows to leave out, and notes. A token is the same unit in both runs only if the tokenizers
    agree: rows are left out when a shared document has another token count in the two runs (asking for
    such a metric explicitly is exit 2); when the runs' tokenizer hashes differ but every count agrees
    (a tokenizer saved again, say) they are compared with a note; an unrecorded hash is warned about."""
    token_rows = [(task, metric) for task, metric in compared if metric in TOKEN_LEVEL]
    if not token_rows:
        return set(), []
    shas = [(ref.results.get("model") or {}).get("tokenizer_sha256") for ref in (base, cand)]
    hashes = f"tokenizer sha256 {str(shas[0])[:12]} vs {str(shas[1])[:12]}" if all(shas) else "tokenizer hashes not recorded"
    left_out, notes = set(), []
    for task in dict.fromkeys(task for task, _ in token_rows):
        names = ", ".join(m for t, m in token_rows if t == task)
        if not same_counts.get(task, True):
            if asked and asked & {m for t, m in token_rows if t == task}:
                raise EvalkitError(f"cannot compare {task}/{names}: the runs cut the same documents into different numbers "
                                   f"of tokens ({hashes}), so a token is not the same unit in both; compare "
                                   "word_perplexity, byte_perplexity or bits_per_byte instead")
            left_out |= {(t, m) for t, m in token_rows if t == task}
            notes.append(f"{task}: {names} left out: the runs cut the same documents into different numbers of tokens "
                         f"({hashes}); word/byte perplexity and bits per byte do not depend on the tokenizer")
        elif all(shas) and shas[0] != shas[1]:
            notes.append(f"{task}: the tokenizer files differ ({hashes}), but every document has the same token count "
                         f"in both runs; {names} compared")
    unknown = [side for side, sha in zip(("baseline", "candidate"), shas) if not sha]
    if unknown and len(left_out) < len(token_rows):
        notes.append(f"warning: {', '.join(sorted({m for _, m in token_rows}))} compared although the "
                     f"{' and '.join(unknown)} run records no tokenizer hash; it is comparable only if both models "
                     "use the same tokenizer")
    return left_out, notes


def cache_notes(task: str, base: RunRef, cand: RunRef) -> list[str]:
    """A note for each side whose responses for `task` all came from the response cache."""
    cached = []
    for side, ref in (("baseline", base), ("candidate", cand)):
        stats = ((ref.results.get("tasks") or {}).get(task) or {}).get("cache")
        if isinstance(stats, dict) and stats.get("computed") == 0 and (stats.get("hits") or 0) > 0:
            cached.append(f"the {side} run took all {stats['hits']} responses from the response cache")
    if not cached:
        return []
    return [f"{task}: {' and '.join(cached)}, none computed; if the runs differ only in run settings (batch size, "
            "device), this compares a run with a copy of an earlier one: re-run with --no-cache"]
