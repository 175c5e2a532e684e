"""`evalkit ratings import`: what it attaches (ratings.jsonl, the human block, checked against independent
computations) and what it refuses (changed outputs, duplicates, values off the rubric's scales)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score

from evalkit.analysis.ratings import export_document, make_rating
from evalkit.analysis.review import build_review
from evalkit.cli.main import main

from .resultfiles import edit_samples, read_jsonl
from .reviewruns import pair_runs  # noqa: F401 (fixture)


@pytest.fixture
def pair(pair_runs, tmp_path):
    """Fresh copies of runs A and B (imports write into them) and a pairwise page of 12 documents."""
    _root, a, b, _target = pair_runs
    root = tmp_path / "runs"
    a2, b2 = shutil.copytree(a, root / "run-a"), shutil.copytree(b, root / "run-b")
    return Path(a2), Path(b2), build_review([a2, b2], n=12, seed=11)[1]


def _write(path: Path, page: dict, rater: str, ratings: list[dict]) -> Path:
    path.write_text(json.dumps(export_document(page, rater, ratings)))
    return path


def _raters(page: dict) -> dict[str, list[dict]]:
    """Two scripted raters: r1 picks by a fixed cycle over the items; r2 agrees with r1 except on every third item,
    where it picks the other side. Both rate fluency of side A (r1 also side B) on every other item."""
    out = {"r1": [], "r2": []}
    flip = {"A": "B", "B": "A", "tie": "A"}
    for k, item in enumerate(page["items"]):
        pick = ("A", "B", "A", "tie", "B", "A", "A")[k % 7]
        scores = {"A": {"fluency": 1 + k % 5}, "B": {"fluency": 1 + (k + 2) % 5, "faithfulness": 2}} if k % 2 == 0 else {}
        out["r1"].append(make_rating(page, item, "r1", preference=pick, scores=scores))
        out["r2"].append(make_rating(page, item, "r2", preference=flip[pick] if k % 3 == 0 else pick,
                                     scores={"A": {"fluency": 1 + (k + 1) % 5}} if k % 2 == 0 else {}))
    return out


def _outcome(rating: dict, run: str) -> float:
    return 0.5 if rating["preference"] == "tie" else float(rating["sides"][rating["preference"]] == run)


def test_import_attaches_ratings_and_the_human_block(pair, tmp_path, capsys):
    a, b, page = pair
    raters = _raters(page)
    f1, f2 = _write(tmp_path / "r1.json", page, "r1", raters["r1"]), _write(tmp_path / "r2.json", page, "r2", raters["r2"])
    assert main(["ratings", "import", str(f1), str(f2), "--into", str(a), "--into", str(b)]) == 0
    out = capsys.readouterr().out
    assert "24 ratings attached" in out and "2 raters" in out
    for run in (a, b):
        assert len(read_jsonl(run / "ratings.jsonl")) == 24
    every = raters["r1"] + raters["r2"]
    human_a = json.loads((a / "results.json").read_text())["human"]
    human_b = json.loads((b / "results.json").read_text())["human"]
    pref_a, pref_b = human_a["tasks"]["xsum"]["preference"], human_b["tasks"]["xsum"]["preference"]
    outcomes = [_outcome(r, "run-a") for r in every]
    assert pref_a["value"] == pytest.approx(np.mean(outcomes)) and pref_b["value"] == pytest.approx(1 - np.mean(outcomes))
    assert (pref_a["wins"], pref_a["ties"], pref_a["losses"]) == (outcomes.count(1.0), outcomes.count(0.5), outcomes.count(0.0))
    assert pref_a["ci_low"] < pref_a["value"] < pref_a["ci_high"]
    assert pref_a["ci_low"] == pytest.approx(1 - pref_b["ci_high"]) and pref_a["n_docs"] == 12
    # the sign test on documents, by hand: each document's two raters vote
    per_doc = {}
    for r in every:
        per_doc.setdefault(str(r["doc_id"]), []).append(_outcome(r, "run-a"))
    wins = sum(np.mean(v) > 0.5 for v in per_doc.values())
    losses = sum(np.mean(v) < 0.5 for v in per_doc.values())
    assert pref_a["p_value"] == pytest.approx(binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else 1.0)
    assert list(pref_a["vs"]) == ["run-b"] and pref_a["vs"]["run-b"]["value"] == pytest.approx(pref_a["value"])
    # agreement on the preference: Cohen's kappa of the two raters' outcome labels, computed with sklearn directly
    labels = {name: [_outcome(r, "run-a") for r in rs] for name, rs in raters.items()}
    agreement = human_a["tasks"]["xsum"]["agreement"]["preference"]
    assert agreement["kappa"] == pytest.approx(cohen_kappa_score([str(x) for x in labels["r1"]], [str(x) for x in labels["r2"]]))
    assert agreement["kappa_method"] == "Cohen" and agreement["n_items"] == 12 and agreement["alpha"] is not None
    assert ("xsum/preference" in human_a["low_agreement"]) == (agreement["alpha"] < 0.667)
    # fluency of run A's outputs: every rating of the side that showed run A; SE clustered by document
    values, docs = [], []
    for r in every:
        side = next(s for s, run in r["sides"].items() if run == "run-a")
        if "fluency" in r["scores"].get(side, {}):
            values.append(r["scores"][side]["fluency"])
            docs.append(str(r["doc_id"]))
    import statsmodels.api as sm

    fluency = human_a["tasks"]["xsum"]["scales"]["fluency"]
    fit = sm.OLS(np.array(values, float), np.ones(len(values))).fit(
        cov_type="cluster", cov_kwds={"groups": np.unique(docs, return_inverse=True)[1]})
    assert fluency["value"] == pytest.approx(np.mean(values)) and fluency["stderr"] == pytest.approx(fit.bse[0])
    assert (fluency["n"], fluency["n_docs"], fluency["min"], fluency["max"]) == (len(values), len(set(docs)), 1, 5)


def _csv(path: Path, ratings: list[dict]) -> Path:
    """The CSV layout the page's Export CSV writes (fixed columns, then A.<scale> and B.<scale>)."""
    fixed = ["rater", "mode", "rubric", "rubric_hash", "task", "doc_id", "run_A", "run_B", "content_hash",
             "preference", "preferred_run", "comment", "time"]
    scales = [f"{s}.{n}" for s in ("A", "B") for n in ("fluency", "faithfulness")]
    with path.open("w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow(fixed + scales)
        for r in ratings:
            row = [r["sides"][k[4:]] if k.startswith("run_") else r[k] for k in fixed]
            w.writerow(["" if v is None else v for v in row] + [r["scores"].get(c[0], {}).get(c[2:], "") for c in scales])
    return path


def test_csv_import_equals_json_import(pair, tmp_path):
    a, b, page = pair
    ratings = _raters(page)["r1"]
    assert main(["ratings", "import", str(_csv(tmp_path / "r1.csv", ratings)), "--into", str(a), "--into", str(b)]) == 0
    from_csv = json.loads((a / "results.json").read_text())["human"]["tasks"]
    (a / "ratings.jsonl").unlink()
    (b / "ratings.jsonl").unlink()
    assert main(["ratings", "import", str(_write(tmp_path / "r1.json", page, "r1", ratings)), "--into", str(a), "--into", str(b)]) == 0
    assert json.loads((a / "results.json").read_text())["human"]["tasks"] == from_csv


def _refused(args: list[str], capsys, *needles: str) -> None:
    assert main(["ratings", "import", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_import_refusals(pair, tmp_path, capsys):
    a, b, page = pair
    into = ["--into", str(a), "--into", str(b)]
    good = _raters(page)["r1"]

    def variant(name: str, change) -> str:
        ratings = json.loads(json.dumps(good))
        change(ratings)
        return str(_write(tmp_path / f"{name}.json", page, "r1", ratings))

    _refused([variant("dup", lambda rs: rs.append(dict(rs[3]))), *into], capsys, "duplicate rating", "rating 13", "rating 4")
    _refused([variant("off", lambda rs: rs[0]["scores"]["A"].update(fluency=7)), *into], capsys,
             "fluency = 7 on side A is off the scale 1-5")
    _refused([variant("half", lambda rs: rs[0]["scores"]["A"].update(fluency=3.5)), *into], capsys, "off the scale 1-5")
    _refused([variant("pref", lambda rs: rs[1].update(preference="C")), *into], capsys, "preference 'C' is not one of A, B, tie")
    _refused([variant("scale", lambda rs: rs[0]["scores"]["A"].update(clarity=2)), *into], capsys,
             "scale 'clarity' is not in rubric 'default-pairwise'")
    _refused([variant("rubric", lambda rs: [r.update(rubric="mine", rubric_hash="0" * 16) for r in rs]), *into], capsys,
             "made with rubric 'mine'", "--rubric FILE")
    _refused([variant("side", lambda rs: rs[0].update(sides={"A": "run-a"})), *into], capsys, "field 'sides' must map A and B")
    _refused([variant("stranger", lambda rs: rs[0]["sides"].update(B="run-zzz")), *into], capsys, "run run-zzz is not among the --into runs")
    _refused([variant("nofile", lambda rs: None), "--into", str(tmp_path / "nowhere")], capsys, "nowhere")
    assert not (a / "ratings.jsonl").exists() and "human" not in json.loads((a / "results.json").read_text())

    # outputs changed since they were rated: the content hash no longer matches
    ok = variant("ok", lambda rs: None)
    rated_doc = str(good[5]["doc_id"])
    edit_samples(b / "xsum.samples.jsonl",
                 lambda _i, row: row.update(prediction=row["prediction"] + "!") if str(row["doc_id"]) == rated_doc else None)
    _refused([ok, *into], capsys, "rating 6", "content hash does not match", "review the current outputs")
    assert not (a / "ratings.jsonl").exists()


def test_duplicates_across_imports_and_replace(pair, tmp_path, capsys):
    a, b, page = pair
    r1 = _raters(page)["r1"]
    first = _write(tmp_path / "first.json", page, "r1", r1)
    assert main(["ratings", "import", str(first), "--into", str(a), "--into", str(b)]) == 0
    capsys.readouterr()
    _refused([str(first), "--into", str(a)], capsys, "already has a rating from rater 'r1'", "--replace")
    changed = [dict(r, preference="tie") for r in r1[:4]]
    again = _write(tmp_path / "again.json", page, "r1", changed)
    assert main(["ratings", "import", str(again), "--into", str(a), "--into", str(b), "--replace"]) == 0
    assert "4 ratings attached, 4 replaced (12 in ratings.jsonl" in capsys.readouterr().out
    stored = {str(r["doc_id"]): r for r in read_jsonl(a / "ratings.jsonl")}
    assert all(stored[str(r["doc_id"])]["preference"] == "tie" for r in changed) and len(stored) == 12


def test_single_mode_import_and_a_custom_rubric(pair, tmp_path, capsys):
    a, _b, _page = pair
    rubric = tmp_path / "clarity.yaml"
    rubric.write_text("name: clarity\nmode: single\nscales:\n  - {name: clarity, min: 0, max: 3}\n")
    page = build_review([a], n=5, seed=2, rubric=rubric)[1]
    ratings = [make_rating(page, item, "solo", scores={"A": {"clarity": k % 4}}) for k, item in enumerate(page["items"])]
    path = _write(tmp_path / "solo.json", page, "solo", ratings)
    _refused([str(path), "--into", str(a)], capsys, "made with rubric 'clarity'", "not the shipped 'default'")
    assert main(["ratings", "import", str(path), "--into", str(a), "--rubric", str(rubric)]) == 0
    block = json.loads((a / "results.json").read_text())["human"]["tasks"]["xsum"]
    assert block["scales"]["clarity"]["value"] == pytest.approx(np.mean([k % 4 for k in range(5)]))
    assert "preference" not in block and block["agreement"] == {}
    missing = [make_rating(page, page["items"][0], "solo2", scores={})]
    _refused([str(_write(tmp_path / "missing.json", page, "solo2", missing)), "--into", str(a), "--rubric", str(rubric)],
             capsys, "the required scale 'clarity' has no value on side A")
