"""`evalkit compare` on run directories with known differences (hand-made samples, no model)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import binomtest

from evalkit.cli import main
from evalkit.analysis.compare import compare_runs, format_comparison
from evalkit.analysis.paired import unpaired_z_test
from evalkit.results import read_results
from evalkit.tasks import resolve_task
from evalkit.testing import assert_no_regression

from .fake_runs import sst2_records, sst2_spec, write_run
from .resultfiles import edit_samples


@pytest.fixture()
def base_correct():
    return np.random.default_rng(1).random(200) < 0.7


def flipped(correct: np.ndarray, n: int, to: bool) -> np.ndarray:
    """`correct` with the first n answers that are not `to` changed to `to`."""
    out = correct.copy()
    out[np.flatnonzero(out != to)[:n]] = to
    return out


def sst2_run(tmp_path, run_id, correct, spec=None):
    return write_run(tmp_path, run_id, {"sst2": (spec or sst2_spec(), sst2_records(correct))})


def row(comparison, metric, task="sst2"):
    (found,) = [r for r in comparison.rows if r.metric == metric and r.task == task]
    return found


def test_identical_runs_show_no_change_with_p_one(tmp_path, base_correct, capsys):
    base = sst2_run(tmp_path, "base", base_correct)
    same = sst2_run(tmp_path, "same", base_correct)
    comparison = compare_runs(base, same, iterations=100)
    assert [(r.metric, r.p_value, r.delta, r.ci_low, r.ci_high, r.verdict) for r in comparison.rows] == [
        ("accuracy", 1.0, 0.0, 0.0, 0.0, "no significant change"), ("f1", 1.0, 0.0, 0.0, 0.0, "no significant change")]
    assert main(["compare", str(base), str(same), "--metrics", "accuracy", "--iterations", "100"]) == 0
    assert "no regression" in capsys.readouterr().out


def test_recomputed_values_equal_the_engine_values_in_results_json(tmp_path, base_correct):
    base = sst2_run(tmp_path, "base", base_correct)
    cand = sst2_run(tmp_path, "cand", flipped(base_correct, 9, True))
    comparison = compare_runs(base, cand, iterations=100)
    for run, attr in ((base, "baseline"), (cand, "candidate")):
        stored = read_results(run)["tasks"]["sst2"]["metrics"]
        for metric in ("accuracy", "f1"):
            assert getattr(row(comparison, metric), attr) == pytest.approx(stored[metric]["value"], abs=1e-12)


def test_known_flipped_answers_are_detected_as_a_regression(tmp_path, base_correct, capsys):
    base = sst2_run(tmp_path, "base", base_correct)
    worse = sst2_run(tmp_path, "worse", flipped(base_correct, 15, False))  # 15 right answers turned wrong
    acc = row(compare_runs(base, worse, metrics=["accuracy"], iterations=300), "accuracy")
    assert (acc.detail["improved_docs"], acc.detail["worsened_docs"]) == (0, 15)
    assert acc.p_value == pytest.approx(2 * 0.5 ** 15)  # the exact McNemar p by hand
    assert acc.delta == pytest.approx(-15 / 200)
    assert acc.ci_high < 0 and acc.verdict == "regressed" and acc.fails
    assert main(["compare", str(base), str(worse), "--iterations", "100"]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION: sst2/accuracy -0.0750" in out


def test_flips_in_the_good_direction_are_an_improvement_and_exit_zero(tmp_path, base_correct):
    base = sst2_run(tmp_path, "base", base_correct)
    better = sst2_run(tmp_path, "better", flipped(base_correct, 15, True))
    comparison = compare_runs(base, better, metrics=["accuracy"], iterations=300)
    assert row(comparison, "accuracy").verdict == "improved"
    assert comparison.exit_code == 0


def test_tolerance_absolute_relative_and_task_qualified(tmp_path, base_correct):
    """accuracy -0.075, 95% CI [-0.11, -0.04]: it fails only against a tolerance it is confidently worse than."""
    base = sst2_run(tmp_path, "base", base_correct)
    worse = sst2_run(tmp_path, "worse", flipped(base_correct, 15, False))  # accuracy -0.075
    args = ["compare", str(base), str(worse), "--iterations", "300", "--metrics", "accuracy"]
    assert main(args + ["--tolerance", "accuracy=0.08"]) == 0
    assert main(args + ["--tolerance", "accuracy=0.02"]) == 1
    assert main(args + ["--tolerance", "accuracy=0.07"]) == 0  # worse than 0.07 by the estimate, not confidently
    assert main(args + ["--tolerance", "accuracy=11%"]) == 0  # 11% of ~0.70 = 0.077 > 0.075
    assert main(args + ["--tolerance", "accuracy=3%"]) == 1  # 3% of ~0.70 = 0.021
    assert main(args + ["--tolerance", "accuracy=0.08", "--tolerance", "sst2/accuracy=0.01"]) == 1  # task key wins
    acc = row(compare_runs(base, worse, tolerances={"accuracy": 0.08}, metrics=["accuracy"], iterations=300), "accuracy")
    assert acc.verdict == "regressed within tolerance" and not acc.fails


def test_planted_two_point_difference_paired_detects_unpaired_does_not(tmp_path):
    """1000 documents, baseline 70% right; the candidate fixes 25 and breaks 5: +2.0 points."""
    rng = np.random.default_rng(42)
    base_correct = rng.random(1000) < 0.7
    cand_correct = base_correct.copy()
    cand_correct[rng.choice(np.flatnonzero(~base_correct), 25, replace=False)] = True
    cand_correct[rng.choice(np.flatnonzero(base_correct), 5, replace=False)] = False
    base = sst2_run(tmp_path, "base", base_correct)
    cand = sst2_run(tmp_path, "cand", cand_correct)
    acc = row(compare_runs(base, cand, metrics=["accuracy"], iterations=300), "accuracy")
    assert acc.delta == pytest.approx(0.02)
    stored = [read_results(r)["tasks"]["sst2"]["metrics"]["accuracy"] for r in (base, cand)]
    unpaired = unpaired_z_test(stored[0]["value"], stored[0]["stderr"], stored[1]["value"], stored[1]["stderr"])
    print(f"planted +2.0 points on 1000 docs: paired McNemar p = {acc.p_value:.2g}, "
          f"unpaired z-test p = {unpaired:.2g} (stderrs {stored[0]['stderr']:.4f}, {stored[1]['stderr']:.4f})")
    assert acc.p_value == pytest.approx(binomtest(25, 30, 0.5).pvalue)
    assert acc.p_value < 0.05 < unpaired
    assert acc.verdict == "improved"


def test_different_task_configs_are_refused_with_exit_2(tmp_path, base_correct, capsys):
    base = sst2_run(tmp_path, "base", base_correct)
    spec = sst2_spec()
    other = sst2_run(tmp_path, "fewshot", base_correct, spec=replace(spec, fewshot=replace(spec.fewshot, k=3)))
    assert main(["compare", str(base), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "different task configs" in err and "fewshot.k" in err


def test_no_shared_documents_or_tasks_are_refused_with_exit_2(tmp_path, base_correct, capsys):
    base = sst2_run(tmp_path, "base", base_correct)
    records = [{**r, "doc_id": r["doc_id"] + 10_000} for r in sst2_records(base_correct)]
    disjoint = write_run(tmp_path, "disjoint", {"sst2": (sst2_spec(), records)})
    assert main(["compare", str(base), str(disjoint)]) == 2
    assert "share no document" in capsys.readouterr().err
    wiki = resolve_task("wikitext2")
    ppl = [{"doc_id": i, "loglikelihood": -300.0, "words": 100, "bytes": 500, "tokens": 120} for i in range(5)]
    other_task = write_run(tmp_path, "wiki", {"wikitext2": (wiki, ppl)})
    assert main(["compare", str(base), str(other_task)]) == 2
    assert "share no task" in capsys.readouterr().err


def test_partial_overlap_is_compared_on_shared_documents_with_a_note(tmp_path, base_correct):
    base = sst2_run(tmp_path, "base", base_correct)
    fewer = write_run(tmp_path, "fewer", {"sst2": (sst2_spec(), sst2_records(base_correct)[50:])})
    comparison = compare_runs(base, fewer, metrics=["accuracy"], iterations=200)
    assert row(comparison, "accuracy").n == 150
    assert comparison.notes == ["sst2: compared on the 150 documents both runs scored (baseline has 200, candidate 150)"]
    assert row(comparison, "accuracy").baseline == pytest.approx(base_correct[50:].mean())


def test_lower_is_better_metrics_and_corpus_metrics(tmp_path):
    """Perplexity: a candidate with higher log-likelihood on every document improved; worse one regressed."""
    wiki = resolve_task("wikitext2")
    rng = np.random.default_rng(3)
    words = rng.integers(50, 300, 30)

    def records(per_word):
        return [{"doc_id": i, "loglikelihood": float(-w * r), "words": int(w), "bytes": int(5 * w), "tokens": int(1.2 * w)}
                for i, (w, r) in enumerate(zip(words, per_word))]

    rate = rng.uniform(2, 4, 30)
    base = write_run(tmp_path, "base", {"wikitext2": (wiki, records(rate))})
    better = write_run(tmp_path, "better", {"wikitext2": (wiki, records(rate - rng.uniform(0.05, 0.2, 30)))})
    worse = write_run(tmp_path, "worse", {"wikitext2": (wiki, records(rate + rng.uniform(0.05, 0.2, 30)))})
    up = compare_runs(base, better, iterations=300)
    down = compare_runs(base, worse, iterations=300)
    for r in up.rows:
        assert (r.higher_is_better, r.verdict, r.delta < 0) == (False, "improved", True), r
    for r in down.rows:
        assert (r.verdict, r.fails) == ("regressed", True), r
    assert up.exit_code == 0 and down.exit_code == 1
    assert {r.test for r in up.rows} == {"paired bootstrap"}
    assert row(down, "bits_per_byte", "wikitext2").p_value == pytest.approx(2 / 301)  # every resample is worse


def test_rouge_on_a_generation_task(tmp_path):
    xsum = resolve_task("xsum")
    refs = [f"the council approved plan number {i} for the new park" for i in range(40)]
    good = [{"doc_id": i, "prediction": ref, "references": [ref]} for i, ref in enumerate(refs)]
    poor = [{**r, "prediction": "a story about a cat"} if i % 2 else r for i, r in enumerate(good)]
    base = write_run(tmp_path, "base", {"xsum": (xsum, good)})
    cand = write_run(tmp_path, "cand", {"xsum": (xsum, poor)})
    comparison = compare_runs(base, cand, iterations=300)
    assert {r.metric for r in comparison.rows} == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert all(r.verdict == "regressed" and r.baseline == pytest.approx(100.0) for r in comparison.rows)


def test_output_formats(tmp_path, base_correct, capsys):
    base = sst2_run(tmp_path, "base", base_correct)
    worse = sst2_run(tmp_path, "worse", flipped(base_correct, 15, False))
    assert main(["compare", str(base), str(worse), "--format", "json", "--iterations", "100"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["exit_code"] == 1 and data["regressions"] == ["sst2/accuracy", "sst2/f1"]
    assert {m["metric"] for m in data["metrics"]} == {"accuracy", "f1"}
    assert main(["compare", str(base), str(worse), "--format", "md", "--metrics", "accuracy", "--iterations", "100"]) == 1
    md = capsys.readouterr().out
    assert "| task | metric | n | baseline |" in md and "| sst2 | accuracy ↑ | 200 |" in md


def test_user_errors_are_one_line_exit_2(tmp_path, base_correct, capsys):
    base = sst2_run(tmp_path, "base", base_correct)
    cases = [
        ([str(base), str(tmp_path / "missing")], "no results.json"),
        ([str(base), str(base), "--tolerance", "accuracy"], "METRIC=DELTA"),
        ([str(base), str(base), "--tolerance", "accuracy=-1"], ">= 0"),
        ([str(base), str(base), "--tolerance", "acc=0.1"], "no compared task reports"),
        ([str(base), str(base), "--alpha", "1.5"], "alpha"),
        ([str(base), str(base), "--metrics", "bleu"], "not reported"),
        ([str(base), str(base), "--tasks", "imdb"], "not in run"),
    ]
    for args, expected in cases:
        assert main(["compare", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err, (args, err)


def test_damaged_samples_are_one_line_exit_2(tmp_path, base_correct, capsys):
    base = sst2_run(tmp_path, "base", base_correct)
    damaged = sst2_run(tmp_path, "damaged", base_correct)
    edit_samples(damaged / "sst2.samples.jsonl", lambda i, row: row.pop("prediction") if i == 3 else None)
    assert main(["compare", str(base), str(damaged)]) == 2
    err = capsys.readouterr().err.strip()
    assert "lack what metric 'accuracy' needs" in err and "\n" not in err
    edit_samples(damaged / "sst2.samples.jsonl", lambda i, row: row.pop("doc_id") if i == 5 else None)
    assert main(["compare", str(base), str(damaged)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no doc_id" in err and "\n" not in err


def test_assert_no_regression(tmp_path, base_correct):
    base = sst2_run(tmp_path, "base", base_correct)
    worse = sst2_run(tmp_path, "worse", flipped(base_correct, 15, False))
    assert assert_no_regression(base, base, iterations=100).exit_code == 0
    with pytest.raises(AssertionError) as failure:
        assert_no_regression(base, worse, iterations=100)
    message = str(failure.value)
    assert "candidate regressed" in message and "95% CI of delta" in message and "sst2/accuracy" in message
    assert_no_regression(base, worse, iterations=100, accuracy=0.08, f1="20%")
    spec = sst2_spec()
    other = sst2_run(tmp_path, "other", base_correct, spec=replace(spec, doc_to_text=spec.doc_to_text + " "))
    with pytest.raises(AssertionError, match="different task configs"):
        assert_no_regression(base, other)


def test_table_mentions_both_runs_and_alpha(tmp_path, base_correct):
    base = sst2_run(tmp_path, "base", base_correct)
    text = format_comparison(compare_runs(base, base, alpha=0.01, metrics=["accuracy"], iterations=100))
    assert "baseline:  base (fake/base)" in text and "alpha 0.01" in text
