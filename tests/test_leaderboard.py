"""Leaderboard: the tidy DataFrame read from real result files, latest-run selection, few-shot rows, win rate,
and the CSV / Markdown / HTML exports, through the API and the CLI."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from .conftest import DATA, STORIES
from .resultfiles import copy_run, metric_rows

import evalkit
from evalkit.cli import main
from evalkit.leaderboard import MISSING, WIN_RATE, build_board, latest, pivot, select

DAY0 = "2026-01-01T10:00:00+00:00"


def _value(run_dir: Path, task: str, metric: str) -> float:
    return next(m["value"] for t, name, m in metric_rows(run_dir) if (t, name) == (task, metric))


@pytest.fixture(scope="module")
def two_models(stories_run, tmp_path_factory):
    """Model A (the real stories run) and a model B whose every metric is A's + 1."""
    root = tmp_path_factory.mktemp("two-models")
    a = copy_run(stories_run[0], root, "run-a", created=DAY0)
    b = copy_run(stories_run[0], root, "run-b", created="2026-01-01T11:00:00+00:00",
                 model={"spec": "/ckpt/other-model", "location": "/ckpt/other-model", "sha256": "b" * 64},
                 value=lambda _t, _m, v: v + 1.0)
    return root, a, b


@pytest.fixture(scope="module")
def history(stories_run, stories_adapter, tmp_path_factory):
    """One model with an old run, a full run, a newer sst2-only run, and a real 1-shot sst2 run."""
    from evalkit.engine import RunOptions, evaluate

    root = tmp_path_factory.mktemp("history")
    old = copy_run(stories_run[0], root, "run-old", created="2025-12-01T10:00:00+00:00", tasks=["sst2"],
                   value=lambda _t, _m, _v: 0.0123)
    full = copy_run(stories_run[0], root, "run-full", created=DAY0)
    newer = copy_run(stories_run[0], root, "run-newer-sst2", created="2026-01-02T10:00:00+00:00", tasks=["sst2"],
                     value=lambda _t, _m, v: v / 2)
    options = RunOptions(tasks=["sst2"], limit=12, fewshot=1, data_dir=str(DATA), output=str(root), progress=False,
                         batch_size=16, model=str(STORIES), bootstrap_iters=100)
    fewshot_dir, _ = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
    return root, {"old": old, "full": full, "newer": newer, "fewshot": fewshot_dir}


def test_tidy_frame_matches_the_result_files(stories_run):
    run_dir, _ = stories_run
    results = json.loads((run_dir / "results.json").read_text())
    df = evalkit.leaderboard(run_dir)
    expected = metric_rows(run_dir)
    assert len(df) == len(expected) == sum(len(t["metrics"]) for t in results["tasks"].values())
    rows = {(r.task, r.metric): r for r in df.itertuples(index=False)}
    for task, metric, m in expected:
        row = rows[(task, metric)]
        assert row.value == pytest.approx(m["value"], nan_ok=True)
        assert row.stderr == pytest.approx(m["stderr"], nan_ok=True)
        assert row.higher_is_better == m["higher_is_better"]
        assert row.scale == m["scale"]
        assert row.n == results["tasks"][task]["n"]
        assert row.seconds == results["tasks"][task]["seconds"]
        assert row.task_hash == results["config"]["tasks"][task]["hash"]
    assert set(df["run_id"]) == {results["run_id"]}
    assert set(df["model"]) == {"stories260K-hf"}
    assert set(df["model_revision"]) == {results["model"]["sha256"]}
    assert df["created"].iloc[0] == pd.Timestamp(results["created"])
    assert df["fewshot"].isna().all()
    perplexity = df["task"] == "wikitext2"
    assert df.loc[perplexity, "task_fewshot"].isna().all() and (df.loc[~perplexity, "task_fewshot"] == 0).all()
    assert not (df["higher_is_better"][perplexity]).any() and df["higher_is_better"][~perplexity].all()


def test_evalkit_leaderboard_is_lazy_and_callable_in_any_import_order():
    code = ("import sys, evalkit; assert 'pandas' not in sys.modules; "
            "import evalkit.analysis.report; from evalkit import leaderboard; "
            "assert callable(evalkit.leaderboard) and callable(leaderboard.pivot); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_latest_run_per_task_wins_and_all_keeps_every_run(history):
    root, runs = history
    df = evalkit.leaderboard(root)
    zero_shot = pivot(df).loc["stories260K-hf"]
    assert zero_shot[("sst2", "accuracy")] == pytest.approx(_value(runs["newer"], "sst2", "accuracy"))
    assert zero_shot[("imdb", "accuracy")] == pytest.approx(_value(runs["full"], "imdb", "accuracy"))
    assert 0.0123 not in set(latest(df)["value"])
    every = pivot(df, all_runs=True)
    assert len(every) == 4
    assert every.loc[("stories260K-hf", "run-old"), ("sst2", "f1")] == pytest.approx(0.0123)
    assert math.isnan(every.loc[("stories260K-hf", "run-old"), ("imdb", "accuracy")])


def test_a_fewshot_run_gets_its_own_row(history):
    root, runs = history
    board = build_board(evalkit.leaderboard(root))
    assert set(board.values.index) == {"stories260K-hf", "stories260K-hf (1-shot)"}
    assert board.values.loc["stories260K-hf (1-shot)", ("sst2", "accuracy")] == pytest.approx(
        _value(runs["fewshot"], "sst2", "accuracy"))
    assert board.values.loc["stories260K-hf", ("sst2", "accuracy")] == pytest.approx(
        _value(runs["newer"], "sst2", "accuracy"))
    assert "different task configs" not in board.note  # zero- and 1-shot differ only in the shot count
    shown = board.display().set_index("model")
    assert shown.loc["stories260K-hf (1-shot)", "imdb/accuracy"] == MISSING
    assert shown.loc["stories260K-hf (1-shot)", "tasks"] == "1/5" and shown.loc["stories260K-hf", "tasks"] == "5/5"
    assert " ± " in shown.loc["stories260K-hf (1-shot)", "sst2/accuracy"]


def test_win_rate_follows_higher_is_better(two_models):
    root, a, _b = two_models
    board = build_board(evalkit.leaderboard(root))
    # B is A + 1 everywhere: it wins the four higher-is-better tasks and loses wikitext2 (perplexity).
    assert list(board.win_rate.index) == ["other-model", "stories260K-hf"]
    assert board.win_rate["other-model"] == pytest.approx(4 / 5)
    assert board.win_rate["stories260K-hf"] == pytest.approx(1 / 5)
    only_ppl = build_board(select(evalkit.leaderboard(root), tasks=["wikitext2"]))
    assert only_ppl.win_rate.to_dict() == {"stories260K-hf": 1.0, "other-model": 0.0}
    by_ppl = build_board(evalkit.leaderboard(root), sort="wikitext2/word_perplexity")
    assert list(by_ppl.values.index) == ["stories260K-hf", "other-model"]
    by_bleu = build_board(evalkit.leaderboard(root), sort="bleu")
    assert list(by_bleu.values.index) == ["other-model", "stories260K-hf"]
    assert board.values.loc["stories260K-hf", ("sst2", "f1")] == pytest.approx(_value(a, "sst2", "f1"))


def test_csv_round_trip(two_models):
    root, a, _b = two_models
    board = build_board(evalkit.leaderboard(root))
    back = pd.read_csv(io.StringIO(board.to_csv())).set_index("model")
    assert list(back.index) == list(board.values.index)
    for (task, metric) in board.values.columns:
        assert back[f"{task}/{metric}"].tolist() == pytest.approx(board.values[(task, metric)].tolist())
        assert back[f"{task}/{metric} stderr"].tolist() == pytest.approx(board.stderrs[(task, metric)].tolist())
    assert back.loc["stories260K-hf", "xsum/rougeL"] == pytest.approx(_value(a, "xsum", "rougeL"))
    assert back[WIN_RATE].tolist() == pytest.approx([0.8, 0.2])


def test_markdown_table(history, tmp_path):
    root, _runs = history
    copy_run(next(Path(root).glob("run-full")), tmp_path, "run-pipe", model={"spec": "org/we|rd", "source": "hub"})
    copy_run(next(Path(root).glob("run-full")), tmp_path, "run-plain", created=DAY0)
    text = build_board(evalkit.leaderboard(tmp_path)).to_markdown()
    lines = text.splitlines()
    assert lines[0].startswith("| model | win rate | tasks | imdb/accuracy | imdb/f1 |")
    assert set(lines[1]) <= set("|:-") and lines[1].count("|") == lines[0].count("|")
    body = [line for line in lines[2:] if line.startswith("|")]
    assert len(body) == 2
    assert any(line.startswith("| org/we\\|rd |") for line in body)
    for line in body:  # the escaped pipe does not add a column
        assert line.replace("\\|", "").count("|") == lines[0].count("|")
        assert line.count(" ± ") == len(lines[0].split("|")) - 5 and "| 5/5 |" in line
    assert "win rate:" in text.splitlines()[-1]


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_data(self, data):
        if self.rows and self.rows[-1] and self.tags and self.tags[-1] in ("td", "th"):
            self.rows[-1][-1] += data.strip()


def test_html_export_escapes_model_names(two_models, tmp_path):
    root, _a, _b = two_models
    copy_run(root / "run-a", tmp_path, "run-x", model={"spec": "<b>bold</b>", "source": "hub"})
    parser = _Cells()
    parser.feed(build_board(evalkit.leaderboard(tmp_path)).to_html())
    assert "b" not in parser.tags
    assert parser.rows[0][:2] == ["model", "win rate"] and len(parser.rows) == 2
    assert parser.rows[1][0] == "<b>bold</b>"


def test_cli_formats_and_output_file(two_models, tmp_path, capsys):
    root, _a, _b = two_models
    assert main(["leaderboard", str(root), "--format", "md", "--tasks", "sst2,imdb", "--metrics", "accuracy"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "| model | win rate | tasks | imdb/accuracy | sst2/accuracy |"
    assert main(["leaderboard", str(root)]) == 0
    table = capsys.readouterr().out
    assert "other-model" in table and "wikitext2/word_perplexity" in table and "win rate:" in table
    target = tmp_path / "board.csv"
    assert main(["leaderboard", str(root), "-o", str(target), "--all"]) == 0
    assert "wrote" in capsys.readouterr().err
    assert list(pd.read_csv(target)["run_id"]) == ["run-b", "run-a"]


@pytest.mark.parametrize("args, message", [
    (["--sort", "nope"], "--sort nope is not in the table"),
    (["--sort", "accuracy"], "--sort accuracy is ambiguous"),
    (["--tasks", "nope"], "unknown task nope"),
    (["--metrics", "nope"], "unknown metric nope"),
])
def test_cli_user_errors(two_models, capsys, args, message):
    root, _a, _b = two_models
    assert main(["leaderboard", str(root), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_empty_results_directory(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalkit: error: no ") and err.count("\n") == 1
    assert main(["leaderboard", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err


def test_different_task_configs_are_flagged(two_models, tmp_path):
    root, a, _b = two_models
    copy_run(a, tmp_path, "run-a")
    changed = copy_run(a, tmp_path, "run-c", model={"spec": "/ckpt/c", "location": "/ckpt/c"})
    results = json.loads((changed / "results.json").read_text())
    results["config"]["tasks"]["sst2"]["spec"]["doc_to_text"] = "{{ sentence }}\nSentiment:"
    (changed / "results.json").write_text(json.dumps(results))
    note = build_board(evalkit.leaderboard(tmp_path)).note
    assert "Warning: sst2 was run with 2 different task configs" in note and "imdb was run" not in note


def _smoke_copy(src: Path, root: Path, run_id: str, created: str, model: dict | None = None) -> Path:
    """A copy of `src` made to look like a 10-document bf16 smoke run (limit 10, n 10, other values)."""
    dest = copy_run(src, root, run_id, created=created, model={"dtype": "bfloat16", **(model or {})},
                    value=lambda _t, _m, v: v * 0.5)
    results = json.loads((dest / "results.json").read_text())
    results["config"]["limit"] = 10
    for task in results["tasks"].values():
        task["n"] = 10
    (dest / "results.json").write_text(json.dumps(results))
    return dest


def test_a_newer_10_document_bf16_smoke_run_does_not_replace_the_full_fp32_run(stories_run, tmp_path):
    """Issue 9 item 9: "latest run wins" let a 10-document bf16 smoke run replace an 872-document fp32 run silently."""
    full = copy_run(stories_run[0], tmp_path, "run-full", created=DAY0, model={"dtype": "float32"})
    _smoke_copy(stories_run[0], tmp_path, "run-smoke", "2026-01-05T10:00:00+00:00")
    df = evalkit.leaderboard(tmp_path)
    board = build_board(df)
    assert board.values.loc["stories260K-hf", ("sst2", "accuracy")] == pytest.approx(_value(full, "sst2", "accuracy"))
    assert set(latest(df)["run_id"]) == {"run-full"}
    assert ("Note: stories260K-hf / sst2: 1 newer run(s) of another setup set aside (n=10, dtype bfloat16, limit 10); "
            "shown: the run with n=40, dtype float32") in board.note
    assert "Documents per task (n): imdb 40, sst2 40" in board.note and "not like for like" not in board.note
    assert "(n=" not in board.to_text().split("\n\n")[0]


def test_a_column_that_mixes_setups_is_warned_about_and_shows_n(stories_run, tmp_path):
    copy_run(stories_run[0], tmp_path, "run-full", created=DAY0, model={"dtype": "float32"})
    _smoke_copy(stories_run[0], tmp_path, "run-other", "2026-01-05T10:00:00+00:00",
                model={"spec": "/ckpt/other", "location": "/ckpt/other", "sha256": "c" * 64})
    board = build_board(evalkit.leaderboard(tmp_path))
    assert ("Warning: sst2 rows are not like for like (n 40 / 10; limit 40 / 10; dtype float32 / bfloat16)"
            in board.note)
    shown = board.display().set_index("model")
    assert shown.loc["other", "sst2/accuracy"].endswith("(n=10)")
    assert shown.loc["stories260K-hf", "sst2/accuracy"].endswith("(n=40)")
    back = pd.read_csv(io.StringIO(board.to_csv())).set_index("model")
    assert back.loc["other", "sst2/accuracy n"] == 10 and back.loc["stories260K-hf", "sst2/accuracy n"] == 40


def test_a_shared_setup_is_preferred_over_a_larger_unshared_one(stories_run, tmp_path):
    """Model A has a smoke run and a full run, model B only a smoke run: the column compares the smoke runs."""
    copy_run(stories_run[0], tmp_path, "run-a-full", created="2026-01-06T10:00:00+00:00", model={"dtype": "float32"})
    smoke_a = _smoke_copy(stories_run[0], tmp_path, "run-a-smoke", DAY0)
    _smoke_copy(stories_run[0], tmp_path, "run-b-smoke", DAY0, model={"spec": "/ckpt/b", "location": "/ckpt/b", "sha256": "d" * 64})
    board = build_board(evalkit.leaderboard(tmp_path))
    assert board.values.loc["stories260K-hf", ("sst2", "accuracy")] == pytest.approx(_value(smoke_a, "sst2", "accuracy"))
    assert "not like for like" not in board.note
    assert "stories260K-hf / sst2: 1 newer run(s) of another setup set aside (n=40, dtype float32, limit 40)" in board.note
