"""Every broken input a user can cause gives one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.cli import main

from .conftest import DATA, ROOT, STORIES

GOOD = """
task: tiny
kind: multiple_choice
dataset:
  local: {path: data.jsonl, format: jsonl}
doc_to_text: "{{ sentence }}\\nAnswer:"
choices: [negative, positive]
doc_to_target: "{{ label }}"
metrics: [accuracy]
"""


def _run(capsys, argv: list[str]) -> tuple[int, list[str]]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def _task(tmp_path: Path, text: str, rows: str | None = '{"sentence": "good film", "label": 1}\n') -> Path:
    (tmp_path / "task.yaml").write_text(text)
    if rows is not None:
        (tmp_path / "data.jsonl").write_text(rows)
    return tmp_path / "task.yaml"


def _run_task(capsys, tmp_path, task: Path, data_dir: Path | None = None):
    return _run(capsys, ["run", "--tasks", str(task), "--data-dir", str(data_dir or tmp_path),
                         "--model", str(STORIES), "--output", str(tmp_path / "out"), "--no-progress"])


def test_good_task_file_validates(capsys, tmp_path):
    code = main(["validate", str(_task(tmp_path, GOOD))])
    assert code == 0
    assert "ok" in capsys.readouterr().out


def test_invalid_yaml(capsys, tmp_path):
    code, lines = _run(capsys, ["validate", str(_task(tmp_path, "task: [unclosed\nkind: x\n"))])
    assert code == 2 and len(lines) == 1
    assert "task.yaml" in lines[0] and "invalid YAML" in lines[0] and "line" in lines[0]


def test_unknown_metric(capsys, tmp_path):
    code, lines = _run(capsys, ["validate", str(_task(tmp_path, GOOD.replace("[accuracy]", "[acuracy]")))])
    assert code == 2 and len(lines) == 1
    assert "metrics[0].name" in lines[0] and "unknown metric 'acuracy'" in lines[0] and "accuracy" in lines[0]


def test_missing_required_field_names_file_and_field(capsys, tmp_path):
    code, lines = _run(capsys, ["validate", str(_task(tmp_path, GOOD.replace('doc_to_text: "{{ sentence }}\\nAnswer:"', "")))])
    assert code == 2 and len(lines) == 1
    assert "task.yaml" in lines[0] and "'doc_to_text'" in lines[0] and "required" in lines[0]


def test_template_field_the_data_lacks(capsys, tmp_path):
    code, lines = _run_task(capsys, tmp_path, _task(tmp_path, GOOD.replace("{{ sentence }}", "{{ review }}")))
    assert code == 2 and len(lines) == 1
    assert "'review' is undefined" in lines[0] and "sentence" in lines[0] and "doc 0" in lines[0]


def test_empty_dataset(capsys, tmp_path):
    code, lines = _run_task(capsys, tmp_path, _task(tmp_path, GOOD, rows=""))
    assert code == 2 and len(lines) == 1
    assert "empty" in lines[0] and "tiny" in lines[0]


def test_missing_data_file(capsys, tmp_path):
    code, lines = _run_task(capsys, tmp_path, _task(tmp_path, GOOD, rows=None))
    assert code == 2 and len(lines) == 1
    assert "data file not found" in lines[0] and "--data-dir" in lines[0]


def test_missing_shipped_data_names_the_layout(capsys, tmp_path):
    code, lines = _run(capsys, ["run", "--tasks", "sst2", "--data-dir", str(tmp_path), "--model", str(STORIES), "--no-progress"])
    assert code == 2 and len(lines) == 1
    assert "sst2/dev.tsv" in lines[0]


def test_unknown_task_name(capsys):
    code, lines = _run(capsys, ["run", "--tasks", "imbd", "--data-dir", str(DATA), "--model", str(STORIES), "--no-progress"])
    assert code == 2 and len(lines) == 1
    assert "unknown task 'imbd'" in lines[0] and "imdb" in lines[0]


def test_unknown_model_path(capsys, tmp_path):
    code, lines = _run(capsys, ["run", "--tasks", "sst2", "--limit", "2", "--data-dir", str(DATA),
                                "--model", "./no/such/model", "--output", str(tmp_path), "--no-progress"])
    assert code == 2 and len(lines) == 1
    assert "no/such/model" in lines[0]


def test_offline_hub_model_fails_fast_with_advice(capsys, tmp_path):
    code, lines = _run(capsys, ["run", "--tasks", "sst2", "--limit", "2", "--data-dir", str(DATA),
                                "--model", "gpt2", "--output", str(tmp_path), "--no-progress"])
    assert code == 2 and len(lines) == 1
    assert "gpt2" in lines[0] and "local model folder" in lines[0] and ".gguf" in lines[0]


def test_offline_hub_dataset_points_at_data_dir(capsys, tmp_path):
    code, lines = _run(capsys, ["run", "--tasks", "sst2", "--limit", "2", "--model", str(STORIES),
                                "--output", str(tmp_path), "--no-progress"])
    assert code == 2 and len(lines) == 1
    assert "--data-dir" in lines[0]


@pytest.mark.parametrize("bad", ["--limit=0", "--batch-size=zero"])
def test_bad_numbers(capsys, tmp_path, bad):
    with pytest.raises(SystemExit) as exc:
        rc, lines = _run(capsys, ["run", "--tasks", "sst2", bad, "--data-dir", str(DATA), "--model", str(STORIES),
                                  "--output", str(tmp_path), "--no-progress"])
        raise SystemExit(rc)
    assert exc.value.code == 2


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    bad = _task(tmp_path, GOOD.replace("[accuracy]", "[bleu]"))
    proc = subprocess.run([sys.executable, "-m", "evalkit", "validate", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "unknown metric 'bleu' for kind multiple_choice" in proc.stderr
