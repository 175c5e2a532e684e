"""Integrity and confinement (issue 14, items 1-4 and 6-8): files from other people cannot make evalkit write or
read outside its folders, a NaN model cannot pass as a score, and a run's tasks and model arguments are checked."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalkit.cli import main
from evalkit.engine import RunOptions, evaluate, prepare_task
from evalkit.errors import EvalkitError
from evalkit.tasks import load_task_file, parse_task

from .conftest import DATA, STORIES
from .fake_runs import sst2_records, sst2_spec, write_run


def _one_line(capsys, argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return code, lines[0]


def _snapshot(root: Path, skip: Path) -> dict[str, tuple[str, int]]:
    """Every file under root but under `skip`: its content hash and mode."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_relative_to(skip)}


def _rewrite(run_dir: Path, edit) -> None:
    path = run_dir / "results.json"
    results = json.loads(path.read_text())
    edit(results)
    path.write_text(json.dumps(results))


# -- 1. regress never writes outside its folders --------------------------------------------------------
def test_a_baseline_task_name_cannot_make_regress_write_outside_its_folders(tmp_path, capsys):
    victim = tmp_path / "other-repo" / "tasks" / "sst2.yaml"
    victim.parent.mkdir(parents=True)
    victim.write_text("task: sst2  # someone else's task file\n")
    planted = {**json.loads(json.dumps(sst2_spec().to_dict())), "doc_to_text": "PLANTED PROMPT {{ sentence }}"}
    base = write_run(tmp_path / "runs", "base", {"sst2": (sst2_spec(), sst2_records(np.ones(4, bool)))})
    evil = str(victim.with_suffix(""))  # an absolute "task name": joined onto a folder it escapes it

    def plant(results):
        results["config"]["limit"] = 4
        results["config"]["tasks"] = {evil: {"hash": parse_task(planted, "x").config_hash, "version": "1", "spec": planted}}
        results["tasks"] = {evil: results["tasks"]["sst2"]}
    _rewrite(base, plant)
    (base / "sst2.samples.jsonl").rename(base / "evil.samples.jsonl")
    cand = tmp_path / "cand"
    before = _snapshot(tmp_path, cand)
    code, line = _one_line(capsys, ["regress", "--baseline", str(base), "--model", str(STORIES), "--data-dir", str(DATA),
                                    "--output", str(cand), "--no-progress", "--device", "cpu"])
    assert code == 2 and "not a plain name" in line and "results.json" in line, line
    assert _snapshot(tmp_path, cand) == before, "no file outside the run's folders changed"
    assert victim.read_text() == "task: sst2  # someone else's task file\n"


# -- 2. regress takes no data directory from a results file ---------------------------------------------
def test_regress_never_takes_the_data_directory_from_the_baseline(tmp_path, capsys):
    spec = json.loads(json.dumps(parse_task({
        "task": "leak", "kind": "perplexity", "doc_to_text": "{{ page }}", "metrics": ["perplexity"],
        "dataset": {"local": {"path": "etc/passwd", "format": "text", "text_field": "page"}}}, "x").to_dict()))
    records = [{"doc_id": 0, "prompt": "x", "prediction": -10.0, "loglikelihood": -10.0, "tokens": 5, "words": 1, "bytes": 1}]
    base = write_run(tmp_path / "runs", "base", {"leak": (parse_task(spec, "x"), records)})
    _rewrite(base, lambda r: r["config"].update(data_dir="/", limit=2))
    cand = tmp_path / "cand"
    code, line = _one_line(capsys, ["regress", "--baseline", str(base), "--model", str(STORIES), "--output", str(cand),
                                    "--no-progress", "--device", "cpu"])
    assert code == 2 and "--data-dir" in line and "never takes a data directory from a results file" in line, line
    assert not cand.exists(), "nothing ran"
    # with the user's own data directory, that is where the file is looked for
    empty = tmp_path / "mydata"
    empty.mkdir()
    code, line = _one_line(capsys, ["regress", "--baseline", str(base), "--model", str(STORIES), "--data-dir", str(empty),
                                    "--output", str(cand), "--no-progress", "--device", "cpu"])
    assert code == 2 and f"{empty}/etc/passwd" in line and "not found" in line, line


# -- 3. the folders format stays inside --data-dir ------------------------------------------------------
FOLDERS_TASK = """task: reviews
kind: multiple_choice
dataset:
  local: {path: reviews, format: folders}
doc_to_text: "{{ text }}"
choices: [neg, pos]
doc_to_target: "{{ label }}"
metrics: [accuracy]
"""


def _folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    outside = tmp_path / "outside"
    (outside / "labels").mkdir(parents=True)
    (outside / "secret.txt").write_text("root:x:0:0:SECRET")
    (outside / "labels" / "0.txt").write_text("SECRET in a linked label folder")
    data = tmp_path / "data"
    for label in ("neg", "pos"):
        (data / "reviews" / label).mkdir(parents=True)
        (data / "reviews" / label / "0.txt").write_text(f"a {label} review")
    task = tmp_path / "reviews.yaml"
    task.write_text(FOLDERS_TASK)
    return data, outside, task


def test_a_file_symlink_out_of_the_data_directory_is_refused_in_the_folders_format(tmp_path, capsys):
    data, outside, task = _folders(tmp_path)
    (data / "reviews" / "pos" / "1.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(EvalkitError, match=r"pos/1.txt leads out of the data directory"):
        prepare_task(load_task_file(task), RunOptions(tasks=[str(task)], data_dir=str(data)))
    code, line = _one_line(capsys, ["run", "--tasks", str(task), "--data-dir", str(data), "--model", str(STORIES),
                                    "--output", str(tmp_path / "out"), "--no-progress", "--no-cache"])
    assert code == 2 and "leads out of the data directory" in line and "SECRET" not in line
    assert not (tmp_path / "out").exists()


def test_a_label_folder_symlink_out_of_the_data_directory_is_refused(tmp_path):
    data, outside, task = _folders(tmp_path)
    (data / "reviews" / "zzz").symlink_to(outside / "labels", target_is_directory=True)
    with pytest.raises(EvalkitError, match=r"reviews/zzz leads out of the data directory"):
        prepare_task(load_task_file(task), RunOptions(tasks=[str(task)], data_dir=str(data)))


def test_symlinks_inside_the_data_directory_still_work(tmp_path):
    data, _, task = _folders(tmp_path)
    (data / "reviews" / "pos" / "1.txt").symlink_to(data / "reviews" / "neg" / "0.txt")
    prepared = prepare_task(load_task_file(task), RunOptions(tasks=[str(task)], data_dir=str(data)))
    assert [d["text"] for d in prepared.docs] == ["a neg review", "a pos review", "a neg review"]


# -- 4. a hub path is a hub id ---------------------------------------------------------------------------
HUB_TASK = """task: hubby
kind: multiple_choice
dataset:
  hub: {{path: {path}, split: train}}
doc_to_text: "{{{{ sentence }}}}"
choices: [negative, positive]
doc_to_target: "{{{{ label }}}}"
metrics: [accuracy]
"""


def test_an_absolute_local_directory_is_not_a_hub_path(tmp_path, capsys):
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "train.jsonl").write_text('{"sentence": "PRIVATE", "label": 1}\n')
    task = tmp_path / "hubby.yaml"
    task.write_text(HUB_TASK.format(path=json.dumps(str(secret))))
    code, line = _one_line(capsys, ["validate", str(task)])
    assert code == 2 and "dataset.hub.path" in line and "not a hub dataset id" in line and "dataset.local" in line


def test_a_hub_id_that_is_also_a_local_folder_here_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "someorg" / "somedata"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text('{"sentence": "LOCAL, not the hub", "label": 1}\n')
    task = tmp_path / "hubby.yaml"
    task.write_text(HUB_TASK.format(path="someorg/somedata"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EvalkitError, match="also a path in the current folder"):
        prepare_task(load_task_file(task), RunOptions(tasks=[str(task)]))


# -- 6. a model that outputs NaN: an error of the run, counted per task ---------------------------------
@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("nan") / "stories-nan"
    model = AutoModelForCausalLM.from_pretrained(STORIES, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))  # every hidden state, so every logit, is NaN
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(STORIES).save_pretrained(folder)
    return folder


def test_nan_log_likelihoods_are_an_error_of_the_run_and_never_a_prediction(tmp_path, capsys, nan_model):
    out = tmp_path / "out"
    code = main(["run", "--tasks", "sst2,wikitext2", "--limit", "3", "--data-dir", str(DATA), "--model", str(nan_model),
                 "--output", str(out), "--no-progress", "--no-cache", "--device", "cpu", "--batch-size", "4"])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 3, captured.err
    assert len(lines) == 1 and "non-finite log-likelihoods" in lines[0], lines
    assert "sst2 (6 of 6 requests)" in lines[0] and "wikitext2 (3 of 3 requests)" in lines[0]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())  # written before the error
    assert results["tasks"]["sst2"]["nonfinite_loglikelihoods"] == 6
    assert results["tasks"]["wikitext2"]["nonfinite_loglikelihoods"] == 3
    for task in ("sst2", "wikitext2"):
        for metric in results["tasks"][task]["metrics"].values():
            assert math.isnan(metric["value"]) and "not finite" in metric["invalid"]
    samples = [json.loads(line) for line in (run_dir / "sst2.samples.jsonl").read_text().splitlines()]
    assert [s["prediction"] for s in samples] == [None, None, None], "no argmax over NaN"
    assert all(s["nonfinite"] and all(math.isnan(x) for x in s["loglikelihoods"]) for s in samples)
    assert "results:" in captured.out and "nan" in captured.out


# -- 7. one task name, one task ---------------------------------------------------------------------------
def test_two_different_tasks_with_one_name_are_refused(tmp_path, capsys):
    dup = tmp_path / "dup" / "sst2.yaml"
    dup.parent.mkdir()
    dup.write_text((Path(sst2_spec().source_file)).read_text().replace("Sentence:", "Text:"))
    code, line = _one_line(capsys, ["run", "--tasks", f"sst2,{dup}", "--limit", "2", "--data-dir", str(DATA),
                                    "--model", str(STORIES), "--output", str(tmp_path / "out"), "--no-progress"])
    assert code == 2 and "two tasks are named 'sst2'" in line and str(dup) in line
    assert not (tmp_path / "out").exists()


def test_the_same_task_twice_runs_once(tmp_path, stories_adapter):
    options = RunOptions(tasks=["sst2", "sst2", str(Path(sst2_spec().source_file))], limit=4, data_dir=str(DATA),
                         output=str(tmp_path / "out"), progress=False, cache_dir=str(tmp_path / "cache"))
    _, results = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
    assert list(results["tasks"]) == ["sst2"]
    cache = results["run"]["cache"]
    assert cache["hits"] + cache["misses"] == 8, "4 documents x 2 choices, asked for once"


# -- 8. model arguments: typed and range-checked before the model loads ---------------------------------
@pytest.mark.parametrize("arg, message", [
    ("max_length=-1", "max_length must be >= 1, got -1"),
    ("max_length=0", "max_length must be >= 1, got 0"),
    ("max_length=abc", "max_length must be an integer, got 'abc'"),
    ("max_length=1e9", "max_length must be an integer"),
    ("max_length=99999999999", "max_length must be <= 4194304"),
    ("kv_cache=fast", "kv_cache must be one of auto, static, dynamic"),
    ("device=cpu", "'device' is not a model argument; use --device"),
    ("colour=blue", "unknown model argument(s) colour"),
])
def test_model_arguments_are_typed_and_range_checked_before_anything_loads(tmp_path, capsys, monkeypatch, arg, message):
    import evalkit.adapters.hf.adapter as causal  # where every HF kind loads its model

    monkeypatch.setattr(causal, "load_model", lambda *a, **k: pytest.fail("the model must not load"))
    code, line = _one_line(capsys, ["run", "--tasks", "wikitext2", "--limit", "1", "--data-dir", str(DATA),
                                    "--model", str(STORIES), "--output", str(tmp_path / "out"), "--model-arg", arg])
    assert code == 2 and message in line, line


def test_the_adapter_checks_its_arguments_when_built_directly():
    from evalkit.adapters.hf.causal import HFCausalAdapter

    with pytest.raises(EvalkitError, match="max_length must be >= 1, got -1"):
        HFCausalAdapter(model=str(STORIES), max_length=-1, device="cpu")
    adapter = HFCausalAdapter(model=str(STORIES), max_length="64", device="cpu")  # a string from a config is converted
    assert adapter.max_length == 64
