"""Metric names and options in task files (issue 9 items 5 and 6, issue 14's metric options).

Item 5: `f1` macro and `f1` micro in one task kept only micro, and `evalkit tasks` showed
"accuracy, f1, f1". Item 6: `postive: negative` passed validate and run, and F1 was then computed
for the wrong class. Issue 14: an unknown `tokenize`, an unknown `smooth_method`, `char_order:
3000000` and `use_stemmer: "false"` (a string: true) must each be one line and exit 2 from validate
and from run, before any model loads.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rouge_score import rouge_scorer
from sklearn.metrics import f1_score

from evalkit.cli import main
from evalkit.engine import score_records
from evalkit.tasks import load_task_file, parse_task

from .conftest import ROOT
from .test_task_errors import GOOD

MC = GOOD.replace("metrics: [accuracy]\n", "")  # the multiple-choice task of test_task_errors, metrics to come
GEN = """
task: tinygen
kind: generate
dataset:
  local: {path: data.jsonl, format: jsonl}
doc_to_text: "{{ sentence }}\\nAnswer:"
doc_to_target: "{{ label }}"
"""


def _task(tmp_path: Path, head: str, metrics: str) -> Path:
    (tmp_path / "data.jsonl").write_text('{"sentence": "good film", "label": 1}\n')
    path = tmp_path / "task.yaml"
    path.write_text(head + f"metrics: {metrics}\n")
    return path


def _cli(capsys, argv: list[str]) -> tuple[int, list[str]]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def _validate_and_run(capsys, tmp_path: Path, task: Path) -> list[tuple[int, list[str]]]:
    """`validate`, then `run` with a model path that does not exist: the task's error must come first."""
    return [_cli(capsys, ["validate", str(task)]),
            _cli(capsys, ["run", "--tasks", str(task), "--data-dir", str(tmp_path), "--model", str(tmp_path / "no-model"),
                          "--output", str(tmp_path / "out"), "--no-progress"])]


def _records(n: int = 200, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    names = ("negative", "positive")
    gold = rng.choice(2, n, p=[0.7, 0.3])
    pred = np.where(rng.random(n) < 0.6, gold, 1 - gold)
    return [{"doc_id": i, "gold": names[g], "prediction": names[p]} for i, (g, p) in enumerate(zip(gold, pred))]


def test_f1_macro_and_f1_micro_in_one_task_both_survive_not_accuracy_f1_f1(tmp_path, capsys, monkeypatch):
    metrics = "[accuracy, {name: f1, options: {average: macro}}, {name: f1, as: f1_micro, options: {average: micro}}]"
    spec = load_task_file(_task(tmp_path, MC, metrics))
    records = _records()
    values = score_records(spec, records, bootstrap_iters=0, seed=1234)
    gold, pred = [r["gold"] for r in records], [r["prediction"] for r in records]
    macro = f1_score(gold, pred, average="macro", labels=["negative", "positive"])
    micro = f1_score(gold, pred, average="micro", labels=["negative", "positive"])
    assert macro != pytest.approx(micro)
    assert set(values) == {"accuracy", "f1", "f1_micro"}
    assert values["f1"]["value"] == pytest.approx(macro, abs=1e-12) and values["f1"]["average"] == "macro"
    assert values["f1_micro"]["value"] == pytest.approx(micro, abs=1e-12) and values["f1_micro"]["average"] == "micro"
    assert values["f1_micro"]["metric"] == "f1"

    monkeypatch.setenv("EVALKIT_TASKS_DIR", str(tmp_path))
    (tmp_path / "tiny.yaml").write_text((tmp_path / "task.yaml").read_text())
    assert main(["tasks"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("tiny "))
    assert "accuracy, f1, f1_micro" in line and "f1, f1 " not in line


def test_a_family_with_several_values_is_reported_under_alias_dot_value(tmp_path):
    spec = load_task_file(_task(tmp_path, GEN, "[rouge, {name: rouge, as: rouge_raw, options: {use_stemmer: false}}]"))
    records = [{"doc_id": 0, "prediction": "The cats were running home.", "references": ["A cat runs to its home."]},
               {"doc_id": 1, "prediction": "Stocks fell sharply.", "references": ["Stock prices falling sharply."]}]
    values = score_records(spec, records, bootstrap_iters=0, seed=1234)
    for stem, prefix in ((True, ""), (False, "rouge_raw.")):
        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=stem)
        for key in ("rouge1", "rouge2"):
            expected = 100 * np.mean([scorer.score(r["references"][0], r["prediction"])[key].fmeasure for r in records])
            assert values[prefix + key]["value"] == pytest.approx(expected, abs=1e-9)
    assert values["rouge1"]["value"] != pytest.approx(values["rouge_raw.rouge1"]["value"])  # the stemmer matters here
    assert set(records[0]["scores"]) >= {"rouge1", "rouge_raw.rouge1"}


def test_f1_listed_twice_is_refused_by_validate_with_one_line(tmp_path, capsys):
    task = _task(tmp_path, MC, "[accuracy, f1, f1]")
    code, lines = _cli(capsys, ["validate", str(task)])
    assert code == 2 and len(lines) == 1
    assert "task.yaml" in lines[0] and "metrics[2]" in lines[0] and "listed twice" in lines[0]


def test_two_f1_with_different_options_need_distinct_names(tmp_path, capsys):
    task = _task(tmp_path, MC, "[{name: f1, options: {average: macro}}, {name: f1, options: {average: micro}}]")
    for code, lines in _validate_and_run(capsys, tmp_path, task):
        assert code == 2 and len(lines) == 1
        assert "task.yaml" in lines[0] and "metrics[1]" in lines[0] and "as:" in lines[0] and "f1_micro" in lines[0]


def test_misspelt_option_postive_negative_is_refused_by_validate_and_run(tmp_path, capsys):
    task = _task(tmp_path, MC, "[accuracy, {name: f1, options: {average: binary, postive: negative}}]")
    for code, lines in _validate_and_run(capsys, tmp_path, task):
        assert code == 2 and len(lines) == 1
        assert "task.yaml" in lines[0] and "metrics[1].options.postive" in lines[0]
        assert "unknown option" in lines[0] and "positive" in lines[0]


@pytest.mark.parametrize("metric, field, words", [
    ("{name: bleu, options: {tokenize: 14a}}", "options.tokenize", "13a"),
    ("{name: bleu, options: {smooth_method: expo}}", "options.smooth_method", "exp"),
    ("{name: chrf, options: {char_order: 3000000}}", "options.char_order", "between 0 and 20"),
    ("{name: rouge, options: {use_stemmer: \"false\"}}", "options.use_stemmer", "true or false"),
    ("{name: f1, options: {average: binary, positive: neutral}}", "options", "neutral"),
    ("{name: f1, options: {average: weighted, positive: positive}}", "options", "binary only"),
])
def test_bad_metric_options_are_one_line_from_validate_and_run(tmp_path, capsys, metric, field, words):
    head = MC if "f1" in metric else GEN
    task = _task(tmp_path, head, f"[{metric}]")
    for code, lines in _validate_and_run(capsys, tmp_path, task):
        assert code == 2 and len(lines) == 1, lines
        assert "task.yaml" in lines[0] and f"metrics[0].{field}" in lines[0] and words in lines[0]
        assert "no-model" not in lines[0]  # refused before the model was looked at
    assert not (tmp_path / "out").exists()


def test_a_bad_option_through_the_real_command_has_no_traceback(tmp_path):
    task = _task(tmp_path, GEN, '[{name: chrf, options: {char_order: 3000000}}]')
    proc = subprocess.run([sys.executable, "-m", "evalkit", "validate", str(task)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "char_order" in proc.stderr


def test_declared_sacrebleu_choices_are_the_installed_sacrebleu_ones():
    from sacrebleu.metrics import BLEU

    from evalkit.metrics.translation import SMOOTH_METHODS, TOKENIZERS

    assert set(TOKENIZERS) == set(BLEU.TOKENIZERS)
    assert set(SMOOTH_METHODS) == set(BLEU.SMOOTH_DEFAULTS)


def test_every_declared_option_is_a_keyword_of_the_scoring_library():
    import inspect

    from sacrebleu.metrics import BLEU, CHRF, TER

    from evalkit.metrics import metric_class

    for name, cls in (("bleu", BLEU), ("chrf", CHRF), ("ter", TER)):
        assert set(metric_class(name).OPTIONS) <= set(inspect.signature(cls.__init__).parameters), name


def test_reading_a_task_file_imports_no_metric_library(tmp_path):
    task = _task(tmp_path, GEN, "[bleu, chrf, rouge, squad_f1]")
    code = ("import sys; from evalkit.tasks import load_task_file; load_task_file(sys.argv[1]); "
            "print(sorted(m for m in ('sacrebleu', 'rouge_score', 'sklearn', 'evaluate', 'pysbd') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(task)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_unaliased_specs_keep_their_config_hash():
    """Adding `as:` must not change the hash of task files that do not use it (old runs stay comparable)."""
    raw = {"task": "t", "kind": "multiple_choice", "dataset": {"local": {"path": "d.jsonl", "format": "jsonl"}},
           "doc_to_text": "{{ text }}", "choices": ["no", "yes"], "doc_to_target": "{{ label }}",
           "metrics": ["accuracy", {"name": "f1", "options": {"average": "macro"}}]}
    spec = parse_task(raw, "t.yaml")
    assert spec.to_dict()["metrics"] == [{"name": "accuracy", "options": {}}, {"name": "f1", "options": {"average": "macro"}}]
    assert "files" not in spec.to_dict()["dataset"]["local"]
