"""The task schema: a typed, validated view of one YAML task file.

Validation happens on construction; every error names the file and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import EvalkitError

KINDS = ("multiple_choice", "generate", "perplexity")
LOCAL_FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "text", "folders", "parallel", "label_lines", "squad")


@dataclass(frozen=True)
class HubSource:
    path: str
    name: str | None = None
    split: str = "test"


@dataclass(frozen=True)
class SacrebleuSource:
    test_set: str
    langpair: str


@dataclass(frozen=True)
class LocalSource:
    """Files under the data directory, in the layout of ../shared/data."""

    path: str
    format: str
    split_on: str | None = None  # text: a line regex that starts a new document
    text_field: str = "text"  # text / folders: the field that holds the text
    label_field: str = "label"  # folders: the field that holds the folder name
    source: str | None = None  # parallel: source file, relative to path
    references: tuple[str, ...] = ()  # parallel: reference files, relative to path
    files: dict[str, str] = field(default_factory=dict)  # label_lines: {label: file}, files relative to path


@dataclass(frozen=True)
class DatasetSpec:
    hub: HubSource | None = None
    sacrebleu: SacrebleuSource | None = None
    local: LocalSource | None = None


@dataclass(frozen=True)
class FewShotSpec:
    k: int = 0
    split: str | None = None  # hub split for examples; default: the evaluation docs, excluding the current one
    local: str | None = None  # same, offline: a file under the data directory
    seed: int = 1234
    delimiter: str = "\n\n"


@dataclass(frozen=True)
class GenerationSpec:
    max_new_tokens: int = 64
    until: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the family (accuracy, f1, rouge, ..., a plugin's name, or "evaluate")
    options: dict[str, Any] = field(default_factory=dict)
    alias: str | None = None  # YAML `as:`: the name the values are reported under
    module: str | None = None  # YAML `evaluate:`: a local evaluate module path (relative to the task file) or a hub id
    higher_is_better: bool | None = None  # evaluate modules only: the direction their values improve in (default true)
    base_dir: str = field(default="", compare=False)  # the task file's folder, where a module path is resolved

    def to_dict(self) -> dict[str, Any]:
        """As written in results.json (and hashed): keys that are unset are left out."""
        out: dict[str, Any] = {"name": self.name, "options": dict(self.options)}
        if self.alias:
            out["as"] = self.alias
        if self.module:
            out["evaluate"] = self.module
        if self.higher_is_better is not None:
            out["higher_is_better"] = self.higher_is_better
        return out

    @property
    def label(self) -> str:
        """How `evalkit tasks` lists it."""
        return self.alias or (f"evaluate:{self.module}" if self.module else self.name)


@dataclass(frozen=True)
class TaskSpec:
    task: str
    kind: str
    dataset: DatasetSpec
    doc_to_text: str
    metrics: tuple[MetricSpec, ...]
    version: str = "1"
    description: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # rename raw fields: {new_name: raw_name}
    doc_to_target: str | None = None
    references_field: str | None = None
    doc_to_count: str | None = None  # perplexity: text whose words/bytes are counted (default: the scored text)
    choices: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    target_delimiter: str = " "
    fewshot: FewShotSpec = field(default_factory=FewShotSpec)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    source_file: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source_file")
        data["metrics"] = [m.to_dict() for m in self.metrics]
        local = data["dataset"].get("local")
        if local is not None and not local["files"]:
            del local["files"]  # unset: left out, so the config hash of existing tasks stays the same
        return data

    @property
    def config_hash(self) -> str:
        """A hash of everything that changes the requests or the scores (not the file's location)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.labels or tuple(c.strip() for c in self.choices)
