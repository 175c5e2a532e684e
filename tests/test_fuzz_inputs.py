"""Fuzzing: mutated shipped task files and random documents may only ever raise EvalkitError.

Each test prints its figure (run with -s): inputs tried, clean errors, 0 unhandled exceptions.
EVALKIT_FUZZ_EXAMPLES scales the number of examples (default: sized for about 30 s in all).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.build import build_work
from evalkit.data import load_documents, read_local
from evalkit.errors import EvalkitError
from evalkit.tasks.loader import load_task_file, parse_task
from evalkit.tasks.spec import LocalSource

from .conftest import ROOT

SHIPPED = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "tasks").glob("*.yaml"))}
SCALE = float(os.environ.get("EVALKIT_FUZZ_EXAMPLES", "1"))


def _settings(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None, derandomize=os.environ.get("EVALKIT_FUZZ_RANDOM") is None,
                    suppress_health_check=list(HealthCheck))


class Tally:
    """Counts inputs; an exception other than EvalkitError is counted and re-raised (hypothesis shrinks it)."""

    def __init__(self, name: str):
        self.name, self.tried, self.clean_errors, self.unhandled, self.accepted = name, 0, 0, 0, 0

    def attempt(self, fn: Callable[[], Any]) -> Any:
        self.tried += 1
        try:
            out = fn()
        except EvalkitError as err:
            message = str(err)
            assert message.strip() and "\n" not in message, f"an EvalkitError needs a one-line message: {message!r}"
            self.clean_errors += 1
            return None
        except BaseException:
            self.unhandled += 1
            raise
        self.accepted += 1
        return out

    def report(self) -> None:
        print(f"\nfuzz {self.name}: {self.tried} inputs tried, {self.accepted} accepted, {self.clean_errors} clean "
              f"EvalkitErrors, {self.unhandled} unhandled exceptions")
        assert self.unhandled == 0 and self.tried > 0


SPECS, FILES = Tally("task specs (parsed)"), Tally("task files (text)")
DOCS, DATAFILES = Tally("documents (templates, requests)"), Tally("data files (loaders)")


# -- values a careless or hostile task file might hold ------------------------------------------------
NASTY_STRINGS = ["", " ", "..", "../../etc/passwd", "/etc/passwd", "a/../../b", "x\x00y", "{{", "{{ x", "{% for %}",
                 "{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__.os }}", "{{ 'x' * 10**9 }}",
                 "accuracy", "f1", "bleu", "rouge", "perplexity", "jsonl", "csv", "text", "folders", "parallel",
                 "multiple_choice", "generate", "[", "(?P<", "\u2028", "\U0001F600", "\ud800", "é" * 3, "1e309", "-1",
                 "True", "null", "~", "2024-01-01"]
KEYS = sorted({k for spec in SHIPPED.values() for k in spec} | {"hub", "local", "sacrebleu", "path", "format", "name",
                                                               "options", "k", "split", "until", "max_new_tokens", "positive"})
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=24), st.sampled_from(NASTY_STRINGS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()), inner, max_size=4)),
    max_leaves=12,
)


doc_text = st.one_of(st.text(max_size=40), st.sampled_from(["", " ", "\n", "\r\n", "\u2028", "a\x00b", "\t", '"', "{{ x }}",
                                                            "x" * 3000, "\ud800"]))
doc_values = st.one_of(doc_text, st.integers(), st.none(), st.booleans(), st.lists(doc_text, max_size=3),
                       st.floats(allow_nan=True), st.dictionaries(st.text(max_size=5), doc_text, max_size=2))
FIELDS = ["sentence", "label", "text", "page", "source", "references", "reference", "document", "summary"]
plausible = st.fixed_dictionaries({
    **{f: doc_text for f in FIELDS},
    "label": st.one_of(st.sampled_from(["neg", "pos", 0, 1, "0", "1", "negative", "positive", 2, "", None]), doc_values),
    "references": st.one_of(st.lists(doc_text, min_size=1, max_size=3), doc_values),
})
documents = st.lists(
    st.one_of(plausible, st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)), doc_values, max_size=6)),
    min_size=0, max_size=6)


def _locations(node: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a mapping entry or list item inside the spec."""
    found = [path]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        found += _locations(child, path + (key,))
    return found


def _mutate(spec: Any, data: st.DataObject) -> Any:
    spec = json.loads(json.dumps(spec))  # a deep copy
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        where = data.draw(st.sampled_from(_locations(spec)), label="where")
        op = data.draw(st.sampled_from(["drop", "replace", "add", "rename", "swap_type"]), label="op")
        if not where:
            if op == "replace":
                spec = data.draw(values, label="new top")
            continue
        parent = spec
        for step in where[:-1]:
            parent = parent[step]
        key = where[-1]
        if op == "drop":
            del parent[key]
        elif op == "replace":
            parent[key] = data.draw(values, label="value")
        elif op == "add" and isinstance(parent, dict):
            parent[data.draw(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), label="key")] = data.draw(values)
        elif op == "rename" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(KEYS), label="new key")] = parent.pop(key)
        elif op == "swap_type":
            old = parent[key]
            parent[key] = [old] if not isinstance(old, list) else {"k": old}
    return spec


@given(data=st.data())
@_settings(600)
def _fuzz_mutated_task_specs(data):
    tally = SPECS
    name = data.draw(st.sampled_from(sorted(SHIPPED)), label="shipped file")
    mutated = _mutate(SHIPPED[name], data)
    spec = tally.attempt(lambda: parse_task(mutated, f"fuzz/{name}"))
    if spec is not None:  # what the loader accepts must hash, serialise for results.json, and run or fail cleanly
        json.dumps(spec.to_dict())
        assert len(spec.config_hash) == 16
        docs = [{**d, "doc_id": i} for i, d in enumerate(data.draw(documents, label="docs"))]
        tally.attempt(lambda: build_work(spec, docs, docs))
        if spec.dataset.local is not None:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "sst2").mkdir()
                tally.attempt(lambda: load_documents(spec, tmp))




def test_fuzz_mutated_task_specs():
    _fuzz_mutated_task_specs()
    SPECS.report()


YAML_SNIPPETS = [
    "!!python/object/apply:os.system ['echo pwned']", "!!python/name:os.system", "!function utils.process_docs",
    "!!binary aGVsbG8=", "!!timestamp 2001-12-14", "!!set {a, b}", "!!omap [a: 1]", "&a [*a]", "*undefined",
    "[[[[[[[[[[]]]]]]]]]]", "{a: [b, {c: d}]}", "'unterminated", '"\\x00"', "\t", "? complex key\n: v", "%YAML 1.1",
    "--- \n---", "2001-12-14t21:59:43.10-05:00", "0x1F", "0o17", ".inf", ".nan", "~", "[" * 300 + "]" * 300,
]


@given(data=st.data())
@_settings(500)
def _fuzz_task_file_text(data):
    tally = FILES
    name = data.draw(st.sampled_from(sorted(SHIPPED)), label="shipped file")
    text = yaml.safe_dump(_mutate(SHIPPED[name], data), allow_unicode=True, sort_keys=False)
    for _ in range(data.draw(st.integers(0, 3), label="text edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        edit = data.draw(st.one_of(st.sampled_from(YAML_SNIPPETS), st.text(max_size=12)), label="insert")
        cut = data.draw(st.integers(0, 8), label="cut")
        text = text[:at] + edit + text[at + cut:]
    raw = text.encode("utf-8", "surrogatepass")
    if data.draw(st.booleans(), label="raw bytes"):
        raw += data.draw(st.binary(max_size=16), label="bytes")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(raw)
        tally.attempt(lambda: load_task_file(path))




def test_fuzz_task_file_text():
    _fuzz_task_file_text()
    FILES.report()


# -- random documents: data loaders and templates ------------------------------------------------------
def _shipped_spec(name: str):
    return parse_task(SHIPPED[name], f"tasks/{name}")


@given(data=st.data())
@_settings(500)
def _fuzz_random_documents_through_templates(data):
    tally = DOCS
    spec = _shipped_spec(data.draw(st.sampled_from(sorted(SHIPPED)), label="task"))
    docs = [{**d, "doc_id": i} for i, d in enumerate(data.draw(documents, label="docs"))]
    tally.attempt(lambda: build_work(spec, docs, docs))




def test_fuzz_random_documents_through_templates():
    _fuzz_random_documents_through_templates()
    DOCS.report()


def _write(fmt: str, rows: list[dict[str, Any]], folder: Path, garbage: bytes | None) -> LocalSource:
    """rows in one of the local formats (or raw garbage instead); the source that reads them."""
    def put(name: str, text: str) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(garbage if garbage is not None else text.encode("utf-8", "surrogatepass"))

    if fmt == "jsonl":
        put("d.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif fmt == "json":
        put("d.json", json.dumps(rows, ensure_ascii=False))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, sorted({k for r in rows for k in r}), restval="")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: str(v) for k, v in r.items()})
        put("d.csv", out.getvalue())
    elif fmt == "tsv":  # GLUE style: no quoting, so no tabs or line breaks inside a field
        keys = sorted({k for r in rows for k in r})
        line = lambda values: "\t".join(re.sub(r"\s", " ", str(v)) for v in values)  # noqa: E731
        put("d.tsv", "\n".join([line(keys)] + [line(r.get(k, "") for k in keys) for r in rows]) + "\n")
    elif fmt == "text":
        put("d.txt", "\n".join(str(v) for r in rows for v in r.values()))
        return LocalSource(path="d.txt", format="text", split_on=rows[0].get("split_on") if rows and isinstance(
            rows[0].get("split_on"), str) else None, text_field="page")
    elif fmt == "parallel":
        put("p/src", "\n".join(str(r.get("source", "")) for r in rows))
        put("p/ref", "\n".join(str(r.get("reference", "")) for r in rows))
        return LocalSource(path="p", format="parallel", source="src", references=("ref",))
    elif fmt == "folders":
        for i, r in enumerate(rows):
            label = re.sub(r"[^A-Za-z0-9]", "_", str(r.get("label", "neg")))[:8] or "x"
            put(f"f/{label}/{i}.txt", str(r.get("text", "")))
        (folder / "f").mkdir(exist_ok=True)
        return LocalSource(path="f", format="folders")
    return LocalSource(path=f"d.{fmt}", format=fmt)


@given(data=st.data())
@_settings(400)
def _fuzz_random_data_files(data):
    tally = DATAFILES
    fmt = data.draw(st.sampled_from(["jsonl", "json", "csv", "tsv", "text", "parallel", "folders"]), label="format")
    rows = data.draw(documents, label="rows")
    garbage = data.draw(st.one_of(st.none(), st.binary(max_size=64)), label="garbage")
    with tempfile.TemporaryDirectory() as tmp:
        src = _write(fmt, rows, Path(tmp), garbage)
        loaded = tally.attempt(lambda: read_local(src, Path(tmp), "fuzz"))
    if garbage is None and "\\ud8" not in json.dumps(rows):  # well-formed files must read back exactly
        if fmt in ("jsonl", "json"):
            assert loaded == json.loads(json.dumps(rows))
        elif fmt == "csv" and any(rows):
            keys = sorted({k for r in rows for k in r})
            assert loaded == [{k: str(r.get(k, "")) for k in keys} for r in rows]




def test_fuzz_random_data_files():
    _fuzz_random_data_files()
    DATAFILES.report()


# -- result files: leaderboard, report and compare on mutated results.json and samples files ------------------
RESULTS, RESULT_TEXT = Tally("result files (leaderboard, report, compare)"), Tally("result files (text)")
JSON_SNIPPETS = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 400, "[", "]", "{", "}", '"', "\\ud800", "\x00", "null",
                 "[" * 200 + "]" * 200, '"\x1b[2J"', "\ufeff", "\r\n", "true", "-0", "1.5"]


def _good_run_data() -> tuple[dict[str, Any], str]:
    import numpy as np

    from .fake_runs import sst2_records, sst2_spec, write_run

    with tempfile.TemporaryDirectory() as tmp:
        run = write_run(Path(tmp), "good", {"sst2": (sst2_spec(), sst2_records(np.arange(12) % 3 > 0))})
        return json.loads((run / "results.json").read_text()), (run / "sst2.samples.jsonl").read_text()


GOOD_RESULTS, GOOD_SAMPLES = _good_run_data()


def _read_every_way(run: Path, good: Path, report: bool) -> None:
    """What leaderboard, report, compare and regress do with a run: each may only fail with EvalkitError.

    Every reader runs (an EvalkitError from one does not hide a bug in the next); the report (about
    0.3 s each: it compiles its page template) is built for a quarter of the inputs."""
    from evalkit.analysis.compare import compare_runs, format_comparison
    from evalkit.analysis.leaderboard import build_board, leaderboard
    from evalkit.analysis.report import build_report

    def tables():
        board = build_board(leaderboard(run.parent, on_skip=lambda _r: None), all_runs=True)
        for fmt in ("table", "csv", "md", "html"):
            board.render(fmt)
        if report:
            build_report(run.parent, all_runs=True)

    def comparison():
        for fmt in ("table", "json", "md"):
            format_comparison(compare_runs(run, good, iterations=100), fmt)

    errors = []
    for reader in (tables, comparison, lambda: _regress_reads(run)):
        try:
            reader()
        except EvalkitError as err:
            errors.append(err)
    if errors:
        raise errors[0]


def _regress_reads(run: Path) -> None:
    """What regress does with a baseline before any model loads: check it, write its task configs."""
    from evalkit.analysis.regress import RegressionSpec, baseline_task_files, check_against_baseline
    from evalkit.analysis.compare import open_run

    check_against_baseline(RegressionSpec(baseline=run))
    base = open_run(run)
    with tempfile.TemporaryDirectory() as folder:
        for path in baseline_task_files(base.results, list(base.results["tasks"]), Path(folder), lambda _m: None):
            assert Path(path).parent == Path(folder)


def _write_pair(tmp: Path, results: bytes, samples: str) -> tuple[Path, Path]:
    good = tmp / "good-runs" / "good"
    good.mkdir(parents=True)
    (good / "results.json").write_text(json.dumps(GOOD_RESULTS))
    (good / "sst2.samples.jsonl").write_text(GOOD_SAMPLES)
    run = tmp / "runs" / "fuzzed"
    run.mkdir(parents=True)
    (run / "results.json").write_bytes(results)
    (run / "sst2.samples.jsonl").write_text(samples, encoding="utf-8", errors="surrogatepass")
    return run, good


def _mutate_samples(data: st.DataObject) -> str:
    rows = [json.loads(line) for line in GOOD_SAMPLES.splitlines()]
    if data.draw(st.booleans(), label="mutate samples"):
        i = data.draw(st.integers(0, len(rows) - 1), label="row")
        rows[i] = _mutate(rows[i], data)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


@given(data=st.data())
@_settings(80)
def _fuzz_result_files(data):
    results = json.dumps(_mutate(GOOD_RESULTS, data), ensure_ascii=False).encode("utf-8", "surrogatepass")
    report = data.draw(st.integers(0, 3), label="report") == 0
    with tempfile.TemporaryDirectory() as tmp:
        run, good = _write_pair(Path(tmp), results, _mutate_samples(data))
        RESULTS.attempt(lambda: _read_every_way(run, good, report))


def test_fuzz_result_files():
    _fuzz_result_files()
    RESULTS.report()


@given(data=st.data())
@_settings(80)
def _fuzz_result_file_text(data):
    text = json.dumps(GOOD_RESULTS, indent=data.draw(st.sampled_from([None, 1])))
    for _ in range(data.draw(st.integers(1, 3), label="text edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        edit = data.draw(st.one_of(st.sampled_from(JSON_SNIPPETS), st.text(max_size=8)), label="insert")
        text = text[:at] + edit + text[at + data.draw(st.integers(0, 6), label="cut"):]
    raw = text.encode("utf-8", "surrogatepass") + data.draw(st.binary(max_size=8), label="tail bytes")
    report = data.draw(st.integers(0, 3), label="report") == 0
    with tempfile.TemporaryDirectory() as tmp:
        run, good = _write_pair(Path(tmp), raw, GOOD_SAMPLES)
        RESULT_TEXT.attempt(lambda: _read_every_way(run, good, report))


def test_fuzz_result_file_text():
    _fuzz_result_file_text()
    RESULT_TEXT.report()


# -- model files: weights, GGUF and config files that the loaders must refuse with one line -----------------
MODELS = Tally("model files (weights, GGUF, config)")


def _model_input(data: st.DataObject, folder: Path) -> Path:
    """A model folder or .gguf file, damaged in one of several ways."""
    import shutil
    import struct

    from .conftest import STORIES

    kind = data.draw(st.sampled_from(["safetensors", "bin", "gguf", "config", "tokenizer"]), label="damaged part")
    if kind == "gguf":
        path = folder / "m.gguf"
        header = data.draw(st.sampled_from([b"GGUF", b"GGUF", b"GGUG", b""]), label="magic")
        numbers = data.draw(st.tuples(st.integers(0, 4), st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1)), label="v/t/kv")
        path.write_bytes(header + struct.pack("<IQQ", *numbers) + data.draw(st.binary(max_size=256), label="body"))
        return path
    model = folder / "model"
    shutil.copytree(STORIES, model)
    weights = model / "model.safetensors"
    real = weights.read_bytes()
    if kind == "safetensors":
        cut = data.draw(st.integers(0, len(real)), label="cut")
        noise = data.draw(st.binary(max_size=64), label="noise")
        at = data.draw(st.integers(0, min(cut, 512)), label="noise at")
        damaged = real[:cut]
        weights.write_bytes(damaged[:at] + noise + damaged[at + len(noise):])
    elif kind == "bin":
        weights.unlink()
        (model / "pytorch_model.bin").write_bytes(data.draw(st.binary(max_size=512), label="pickle bytes"))
    elif kind == "config":
        config = json.loads((model / "config.json").read_text())
        for _ in range(data.draw(st.integers(1, 3), label="config edits")):
            key = data.draw(st.sampled_from(sorted(config)), label="key")
            small = st.one_of(st.none(), st.booleans(), st.integers(-2, 64), st.text(max_size=8), st.lists(st.integers(0, 9), max_size=3))
            if data.draw(st.booleans(), label="drop"):
                config.pop(key)
            else:
                config[key] = data.draw(small, label="value")
        (model / "config.json").write_text(json.dumps(config))
    else:
        tok = model / "tokenizer.json"
        text = tok.read_text() if tok.is_file() else "{}"
        cut = data.draw(st.integers(0, len(text)), label="tokenizer cut")
        tok.write_text(text[:cut] + data.draw(st.text(max_size=16), label="tokenizer tail"))
    return model


def _load_model(path: Path) -> None:
    import torch

    from evalkit.adapters.hf.loading import load_model

    load_model(str(path), torch.float32, False, None)


@given(data=st.data())
@_settings(40)
def _fuzz_model_files(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = _model_input(data, Path(tmp))
        MODELS.attempt(lambda: _load_model(path))


def test_fuzz_model_files():
    _fuzz_model_files()
    MODELS.report()
