"""Document sources: a hub dataset, local files under a data directory, or a sacrebleu test set.

Every document gets a stable `doc_id`: its position in the source's own order. `--limit` draws a
seeded random sample of doc_ids, so a split sorted by label never becomes one class.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from pathlib import Path
from typing import Any

from .errors import EvalkitError
from .tasks.spec import LocalSource, TaskSpec

csv.field_size_limit(1 << 30)


def load_documents(spec: TaskSpec, data_dir: str | Path | None) -> list[dict[str, Any]]:
    """All documents of the task's evaluation split, with field renames applied and doc_ids set."""
    ds = spec.dataset
    if data_dir is not None:
        if ds.local is None:
            raise EvalkitError(f"task '{spec.task}' has no local layout (dataset.local) for --data-dir; add one to {spec.source_file}")
        rows = read_local(ds.local, Path(data_dir), spec.task)
    elif ds.hub is not None:
        rows = _read_hub(spec)
    elif ds.sacrebleu is not None:
        rows = _read_sacrebleu(spec)
    else:
        raise EvalkitError(f"task '{spec.task}' reads only local files: pass --data-dir (e.g. ../shared/data)")
    if not rows:
        raise EvalkitError(f"task '{spec.task}': the dataset is empty; check the data files or --data-dir")
    docs = []
    for i, row in enumerate(rows):
        doc = dict(row)
        for new, old in spec.fields.items():
            if old not in row:
                raise EvalkitError(f"task '{spec.task}': field mapping '{new}: {old}': doc {i} has no field '{old}' (it has: {', '.join(map(str, row))})")
            doc[new] = row[old]
        doc["doc_id"] = i
        docs.append(doc)
    return docs


LIMIT_MODES = ("random", "first")


def select_documents(docs: list[dict[str, Any]], limit: int | None, seed: int, mode: str = "random") -> list[dict[str, Any]]:
    """`limit` docs kept in doc_id order: a seeded random sample (default), or the first `limit` (lm-eval's
    --limit, for like-for-like comparisons; a split sorted by label then gives one class). All docs when
    limit is None or not smaller than the data set."""
    if mode not in LIMIT_MODES:
        raise EvalkitError(f"--limit-mode must be one of {', '.join(LIMIT_MODES)}, got '{mode}'")
    if limit is None or limit >= len(docs):
        return docs
    if limit < 1:
        raise EvalkitError(f"--limit must be a positive integer, got {limit}")
    if mode == "first":
        return docs[:limit]
    chosen = sorted(random.Random(seed).sample(range(len(docs)), limit))
    return [docs[i] for i in chosen]


def resolve_under(root: Path, relative: str, task: str) -> Path:
    """A path inside root; `..` escapes and absolute paths are refused."""
    try:
        root_r = root.resolve()
        target = (root_r / relative).resolve()  # follows symlinks: a link out of the data directory is refused too
        target.exists()
    except (OSError, ValueError) as err:  # a NUL byte, a name too long
        raise EvalkitError(f"task '{task}': data path {relative!r} cannot be used ({err}); fix dataset.local in the task file") from None
    if Path(relative).is_absolute() or not target.is_relative_to(root_r):
        raise EvalkitError(f"task '{task}': data path '{relative}' escapes the data directory {root}; use a path inside it")
    return target


def _missing(path: Path, relative: str, root: Path, task: str) -> EvalkitError:
    return EvalkitError(
        f"task '{task}': data file not found: {path}; pass --data-dir pointing at a folder that holds '{relative}' "
        f"(the layout of ../shared/data), or run without --data-dir to use the hub (current data dir: {root})"
    )


def _read_text(path: Path, task: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise EvalkitError(f"task '{task}': {path} is not UTF-8 (bad byte at offset {err.start}); re-encode the file as UTF-8") from None


def read_local(src: LocalSource, data_dir: Path, task: str, path: str | None = None) -> list[dict[str, Any]]:
    relative = path or src.path
    if not data_dir.is_dir():
        raise EvalkitError(f"--data-dir {data_dir} is not a directory")
    target = resolve_under(data_dir, relative, task)
    if not target.exists():
        raise _missing(target, relative, data_dir, task)
    fmt = src.format
    if fmt == "folders":
        return _read_folders(target, src, task)
    if fmt == "parallel":
        return _read_parallel(target, src, data_dir, task)
    if fmt == "label_lines":
        return _read_label_lines(target, src, data_dir, task)
    if not target.is_file():
        raise EvalkitError(f"task '{task}': {target} is a directory, but format '{fmt}' reads one file")
    if fmt == "parquet":
        import pandas as pd

        try:
            return pd.read_parquet(target).to_dict(orient="records")
        except Exception as err:
            raise EvalkitError(f"task '{task}': cannot read parquet file {target}: {err}") from None
    text = _read_text(target, task)
    if fmt == "jsonl":
        rows = []
        for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 and \r may sit inside a JSON string
            if line.strip():
                rows.append(_json_object(line, f"{target}:{n}", task))
        return rows
    if fmt == "json":
        data = _json_value(text, str(target), task)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise EvalkitError(f"task '{task}': {target} must hold a JSON list of objects")
        return data
    if fmt in ("csv", "tsv"):
        lines = io.StringIO(text, newline="")  # quoted fields keep their line breaks
        if fmt == "tsv":
            reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.DictReader(lines)
        rows = []
        try:
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise EvalkitError(f"task '{task}': {target}:{reader.line_num}: the row has a different number of columns than the header")
                rows.append(dict(row))
        except csv.Error as err:
            raise EvalkitError(f"task '{task}': {target}:{reader.line_num}: malformed {fmt.upper()}: {err}") from None
        return rows
    if fmt == "text":
        return _split_text(text, src, task)
    if fmt == "squad":
        from .squad_format import squad_rows

        return squad_rows(_json_value(text, str(target), task), f"task '{task}': {target}")
    raise EvalkitError(f"task '{task}': unsupported local format '{fmt}'")


def _json_value(text: str, where: str, task: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise EvalkitError(f"task '{task}': {where}: invalid JSON: {err.msg} (column {err.colno})") from None


def _json_object(line: str, where: str, task: str) -> dict[str, Any]:
    value = _json_value(line, where, task)
    if not isinstance(value, dict):
        raise EvalkitError(f"task '{task}': {where}: each JSON line must be an object")
    return value


def _split_text(text: str, src: LocalSource, task: str) -> list[dict[str, Any]]:
    """One document per non-blank line, or, with `split_on`, a new document at each matching line."""
    lines = text.split("\n")
    if not src.split_on:
        return [{src.text_field: line} for line in lines if line.strip()]
    try:
        start = re.compile(src.split_on)
    except re.error as err:
        raise EvalkitError(f"task '{task}': dataset.local.split_on is not a valid regex: {err}") from None
    docs, current = [], []
    for line in lines:
        if start.match(line) and any(part.strip() for part in current):
            docs.append("\n".join(current))
            current = []
        current.append(line)
    if any(part.strip() for part in current):
        docs.append("\n".join(current))
    return [{src.text_field: d} for d in docs]


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _read_folders(target: Path, src: LocalSource, task: str) -> list[dict[str, Any]]:
    """aclImdb-style layout: <path>/<label>/<file>.txt, one example per file, label from the folder name."""
    if not target.is_dir():
        raise EvalkitError(f"task '{task}': {target} must be a folder of label folders for format 'folders'")
    rows = []
    for label_dir in sorted(p for p in target.iterdir() if p.is_dir()):
        for f in sorted((p for p in label_dir.iterdir() if p.is_file() and p.suffix == ".txt"), key=_natural_key):
            rows.append({src.text_field: _read_text(f, task), src.label_field: label_dir.name, "file": f"{label_dir.name}/{f.name}"})
    if not rows:
        loose = sum(1 for p in target.iterdir() if p.is_file())
        found = f"it holds {loose} loose file(s) and no label folder with .txt files" if loose else "it holds no label folder with .txt files"
        raise EvalkitError(f"task '{task}': {target} does not have the shape format 'folders' expects: "
                           f"<path>/<label>/<name>.txt, one example per file, the label from the folder name "
                           f"(e.g. aclImdb/test/pos/0_10.txt); {found}")
    return rows


def _read_label_lines(target: Path, src: LocalSource, data_dir: Path, task: str) -> list[dict[str, Any]]:
    """One file per label (rt-polarity.pos, rt-polarity.neg), one example per non-blank line."""
    if not target.is_dir():
        raise EvalkitError(f"task '{task}': {target} must be a folder for format 'label_lines' "
                           "(it holds the files named in dataset.local.files: {LABEL: FILE})")
    rows = []
    for label, name in src.files.items():
        rel = str(Path(src.path) / name)
        f = resolve_under(data_dir, rel, task)
        if not f.is_file():
            raise _missing(f, rel, data_dir, task)
        for n, line in enumerate(_read_text(f, task).split("\n"), 1):
            line = line.rstrip("\r")
            if line.strip():
                rows.append({src.text_field: line, src.label_field: label, "file": name, "line": n})
    return rows


def _read_parallel(target: Path, src: LocalSource, data_dir: Path, task: str) -> list[dict[str, Any]]:
    """Line-aligned source and reference files (WMT layout); several reference files give several references."""
    def lines(name: str) -> list[str]:
        rel = str(Path(src.path) / name)
        f = resolve_under(data_dir, rel, task)
        if not f.is_file():
            raise _missing(f, rel, data_dir, task)
        return _read_text(f, task).rstrip("\n").split("\n")

    sources = lines(src.source or "")
    refs = [lines(r) for r in src.references]
    for name, ref in zip(src.references, refs):
        if len(ref) != len(sources):
            raise EvalkitError(f"task '{task}': {name} has {len(ref)} lines but the source has {len(sources)}; the files must be line-aligned")
    return [{"source": s, "references": [r[i] for r in refs], "reference": refs[0][i]} for i, s in enumerate(sources)]


def _read_hub(spec: TaskSpec) -> list[dict[str, Any]]:
    hub = spec.dataset.hub
    assert hub is not None
    from .hub import hub_reachable

    try:
        import datasets

        if not hub_reachable():
            datasets.config.HF_HUB_OFFLINE = True  # offline: only the local datasets cache can answer
        data = datasets.load_dataset(hub.path, hub.name, split=hub.split)
    except Exception as err:  # offline, unknown dataset, bad split: all the user's to fix
        raise EvalkitError(
            f"task '{spec.task}': cannot load hub dataset '{hub.path}' ({type(err).__name__}); "
            "if this machine is offline, pass --data-dir with the local layout (e.g. ../shared/data)"
        ) from None
    return [dict(row) for row in data]


def _read_sacrebleu(spec: TaskSpec) -> list[dict[str, Any]]:
    sb = spec.dataset.sacrebleu
    assert sb is not None
    try:
        from sacrebleu.utils import get_reference_files, get_source_file

        source = Path(get_source_file(sb.test_set, sb.langpair)).read_text(encoding="utf-8").rstrip("\n").split("\n")
        refs = [Path(f).read_text(encoding="utf-8").rstrip("\n").split("\n") for f in get_reference_files(sb.test_set, sb.langpair)]
    except Exception as err:
        raise EvalkitError(
            f"task '{spec.task}': cannot fetch sacrebleu test set {sb.test_set} {sb.langpair} ({type(err).__name__}); "
            "if this machine is offline, pass --data-dir with the local layout (e.g. ../shared/data)"
        ) from None
    return [{"source": s, "references": [r[i] for r in refs], "reference": refs[0][i]} for i, s in enumerate(source)]


def load_fewshot_pool(spec: TaskSpec, data_dir: str | Path | None) -> list[dict[str, Any]] | None:
    """Examples for few-shot prompts from a separate split; None means: use the evaluation docs."""
    fs = spec.fewshot
    if fs.k == 0:
        return None
    if data_dir is not None and fs.local and spec.dataset.local is not None:
        rows = read_local(spec.dataset.local, Path(data_dir), spec.task, path=fs.local)
    elif data_dir is None and fs.split and spec.dataset.hub is not None:
        from dataclasses import replace

        rows = _read_hub(replace(spec, dataset=replace(spec.dataset, hub=replace(spec.dataset.hub, split=fs.split))))
    else:
        return None
    pool = []
    for i, row in enumerate(rows):
        doc = dict(row)
        for new, old in spec.fields.items():
            doc[new] = row.get(old)
        doc["doc_id"] = i
        pool.append(doc)
    return pool
