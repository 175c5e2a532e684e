"""Human ratings in `evalkit compare` and `evalkit leaderboard`: Wilcoxon signed-rank on paired ratings, the sign
test on preferences, under the same verdicts and exit codes as the automatic metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, wilcoxon

from evalkit.analysis.compare import compare_runs
from evalkit.analysis.ratings import export_document, make_rating
from evalkit.analysis.review import build_review
from evalkit.cli.main import main

from .resultfiles import edit_samples
from .reviewruns import pair_runs  # noqa: F401 (fixture)


@pytest.fixture
def rated(pair_runs, tmp_path):
    """Run A and a copy of it whose outputs are shouted (same task config, so `compare` accepts the pair), with
    two scripted raters who find the copy less fluent on most documents and prefer it on a few."""
    root = tmp_path / "runs"
    a = Path(shutil.copytree(pair_runs[1], root / "run-a"))
    louder = Path(shutil.copytree(pair_runs[1], root / "run-loud"))
    results = json.loads((louder / "results.json").read_text())
    results["run_id"] = "run-loud"
    results["model"]["spec"] = "/ckpt/loud"
    (louder / "results.json").write_text(json.dumps(results))
    edit_samples(louder / "xsum.samples.jsonl", lambda _i, row: row.update(prediction=row["prediction"].upper()))
    page = build_review([a, louder], n=16, seed=5)[1]
    files = []
    for rater, shift in (("r1", 0), ("r2", 1)):
        ratings = []
        for k, item in enumerate(page["items"]):
            loud_side = next(o["side"] for o in item["outputs"] if o["run"] == "run-loud")
            calm_side = "B" if loud_side == "A" else "A"
            loud_fluency = 2 if (k + shift) % 5 else 4
            pick = calm_side if (k + shift) % 4 else loud_side
            ratings.append(make_rating(page, item, rater, preference=pick,
                                       scores={calm_side: {"fluency": 4}, loud_side: {"fluency": loud_fluency}}))
        path = tmp_path / f"{rater}.json"
        path.write_text(json.dumps(export_document(page, rater, ratings)))
        files.append(path)
    assert main(["ratings", "import", *map(str, files), "--into", str(a), "--into", str(louder)]) == 0
    return a, louder, page, [json.loads(f.read_text())["ratings"] for f in files]


def test_compare_tests_paired_ratings_and_preferences(rated, capsys):
    a, louder, page, (r1, r2) = rated
    comparison = compare_runs(a, louder)
    rows = {r.metric: r for r in comparison.rows}
    fluency, pref = rows["human:fluency"], rows["human:preference"]
    # by hand: per document, the mean fluency of each run's output over the two raters
    base, cand = {}, {}
    for r in r1 + r2:
        for side, run in r["sides"].items():
            (cand if run == "run-loud" else base).setdefault(str(r["doc_id"]), []).append(r["scores"][side]["fluency"])
    docs = sorted(base)
    b = np.array([np.mean(base[d]) for d in docs])
    c = np.array([np.mean(cand[d]) for d in docs])
    assert fluency.n == 16 and fluency.test == "Wilcoxon signed-rank"
    assert (fluency.baseline, fluency.candidate) == (pytest.approx(b.mean()), pytest.approx(c.mean()))
    assert fluency.p_value == pytest.approx(wilcoxon(c - b).pvalue)
    assert fluency.ci_low < fluency.delta < fluency.ci_high < 0 and fluency.verdict == "regressed" and fluency.fails
    # the sign test on documents: each document's two raters vote for or against the shouting run
    votes = {}
    for r in r1 + r2:
        votes.setdefault(str(r["doc_id"]), []).append(float(r["sides"][r["preference"]] == "run-loud"))
    wins = sum(np.mean(v) > 0.5 for v in votes.values())
    losses = sum(np.mean(v) < 0.5 for v in votes.values())
    assert pref.test == "sign test (documents)" and pref.baseline == 0.5 and pref.n == 16
    assert pref.p_value == pytest.approx(binomtest(wins, wins + losses, 0.5).pvalue)
    assert pref.candidate == pytest.approx(np.mean([v for vs in votes.values() for v in vs]))
    assert comparison.exit_code == 1 and any("human rows compare" in n for n in comparison.notes)
    # the CLI: the same exit codes; a tolerance for the human rows moves them within tolerance
    assert main(["compare", str(a), str(louder), "--metrics", "human:fluency,human:preference"]) == 1
    assert "REGRESSED" in capsys.readouterr().out
    assert main(["compare", str(a), str(louder), "--metrics", "human:fluency,human:preference",
                 "--tolerance", "human:fluency=2", "--tolerance", "human:preference=0.5"]) == 0
    out = capsys.readouterr().out
    assert "regressed within tolerance" in out and "Wilcoxon signed-rank" in out
    assert main(["compare", str(a), str(louder), "--tolerance", "human:clarity=1"]) == 2


def test_leaderboard_shows_human_columns_with_intervals(rated, capsys):
    a, louder, _page, _ratings = rated
    assert main(["leaderboard", str(a.parent), "--metrics", "rougeL,human:fluency,human:preference", "--format", "csv"]) == 0
    csv_text = capsys.readouterr().out
    header = csv_text.splitlines()[0].split(",")
    assert "xsum/human:preference ci_low" in header and "xsum/human:fluency stderr" in header
    human = json.loads((louder / "results.json").read_text())["human"]["tasks"]["xsum"]
    assert main(["leaderboard", str(a.parent), "--metrics", "human:preference"]) == 0
    table = capsys.readouterr().out
    p = human["preference"]
    assert f"{p['value']:.4f} [{p['ci_low']:.4f}, {p['ci_high']:.4f}]" in table
    assert "Agreement, " in table and "Krippendorff's alpha" in table
    low = [m for run in (a, louder) for m, v in json.loads((run / "results.json").read_text())["human"]["tasks"]["xsum"]
           ["agreement"].items() if v["low"]]
    assert low and "LOW agreement" in table  # the two raters disagree on half the preferences
    assert main(["leaderboard", str(a.parent), "--sort", "human:fluency", "--format", "md"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "model" not in line]
    assert rows[0].startswith("| stories260K-hf ") and rows[1].startswith("| loud ")


def test_report_kendall_tau_against_an_independent_computation(rated):
    from scipy.stats import kendalltau

    from evalkit.analysis.human_report import report_section
    from evalkit.leaderboard import leaderboard

    a, louder, _page, (r1, r2) = rated
    section = report_section(leaderboard(a.parent))
    rows = {(k["human"], k["metric"]): k for k in section["kendall"]}
    assert set(rows) == {(h, m) for h in ("human:fluency", "human:preference") for m in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    scores = {run: {str(s["doc_id"]): s["scores"] for s in map(json.loads, (d / "xsum.samples.jsonl").read_text().splitlines())}
              for run, d in (("run-a", a), ("run-loud", louder))}
    fluency = {}
    for r in r1 + r2:
        for side, run in r["sides"].items():
            fluency.setdefault((run, str(r["doc_id"])), []).append(r["scores"][side]["fluency"])
    keys = sorted(fluency)
    expected = kendalltau([scores[run][doc]["rougeL"] for run, doc in keys], [np.mean(fluency[k]) for k in keys])
    row = rows[("human:fluency", "rougeL")]
    assert row["n"] == len(keys) == 32 and row["tau"] == pytest.approx(expected.statistic)
    assert row["p_value"] == pytest.approx(expected.pvalue) and row["ci_low"] <= row["tau"] <= row["ci_high"]
    assert [a["measure"] for a in section["agreement"]].count("human:preference") == 1  # one row for the pair


def test_bradley_terry_with_three_models(rated, tmp_path, capsys):
    from evalkit.analysis.human_report import report_section
    from evalkit.leaderboard import leaderboard

    a, louder, _page, _ratings = rated
    quiet = Path(shutil.copytree(a, a.parent / "run-quiet", ignore=shutil.ignore_patterns("ratings.jsonl")))
    results = json.loads((quiet / "results.json").read_text())
    results.update(run_id="run-quiet")
    results.pop("human")
    results["model"]["spec"] = "/ckpt/quiet"
    (quiet / "results.json").write_text(json.dumps(results))
    edit_samples(quiet / "xsum.samples.jsonl", lambda _i, row: row.update(prediction=row["prediction"].lower()))
    # quiet beats both others on most documents; a beats loud (already attached)
    for other in (a, louder):
        page = build_review([quiet, other], n=10, seed=9)[1]
        ratings = [make_rating(page, item, "r3", preference=next(o["side"] for o in item["outputs"]
                                                                 if (o["run"] == "run-quiet") == (k % 5 != 0)))
                   for k, item in enumerate(page["items"])]
        path = tmp_path / f"r3-{other.name}.json"
        path.write_text(json.dumps(export_document(page, "r3", ratings)))
        assert main(["ratings", "import", str(path), "--into", str(quiet), "--into", str(other)]) == 0
    capsys.readouterr()
    section = report_section(leaderboard(a.parent))
    (bt,) = section["bradley_terry"]
    assert [r["model"] for r in bt["ranking"]] == ["quiet", "stories260K-hf", "loud"] and bt["n"] == 32 + 20
    assert main(["leaderboard", str(a.parent), "--metrics", "human:preference"]) == 0
    assert "Bradley-Terry ranking from 52 pairwise ratings of xsum (log-strength): quiet +" in capsys.readouterr().out
