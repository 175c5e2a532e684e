"""The benchmark script's plumbing (arguments, lm-eval task files, tables), without running a model."""

from __future__ import annotations

import json

import pytest
import yaml

from bench.run import agreement, limit_for, parse_args
from bench.table import markdown, summarize
from bench.workloads import WORKLOADS, selected_docs, write_lm_eval_task

from .conftest import DATA


def test_defaults_and_flags():
    args = parse_args([])
    assert args.models == ["gpt2-16m", "smollm2"] and args.workloads == ["wikitext2", "sst2", "xsum"]
    assert args.sides == ["evalkit", "lm-eval", "raw"] and args.dtype == "float32" and args.batch_size == 16
    assert limit_for(args, "smollm2", "xsum") < limit_for(args, "gpt2-16m", "xsum")
    args = parse_args(["--models", "gpt2-124m", "--device", "cuda", "--limit-sst2", "7", "--sides", "evalkit,raw"])
    assert args.dtype == "bfloat16" and limit_for(args, "gpt2-124m", "sst2") == 7 and args.sides == ["evalkit", "raw"]


@pytest.mark.parametrize("flag", ["--models", "--workloads", "--sides"])
def test_unknown_names_are_refused(flag, capsys):
    with pytest.raises(SystemExit, match=flag):
        parse_args([flag, "nope"])


def test_lm_eval_task_files_hold_the_same_documents(tmp_path):
    pytest.importorskip("lm_eval")
    for name, workload in WORKLOADS.items():
        docs = selected_docs(name, str(DATA), 3)
        task = write_lm_eval_task(workload, docs, tmp_path / name)
        rows = [json.loads(line) for line in (tmp_path / name / f"{task}.jsonl").read_text().splitlines()]
        assert len(rows) == 3
        if name == "wikitext2":
            assert rows[0]["page"] == docs[0]["page"]
            assert (tmp_path / name / "preprocess_wikitext.py").is_file()
        else:
            config = yaml.safe_load((tmp_path / name / f"{task}.yaml").read_text())
            assert config["dataset_kwargs"]["data_files"]["test"].endswith(".jsonl")
            if name == "xsum":
                assert config["generation_kwargs"]["max_gen_toks"] == 64 and rows[1]["summary"] == docs[1]["summary"]


def _run(side, infer, rss, score, repeat=0, **extra):
    return {"model": "m", "workload": "sst2", "side": side, "repeat": repeat, "infer_s": infer, "wall_s": infer + 1,
            "peak_rss_mb": rss, "score": score, **extra}


def test_table_reports_medians_and_ratios():
    runs = [_run("evalkit", 1.0, 500, 0.8, work_tokens=1000), _run("evalkit", 3.0, 510, 0.8, 1, work_tokens=1000),
            _run("evalkit", 2.0, 505, 0.8, 2, work_tokens=1000),
            _run("lm-eval", 5.0, 1000, 0.8), _run("lm-eval", 4.0, 1000, 0.8, 1), _run("lm-eval", 6.0, 1000, 0.8, 2),
            _run("raw", 3.0, 800, 0.8)]
    (row,) = summarize(runs, {("m", "sst2"): "accuracy 0.8 vs 0.8"})
    assert row["sides"]["evalkit"]["infer_s"] == 2.0 and row["sides"]["evalkit"]["tokens_per_s"] == 500
    assert row["vs_lm_eval"]["speed"] == pytest.approx(2.5) and row["vs_lm_eval"]["rss"] == pytest.approx(0.505)
    assert row["vs_raw"]["speed"] == pytest.approx(1.5)
    text = markdown([row], "## header")
    assert "| m | sst2 | lm-eval | 5.00 |" in text and "2.50x" in text and "accuracy 0.8 vs 0.8" in text


def test_agreement_lines():
    ours = {"score": 0.5, "loglikelihoods": [[-1.0, -2.0]], "predictions": ["a", "b"]}
    theirs = {"score": 0.5, "loglikelihoods": [[-1.00001, -2.0]], "predictions": ["a", "c"]}
    assert "1.0e-05" in agreement("sst2", ours, theirs)
    assert "1/2 generations identical" in agreement("xsum", ours, theirs)
    assert "relative difference 0.0e+00" in agreement("wikitext2", ours, theirs)
