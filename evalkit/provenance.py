"""What a run's numbers were computed on: content hashes of documents, data sets and few-shot pools.

- `doc_hash(record)`: sha256 of one logged document's content (prompt plus gold, references or the
  scored text's counts), written into every samples line, so that `compare` pairs documents by what
  they hold, not only by position.
- `rows_identity(rows, source)`: the identity of a data set as it was read: sha256 of its rows
  (canonical JSON, field renames and doc_ids applied) plus where it came from. A reordered, edited or
  different file, a different hub revision or sacrebleu release all give another hash.
- `task_hash(spec_hash, data, pool)`: the hash recorded as `config.tasks.<task>.hash`: the spec and
  the identity of the evaluation data and of the few-shot pool together.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

# the samples fields that hold a document's content; everything else is the model's output or a score
CONTENT_FIELDS = ("prompt", "gold", "references", "words", "bytes")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str).encode()


def doc_hash(record: Mapping[str, Any]) -> str:
    """sha256 (16 hex digits) of a samples record's content fields, canonical JSON."""
    content = {key: record[key] for key in CONTENT_FIELDS if key in record}
    if "plain_prompt" in record:  # a chat run logs the rendered template as `prompt`; the document is the plain one
        content["prompt"] = record["plain_prompt"]
    return hashlib.sha256(_canonical(content)).hexdigest()[:16]


def rows_sha256(rows: list[Mapping[str, Any]]) -> str:
    return hashlib.sha256(_canonical(rows)).hexdigest()  # one dumps call: the C encoder does the whole list


def rows_identity(rows: list[Mapping[str, Any]], source: Mapping[str, Any]) -> dict[str, Any]:
    """{**source, rows, sha256}: where the rows came from and a hash of exactly what was read."""
    return {**source, "rows": len(rows), "sha256": rows_sha256(rows)}


def task_hash(spec_hash: str, data: Mapping[str, Any] | None, pool: Mapping[str, Any] | None) -> str:
    """The task hash of a run: spec, data and few-shot pool (16 hex digits)."""
    parts = {"spec": spec_hash, "data": (data or {}).get("sha256"), "fewshot_pool": (pool or {}).get("sha256")}
    return hashlib.sha256(_canonical(parts)).hexdigest()[:16]
