"""`evalkit regress`: spec validation (no model), and real candidate runs on stories260K."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from evalkit.cli import main
from evalkit.engine import RunOptions, evaluate
from evalkit.results import find_runs, read_results
from evalkit.tasks import resolve_task

from .conftest import DATA, ROOT, STORIES
from .fake_runs import sst2_records, sst2_spec, write_run


@pytest.fixture()
def fake_baseline(tmp_path):
    return write_run(tmp_path / "runs", "base", {"sst2": (sst2_spec(), sst2_records(np.ones(20, bool)))})


def write_spec(folder: Path, text: str) -> Path:
    path = folder / "regress.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,expected", [
    ("baseline: runs/base\ntolerance: {accuracy: 0.1}\n", "field 'tolerance': unknown field"),
    ("tasks: [sst2]\n", "field 'baseline': is required"),
    ("baseline: runs/nope\n", "field 'baseline': no results.json in"),
    ("baseline: runs/base\ntasks: [imdb]\n", "field 'tasks': the baseline run has no task 'imdb'"),
    ("baseline: runs/base\nmetrics: [bleu]\n", "field 'metrics': the baseline's tasks do not report 'bleu'"),
    ("baseline: runs/base\ntolerances: {accuracy: lots}\n", "field 'tolerances.accuracy': must be a number >= 0"),
    ("baseline: runs/base\ntolerances: {acc: 0.1}\n", "field 'tolerances': 'acc' is not a metric"),
    ("baseline: runs/base\nalpha: 5\n", "field 'alpha': must be between 0 and 1"),
    ("baseline: runs/base\niterations: 10\n", "field 'iterations': must be at least 100"),
    ("baseline: [runs/base\n", "invalid YAML"),
    ("- just a list\n", "must be a mapping"),
])
def test_spec_errors_are_one_line_naming_file_and_field(tmp_path, fake_baseline, capsys, text, expected):
    spec = write_spec(tmp_path, text)
    assert main(["regress", str(spec), "--model", str(STORIES)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"evalkit: error: {spec}") and expected in err and "\n" not in err, err


def test_regress_argument_errors(tmp_path, fake_baseline, capsys):
    spec = write_spec(tmp_path, "baseline: runs/base\n")
    for args, expected in [([str(spec), "--baseline", str(fake_baseline), "--model", "m"], "exactly one"),
                           ([], "exactly one"), ([str(spec)], "needs the candidate model"),
                           ([str(tmp_path / "none.yaml"), "--model", "m"], "regression spec not found")]:
        assert main(["regress", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err, err


def test_regress_reuses_the_baseline_config_limit_and_documents(tmp_path, stories_adapter, one_thread, capsys):
    """A baseline made with --fewshot 1 (a config unlike tasks/sst2.yaml): the candidate gets the same one."""
    options = RunOptions(tasks=["sst2"], model=str(STORIES), limit=30, fewshot=1, seed=7, data_dir=str(DATA),
                         output=str(tmp_path / "runs"), batch_size=16, device="cpu", progress=False, bootstrap_iters=50)
    base_dir, base = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
    assert base["config"]["tasks"]["sst2"]["hash"] != resolve_task("sst2").config_hash
    spec = write_spec(tmp_path, f"baseline: runs/{base_dir.name}\ntolerances: {{accuracy: 0.05}}\niterations: 100\n")
    code = main(["regress", str(spec), "--model", str(STORIES), "--output", str(tmp_path / "cand"), "--data-dir", str(DATA),
                 "--device", "cpu", "--batch-size", "16", "--no-progress", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "differs from the baseline's config of 'sst2'" in captured.err
    (cand_dir,) = find_runs(tmp_path / "cand")
    cand = read_results(cand_dir)
    assert cand["config"]["tasks"]["sst2"]["hash"] == base["config"]["tasks"]["sst2"]["hash"]
    assert (cand["config"]["limit"], cand["config"]["fewshot"], cand["config"]["seed"]) == (30, 1, 7)
    assert cand["tasks"]["sst2"]["doc_ids"] == base["tasks"]["sst2"]["doc_ids"]
    report = json.loads(captured.out)
    assert [(m["metric"], m["p_value"], m["verdict"]) for m in report["metrics"]] == [
        ("accuracy", 1.0, "no significant change"), ("f1", 1.0, "no significant change")]


def test_regress_flags_a_damaged_checkpoint(tmp_path, stories_adapter, one_thread, capsys):
    """stories260K with noise added to its weights scores worse on wikitext2: exit 1, every perplexity regressed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    damaged = tmp_path / "damaged"
    model = AutoModelForCausalLM.from_pretrained(STORIES, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.5 * param.std())
    model.save_pretrained(damaged)
    AutoTokenizer.from_pretrained(STORIES).save_pretrained(damaged)
    options = RunOptions(tasks=["wikitext2"], model=str(STORIES), limit=4, data_dir=str(DATA),
                         output=str(tmp_path / "runs"), batch_size=16, device="cpu", progress=False)
    base_dir, _ = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
    code = main(["regress", "--baseline", str(base_dir), "--model", str(damaged), "--output", str(tmp_path / "cand"),
                 "--data-dir", str(DATA),
                 "--device", "cpu", "--batch-size", "16", "--no-progress", "--iterations", "200"])
    out = capsys.readouterr().out
    print(out)
    assert code == 1
    assert out.count("REGRESSED") == 4 and "result: REGRESSION" in out


def test_make_regress_passes_baseline_model_and_tolerances():
    dry = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "regress", "BASELINE=results/run-a", "MODEL=ckpt/new",
                          "TOLERANCE=accuracy=0.01 bits_per_byte=2%"], capture_output=True, text=True, check=True).stdout
    assert 'evalkit regress --baseline "results/run-a" --model "ckpt/new"' in dry
    assert '--tolerance "accuracy=0.01" --tolerance "bits_per_byte=2%"' in dry
