"""Issue 14, "low, but fix while there", and the inputs of the one-line list that are not errors: file modes,
incomplete runs, leftover temp files, terminal and Markdown escapes, BOM and CRLF, odd data columns and values,
read-only caches, damaged cache rows, CPU out-of-memory, the work a kill loses, and data too long to tokenise."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from evalkit.cli import main
from evalkit.data import read_local
from evalkit.engine import RunOptions, evaluate, prepare_task
from evalkit.errors import EvalkitError
from evalkit.results import write_json
from evalkit.tasks import load_task_file
from evalkit.tasks.prompts import render
from evalkit.tasks.spec import LocalSource

from .conftest import DATA, STORIES
from .fake_runs import sst2_records, sst2_spec, write_run
from .hostile_files import edit_results, open_folder, unprivileged


def _run(output: Path, adapter, log=lambda _m: None, **kw):
    options = RunOptions(tasks=kw.pop("tasks", ["sst2"]), limit=kw.pop("limit", 4), data_dir=str(DATA),
                         output=str(output), progress=False, bootstrap_iters=20, **kw)
    return evaluate(options, adapter=adapter, log=log)


# -- file modes follow the umask -------------------------------------------------------------------------
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_result_files_respect_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        write_json(tmp_path / "results.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == mode


# -- a killed run is marked in leaderboard --all ----------------------------------------------------------
def test_an_incomplete_run_is_marked_in_leaderboard_all(tmp_path, capsys):
    records = sst2_records(np.ones(8, bool))
    other = sst2_spec(task="sst2-copy")
    root = tmp_path / "runs"
    write_run(root, "complete-run", {"sst2": (sst2_spec(), records)})
    killed = write_run(root, "killed-run", {"sst2": (sst2_spec(), records), "sst2-copy": (other, records)})
    edit_results(killed, lambda r: r["tasks"].pop("sst2-copy"))  # the kill came during the second task
    assert main(["leaderboard", str(root), "--all"]) == 0
    out = capsys.readouterr().out
    assert "killed-run (incomplete)" in out and "complete-run (incomplete)" not in out and "complete-run" in out


# -- temp files of killed writes are removed on the next start -------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftover_temp_files_are_removed_on_the_next_start(tmp_path, stories_adapter):
    from evalkit.cachedir import cache_root
    from evalkit.stale_temp import temp_prefix

    out = tmp_path / "out"
    old_run = out / "20260101-old-run"
    old_run.mkdir(parents=True)
    (old_run / "results.json").write_text("{}")
    dead, day_ago = _dead_pid(), time.time() - 2 * 86400
    leftovers = [old_run / f"{temp_prefix('.results.json.', dead)}x1.tmp", old_run / ".results.json.abc123.tmp"]
    live = old_run / f"{temp_prefix('.sst2.samples.jsonl.')}x2.tmp"  # a writer still at work
    elsewhere = old_run / ".results.json.evalkit-tmp-otherhost-1-x3.tmp"  # another machine's: judged by age only
    for path in [*leftovers, live, elsewhere]:
        path.write_text("partial")
    os.utime(leftovers[1], (day_ago, day_ago))
    gguf = cache_root() / "gguf"
    conversions = [gguf / f"{temp_prefix('.', dead)}abc", gguf / ".tmp-legacy"]
    for folder in conversions:
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "model.safetensors").write_bytes(b"\0" * 1000)
    os.utime(conversions[1], (day_ago, day_ago))
    _run(out, stories_adapter, limit=2)
    assert not any(p.exists() for p in [*leftovers, *conversions])
    assert live.exists() and elsewhere.exists(), "a live process's temp file, and another machine's, are left alone"


# -- terminal and Markdown escapes -------------------------------------------------------------------------
def _runs_with_model_name(tmp_path: Path, name: str) -> Path:
    root = tmp_path / "runs"
    run = write_run(root, "evil", {"sst2": (sst2_spec(), sst2_records(np.ones(8, bool)))})
    edit_results(run, lambda r: r["model"].update(spec=name))
    return run


def test_ansi_escapes_in_model_names_never_reach_the_terminal(tmp_path, capsys):
    run = _runs_with_model_name(tmp_path, "evil\x1b[2J\x1b]8;;http://x\x07model\r")
    assert main(["leaderboard", str(run.parent)]) == 0
    assert main(["compare", str(run), str(run)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "evil\\u001b[2J" in out


def test_leaderboard_markdown_escapes_html_in_names(tmp_path, capsys):
    run = _runs_with_model_name(tmp_path, "<img src=x onerror=alert(1)>")
    assert main(["leaderboard", str(run.parent), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "<img" not in out and "&lt;img src=x onerror=alert(1)&gt;" in out


# -- BOM and CRLF in every text format -----------------------------------------------------------------------
ROWS = [{"sentence": "a good film", "label": "1"}, {"sentence": "a dull film", "label": "0"}]


def _write_formats(folder: Path, bom: str, eol: str) -> dict[str, LocalSource]:
    def put(name: str, text: str) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes((bom + text.replace("\n", eol)).encode("utf-8"))

    put("d.jsonl", "".join(json.dumps(r) + "\n" for r in ROWS))
    put("d.json", json.dumps(ROWS, indent=1) + "\n")
    put("d.csv", "sentence,label\n" + "".join(f"{r['sentence']},{r['label']}\n" for r in ROWS))
    put("d.tsv", "sentence\tlabel\n" + "".join(f"{r['sentence']}\t{r['label']}\n" for r in ROWS))
    put("d.txt", "".join(f"{r['sentence']}\n" for r in ROWS))
    put("par/src.txt", "".join(f"{r['sentence']}\n" for r in ROWS))
    put("par/ref.txt", "".join(f"{r['label']}\n" for r in ROWS))
    for r in ROWS:
        put(f"dirs/{r['label']}/0.txt", f"{r['sentence']}\nsecond line\n")
    return {"jsonl": LocalSource("d.jsonl", "jsonl"), "json": LocalSource("d.json", "json"),
            "csv": LocalSource("d.csv", "csv"), "tsv": LocalSource("d.tsv", "tsv"),
            "text": LocalSource("d.txt", "text", text_field="sentence"),
            "parallel": LocalSource("par", "parallel", source="src.txt", references=("ref.txt",)),
            "folders": LocalSource("dirs", "folders", text_field="sentence")}


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "text", "parallel", "folders"])
def test_a_bom_and_crlf_line_ends_read_like_plain_lf_files(tmp_path, fmt):
    plain, windows = tmp_path / "plain", tmp_path / "windows"
    expected = read_local(_write_formats(plain, "", "\n")[fmt], plain, "t")
    got = read_local(_write_formats(windows, "\ufeff", "\r\n")[fmt], windows, "t")
    assert got == expected and "\\r" not in json.dumps(got) and "\\ufeff" not in json.dumps(got)


def test_task_files_and_results_files_with_a_bom_and_crlf_load(tmp_path):
    task = Path(sst2_spec().source_file).read_text()
    (tmp_path / "t.yaml").write_bytes(("\ufeff" + task.replace("\n", "\r\n")).encode())
    assert load_task_file(tmp_path / "t.yaml").config_hash == sst2_spec().config_hash
    run = write_run(tmp_path / "runs", "bom", {"sst2": (sst2_spec(), sst2_records(np.ones(4, bool)))})
    text = (run / "results.json").read_text()
    (run / "results.json").write_bytes(("\ufeff" + text.replace("\n", "\r\n")).encode())
    from evalkit.results import read_results

    assert read_results(run)["run_id"] == "bom"


# -- data columns and values ------------------------------------------------------------------------------
def test_a_data_column_named_self_does_not_break_rendering(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"self": "me", "sentence": "a fine film", "label": 1}) + "\n")
    task = tmp_path / "t.yaml"
    task.write_text(Path(sst2_spec().source_file).read_text().replace("path: sst2/dev.tsv, format: tsv",
                                                                      "path: d.jsonl, format: jsonl"))
    prepared = prepare_task(load_task_file(task), RunOptions(tasks=[str(task)], data_dir=str(tmp_path)))
    assert prepared.work[0].prompt.startswith("Sentence: a fine film")
    renamed = task.read_text().replace("{{ sentence }}", "{{ who }}") + "fields: {who: self}\n"
    task.write_text(renamed)
    prepared = prepare_task(load_task_file(task), RunOptions(tasks=[str(task)], data_dir=str(tmp_path)))
    assert prepared.work[0].prompt.startswith("Sentence: me")


def test_non_string_values_render_by_the_documented_rule():
    doc = {"refs": ["a", "it's"], "meta": {"k": 1, "ok": True}, "none": None, "flag": True, "x": 0.5, "n": 3}
    out = render("{{ refs }}|{{ meta }}|{{ none }}|{{ flag }}|{{ x }}|{{ n }}|{{ refs[1] }}", doc, "t")
    assert out == '["a", "it\'s"]|{"k": 1, "ok": true}|None|True|0.5|3|it\'s'
    assert json.loads(out.split("|")[0]) == doc["refs"]


# -- the response cache -------------------------------------------------------------------------------------
def test_a_read_only_complete_cache_answers_every_request(stories_adapter):
    with open_folder() as folder:
        cache, out = folder / "cache", folder / "out"
        _, first = _run(folder / "first", stories_adapter, cache_dir=str(cache))
        assert first["tasks"]["sst2"]["cache"]["computed"] == 8
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        for path in [*cache.iterdir(), cache]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        notes: list[str] = []
        with unprivileged():
            _, second = _run(out, stories_adapter, cache_dir=str(cache), log=notes.append)
    assert second["tasks"]["sst2"]["cache"] == {"hits": 8, "misses": 0, "computed": 0}
    assert second["tasks"]["sst2"]["metrics"] == first["tasks"]["sst2"]["metrics"]
    assert any("read-only" in note for note in notes)


def test_a_cached_row_with_logprob_null_counts_as_missing(tmp_path):
    from evalkit.cache import ResponseCache
    from evalkit.requests import LoglikelihoodResponse

    cache = ResponseCache(tmp_path)
    cache.put_many("m", "loglikelihood", [("good", LoglikelihoodResponse(-1.5, True, 2)),
                                          ("bad", LoglikelihoodResponse(-1.5, True, 2))])
    with sqlite3.connect(cache.path) as conn:
        conn.execute("UPDATE responses SET response = ? WHERE key = 'bad'",
                     (json.dumps({"logprob": None, "is_greedy": True, "n_tokens": 2, "truncated": False}),))
        conn.execute("UPDATE responses SET response = ? WHERE key = 'good'",
                     (json.dumps({"logprob": -1.5, "is_greedy": True, "n_tokens": 2, "truncated": False}),))
    found = cache.get_many(["good", "bad"], "loglikelihood")
    assert list(found) == ["good"] and found["good"].logprob == -1.5


# -- memory back-off on the CPU ------------------------------------------------------------------------------
def test_a_real_cpu_allocation_failure_is_recognised_and_backed_off():
    import torch

    from evalkit.batching import BatchPlan, is_oom, run_batches

    with pytest.raises(RuntimeError) as caught:
        torch.empty(1 << 62, dtype=torch.uint8)  # torch's own CPU out-of-memory error
    assert "DefaultCPUAllocator" in str(caught.value) and is_oom(caught.value)

    def fn(batch):
        if len(batch) > 2:
            torch.empty(1 << 62, dtype=torch.uint8)
        return [x * 2 for x in batch]

    plan = BatchPlan(size=8, auto=True)
    assert run_batches(list(range(10)), [1] * 10, plan, fn) == [x * 2 for x in range(10)]
    assert plan.final_size == 2 and plan.backoffs == 2


def test_a_kill_loses_at_most_64_requests_of_work_on_the_cpu():
    from evalkit.adapters.caching import CPU_MAX_CHUNK, with_cache
    from evalkit.adapters.hf.causal import HFCausalAdapter

    adapter = HFCausalAdapter(model=str(STORIES), device="cpu", batch_size="auto")
    assert adapter.run_stats()["batch_size"] == 128
    with open_folder() as folder:
        cached = with_cache(adapter, str(folder), seed=1)
        assert cached.chunk_size == CPU_MAX_CHUNK == 64


# -- data far longer than the context is cut before tokenising ---------------------------------------------
def test_the_kept_end_tokenises_exactly_like_the_whole_text(stories_adapter):
    from evalkit.adapters.hf.tokens import clip_for_tokens, encode_text

    tok = stories_adapter.tokenizer
    text = Path(DATA / "wikitext2_raw" / "wiki.test.raw").read_text(encoding="utf-8")[:300_000]
    clipped = clip_for_tokens(tok, text, 512)
    assert len(clipped) < len(text) // 10
    assert encode_text(tok, clipped)[-512:] == encode_text(tok, text)[-512:]


def test_a_30_mb_line_is_scored_with_its_end_and_counted_as_truncated(tmp_path, stories_adapter):
    rows = [{"sentence": "a long story. " * (30 * 1024 * 1024 // 14), "label": 1}, {"sentence": "a good film", "label": 1}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tmp_path / "t.yaml"
    task.write_text(Path(sst2_spec().source_file).read_text().replace("path: sst2/dev.tsv, format: tsv",
                                                                      "path: d.jsonl, format: jsonl"))
    start = time.perf_counter()
    options = RunOptions(tasks=[str(task)], data_dir=str(tmp_path), output=str(tmp_path / "out"), progress=False,
                         bootstrap_iters=0)
    _, results = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
    assert results["tasks"]["sst2"]["truncated_inputs"] == 2 and results["tasks"]["sst2"]["n"] == 2
    assert time.perf_counter() - start < 60


# -- the README's auto_map wording: a built-in model_type loads the built-in class, the shipped code never runs --
def test_auto_map_with_a_built_in_model_type_loads_the_built_in_class(tmp_path):
    from evalkit.adapters.hf.causal import HFCausalAdapter

    model = tmp_path / "model"
    shutil.copytree(STORIES, model)
    (model / "custom_model.py").write_text("import pathlib\npathlib.Path(__file__).with_name('EXECUTED').write_text('ran')\n")
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "custom_model.Evil"}
    (model / "config.json").write_text(json.dumps(config))
    adapter = HFCausalAdapter(model=str(model), device="cpu")
    assert type(adapter.model).__name__ == "LlamaForCausalLM" and config["model_type"] == "llama"
    assert not (model / "EXECUTED").exists()
