"""Third-party metrics (issue 9 item 18): the `evalkit.metrics` entry-point group, and the bridge
that runs any Hugging Face `evaluate` module as a task metric, with bootstrap standard errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.analysis.compare import compare_runs
from evalkit.cli import main
from evalkit.engine import RunOptions, evaluate, score_records
from evalkit.errors import EvalkitError
from evalkit.metrics import build_metric
from evalkit.results import read_samples
from evalkit.tasks import load_task_file

from .conftest import STORIES

PLUGIN = '''
import numpy as np

from evalkit.metrics import Option, SampleCorpusMetric


class LengthRatio(SampleCorpusMetric):
    """Corpus length ratio: total prediction length / total reference length (not a mean of ratios)."""

    names = ("length_ratio",)
    kinds = ("generate",)
    statistics = ("pred_len", "ref_len")
    OPTIONS = {"unit": Option(str, choices=("chars", "words"))}

    def sample(self, record):
        size = len if self.options.get("unit", "words") == "chars" else (lambda s: len(s.split()))
        return {"pred_len": size(record["prediction"]), "ref_len": size(record["references"][0])}

    def corpus(self, table):
        return {"length_ratio": float(table[:, 0].sum() / table[:, 1].sum())}
'''

GEN_TASK = """
task: gen
kind: generate
dataset:
  local: {path: data.jsonl, format: jsonl}
doc_to_text: "{{ q }}"
doc_to_target: "{{ a }}"
generation: {max_new_tokens: 8}
"""

# a real evaluate module: word overlap and prediction length, two values
WORD_OVERLAP = '''
import datasets
import evaluate


class WordOverlap(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="share of reference words found in the prediction, and mean prediction length",
            citation="", inputs_description="predictions: list of str; references: list of str",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, ignore_case=False):
        fold = (lambda s: s.lower()) if ignore_case else (lambda s: s)
        shares = []
        for p, r in zip(predictions, references):
            ref = set(fold(r).split())
            shares.append(len(ref & set(fold(p).split())) / max(1, len(ref)))
        return {"overlap": sum(shares) / len(shares), "pred_words": sum(len(p.split()) for p in predictions) / len(predictions),
                "note": "not a number"}
'''

MC_ACC = '''
import datasets
import evaluate


class McAcc(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="accuracy on label indices", citation="", inputs_description="",
                                   features=datasets.Features({"predictions": datasets.Value("int32"),
                                                               "references": datasets.Value("int32")}))

    def _compute(self, predictions, references):
        return {"accuracy": sum(int(p == r) for p, r in zip(predictions, references)) / len(predictions)}
'''


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """An installed distribution (a dist-info folder on sys.path) that registers `length_ratio`."""
    site = tmp_path / "site"
    (site / "lenplugin").mkdir(parents=True)
    (site / "lenplugin" / "__init__.py").write_text(PLUGIN)
    info = site / "lenplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lenplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[evalkit.metrics]\nlength_ratio = lenplugin:LengthRatio\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("lenplugin", None)


def _task(tmp_path: Path, metrics: str, head: str = GEN_TASK) -> Path:
    (tmp_path / "data.jsonl").write_text(
        '{"q": "Once upon a time", "a": "there was a little girl"}\n{"q": "The dog", "a": "ran to the park"}\n'
        '{"q": "Lily saw a", "a": "big red ball"}\n{"q": "Tom was", "a": "very happy and he smiled"}\n')
    path = tmp_path / "task.yaml"
    path.write_text(head + f"metrics: {metrics}\n")
    return path


def test_an_entry_point_metric_is_found_by_name_validated_and_scored_as_a_corpus_ratio(tmp_path, plugin):
    spec = load_task_file(_task(tmp_path, "[{name: length_ratio, options: {unit: words}}]"))
    records = [{"doc_id": 0, "prediction": "a b c", "references": ["a b"]},
               {"doc_id": 1, "prediction": "a", "references": ["a b c d e f"]},
               {"doc_id": 2, "prediction": "x y", "references": ["x y"]}]
    values = score_records(spec, records, bootstrap_iters=200, seed=7)
    assert values["length_ratio"]["value"] == pytest.approx((3 + 1 + 2) / (2 + 6 + 2))  # 0.6, not the mean of ratios
    assert values["length_ratio"]["stderr_method"].startswith("bootstrap(200")
    stats = np.array([[3, 2], [1, 6], [2, 2]], dtype=float)
    rng = np.random.default_rng(7)
    draws = [stats[idx][:, 0].sum() / stats[idx][:, 1].sum() for idx in (rng.integers(0, 3, 3) for _ in range(200))]
    assert values["length_ratio"]["stderr"] == pytest.approx(np.std(draws, ddof=1), rel=1e-12)
    assert records[1]["scores"] == {"pred_len": 1.0, "ref_len": 6.0}


def test_an_entry_point_metric_is_imported_only_when_a_task_names_it(tmp_path, plugin):
    load_task_file(_task(tmp_path, "[exact_match]"))
    assert "lenplugin" not in sys.modules
    load_task_file(_task(tmp_path, "[length_ratio]"))
    assert "lenplugin" in sys.modules


def test_an_entry_point_metric_options_are_checked(tmp_path, plugin, capsys):
    code = main(["validate", str(_task(tmp_path, "[{name: length_ratio, options: {unit: lines}}]"))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "metrics[0].options.unit" in err[0] and "'lines'" in err[0]
    assert "chars, words" in err[0]


def test_a_broken_entry_point_is_one_line(tmp_path, plugin, capsys):
    (plugin / "lenplugin-0.1.dist-info" / "entry_points.txt").write_text("[evalkit.metrics]\nlength_ratio = lenplugin:Nope\n")
    code = main(["validate", str(_task(tmp_path, "[length_ratio]"))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lenplugin:Nope" in err[0] and "cannot be imported" in err[0]


def test_an_evaluate_module_runs_as_a_task_metric_end_to_end(tmp_path, stories_adapter):
    (tmp_path / "word_overlap.py").write_text(WORD_OVERLAP)
    task = _task(tmp_path, "[{evaluate: word_overlap.py, options: {ignore_case: true}}, "
                           "{evaluate: word_overlap.py, as: overlap_cased}]")
    _, results = evaluate(RunOptions(tasks=[str(task)], data_dir=str(tmp_path), output=str(tmp_path / "out"), progress=False,
                                     bootstrap_iters=50, trust_remote_code=True), adapter=stories_adapter, log=lambda _m: None)
    rows = read_samples(next((tmp_path / "out").iterdir()), "gen")
    assert len(rows) == 4
    metrics = results["tasks"]["gen"]["metrics"]

    def by_hand(rows, fold):
        shares = [len(set(fold(r["references"][0]).split()) & set(fold(r["prediction"]).split()))
                  / len(set(fold(r["references"][0]).split())) for r in rows]
        return sum(shares) / len(shares), sum(len(r["prediction"].split()) for r in rows) / len(rows)

    overlap, words = by_hand(rows, str.lower)
    assert metrics["word_overlap.overlap"]["value"] == pytest.approx(overlap, abs=1e-12)
    assert metrics["word_overlap.pred_words"]["value"] == pytest.approx(words, abs=1e-12)
    assert metrics["overlap_cased.overlap"]["value"] == pytest.approx(by_hand(rows, lambda s: s)[0], abs=1e-12)
    assert "word_overlap.note" not in metrics and words > 0
    entry = metrics["word_overlap.overlap"]
    assert entry["stderr_method"] == "bootstrap(50, seed=1234)" and entry["resamples_via"] == "_compute"
    assert entry["module_source"] == str((tmp_path / "word_overlap.py").resolve()) and len(entry["module_sha256"]) == 64
    rng = np.random.default_rng(1234)  # the bootstrap resamples documents: redo it by hand
    draws = [by_hand([rows[i] for i in rng.integers(0, 4, 4)], str.lower)[1] for _ in range(50)]
    assert metrics["word_overlap.pred_words"]["stderr"] == pytest.approx(np.std(draws, ddof=1), rel=1e-9)
    # compare recomputes metrics from a results folder: it must not run code that folder names
    with pytest.raises(EvalkitError, match="never run code named by a results file"):
        compare_runs(next((tmp_path / "out").iterdir()), next((tmp_path / "out").iterdir()), iterations=100)


def test_an_evaluate_module_with_integer_features_gets_label_indices(tmp_path):
    (tmp_path / "mc_acc.py").write_text(MC_ACC)
    head = GEN_TASK.replace("kind: generate", "kind: multiple_choice").replace('doc_to_target: "{{ a }}"', 'doc_to_target: "0"')
    spec = load_task_file(_task(tmp_path, "[{evaluate: mc_acc.py}]", head + "choices: [neg, mid, pos]\n"))
    golds, preds = ["neg", "pos", "mid", "pos", "neg"], ["neg", "pos", "pos", "neg", "neg"]
    records = [{"doc_id": i, "gold": g, "prediction": p} for i, (g, p) in enumerate(zip(golds, preds))]
    scorer = build_metric(spec.metrics[0], records, spec.label_names, run_code=True)
    assert scorer.point() == {"mc_acc": pytest.approx(3 / 5)}
    assert scorer.predictions == [0, 2, 2, 0, 0]


def test_an_evaluate_module_needs_trust_remote_code_and_says_so_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "word_overlap.py").write_text(WORD_OVERLAP)
    task = _task(tmp_path, "[{evaluate: word_overlap.py}]")
    assert main(["validate", str(task)]) == 0
    capsys.readouterr()
    code = main(["run", "--tasks", str(task), "--data-dir", str(tmp_path), "--model", str(tmp_path / "no-model"),
                 "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "task.yaml" in err[0] and "metrics[0]" in err[0] and "--trust-remote-code" in err[0]


def test_evalkit_metrics_lists_built_ins_and_plugins(plugin, capsys):
    assert main(["metrics"]) == 0
    out = capsys.readouterr().out
    assert "acc_norm" in out and "squad_f1" in out and "sentence_split (auto|pysbd|newline)" in out
    assert "length_ratio" in out and "[plugin lenplugin:LengthRatio]" in out and "unit (chars|words)" in out


def test_evaluate_option_typos_and_missing_modules_are_one_line(tmp_path, capsys):
    (tmp_path / "word_overlap.py").write_text(WORD_OVERLAP)
    task = _task(tmp_path, "[{evaluate: word_overlap.py, options: {ignore_cse: true}}]")
    code = main(["run", "--tasks", str(task), "--data-dir", str(tmp_path), "--model", str(STORIES), "--trust-remote-code",
                 "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "ignore_cse" in err[0] and "ignore_case" in err[0]
    code = main(["validate", str(_task(tmp_path, "[{evaluate: no_such_metric.py}]"))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "metrics[0].evaluate" in err[0] and "not found" in err[0]


def test_a_hub_evaluate_id_offline_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from evalkit.hub import hub_reachable

    hub_reachable.cache_clear()
    task = _task(tmp_path, "[{evaluate: bleu_from_the_hub}]")
    code = main(["run", "--tasks", str(task), "--data-dir", str(tmp_path), "--model", str(tmp_path / "no-model"),
                 "--trust-remote-code", "--output", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    hub_reachable.cache_clear()
    assert code == 2 and len(err) == 1
    assert "bleu_from_the_hub" in err[0] and "hub cannot be reached" in err[0] and "beside the task file" in err[0]


def test_pyproject_declares_the_libraries_the_metrics_use():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    for requirement in ('"evaluate>=', '"pysbd>='):
        assert requirement in text
