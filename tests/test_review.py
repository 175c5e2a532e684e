"""The review page (structure, escaping, sampling, sides, hashes), rubric validation and the `review` CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections import Counter

import numpy as np
import pytest

from evalkit.analysis.ratings import content_hash
from evalkit.analysis.review import build_review, stratified_sample
from evalkit.analysis.rubric import load_rubric, parse_rubric
from evalkit.cli.main import main
from evalkit.errors import EvalkitError

from .resultfiles import read_jsonl
from .reviewruns import PAGE_N, PAGE_SEED, PAYLOAD, pair_runs  # noqa: F401 (fixture)
from .test_report import Page


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_pairwise_page_structure_and_escaping(pair_runs, tmp_path):
    _root, a, b, target = pair_runs
    html, data = build_review([a, b], n=PAGE_N, seed=PAGE_SEED)
    page = Page(html)
    assert not page.find("link") and not page.find("img") and not page.find("iframe")
    for element in page.elements:
        for attr in ("src", "href", "action"):
            assert element["attrs"].get(attr) is None, element
    scripts = page.find("script")
    assert [s["attrs"] for s in scripts] == [{"type": "application/json", "id": "review-data"}, {}]
    csp = page.find("meta", **{"http-equiv": "Content-Security-Policy"})[0]["attrs"]["content"]
    assert "default-src 'none'" in csp and f"script-src '{_sha(scripts[1]['text'])}'" in csp
    assert f"style-src '{_sha(page.find('style')[0]['text'])}'" in csp
    block = html.split('<script type="application/json" id="review-data">')[1].split("</script>")[0]
    assert "<" not in block and ">" not in block and "&" not in block
    assert html.count("<script") == 2 and "alert('xss')" not in html.split('id="review-data"')[0]
    assert json.loads(scripts[0]["text"]) == data
    # the planted payload is an output of a sampled item, carried as data
    payload_item = next(i for i in data["items"] if str(i["doc_id"]) == target)
    assert any(o["text"].startswith(PAYLOAD) for o in payload_item["outputs"])
    # pairwise pages do not name the runs; the sides carry the run ids for the export
    header = " ".join(e["text"] for e in page.find("header"))
    assert "run-a" not in header and "run-b" not in header and "blind" in header


def test_items_match_the_samples_with_recorded_sides(pair_runs):
    _root, a, b, _target = pair_runs
    _html, data = build_review([a, b], n=40, seed=3)
    samples = {run: {str(r["doc_id"]): r for r in read_jsonl(d / "xsum.samples.jsonl")} for run, d in (("run-a", a), ("run-b", b))}
    assert len(data["items"]) == 40 and data["page"]["mode"] == "pairwise"
    left = Counter()
    for item in data["items"]:
        runs = [o["run"] for o in item["outputs"]]
        assert sorted(runs) == ["run-a", "run-b"] and [o["side"] for o in item["outputs"]] == ["A", "B"]
        left[runs[0]] += 1
        doc = str(item["doc_id"])
        for o in item["outputs"]:
            assert o["text"] == samples[o["run"]][doc]["prediction"]
        assert item["source"] == samples["run-a"][doc]["prompt"]
        # the hash, recomputed by hand: sha256 of the canonical JSON of task, doc_id, prompt and outputs in side order
        canonical = json.dumps({"task": "xsum", "doc_id": doc, "prompt": item["source"],
                                "outputs": [[o["run"], o["text"]] for o in item["outputs"]]},
                               ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        assert item["hash"] == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert 10 <= left["run-a"] <= 30  # a random side per item, not always the same run on the left
    again = build_review([a, b], n=40, seed=3)[1]
    assert [(i["key"], i["outputs"][0]["run"]) for i in again["items"]] == [(i["key"], i["outputs"][0]["run"]) for i in data["items"]]
    other = build_review([a, b], n=40, seed=4)[1]
    assert [i["outputs"][0]["run"] for i in other["items"]] != [i["outputs"][0]["run"] for i in data["items"]]


def test_stratified_sample_is_seeded_and_proportional():
    scores = list(np.linspace(0, 1, 100))
    picked = stratified_sample(scores, 20, np.random.default_rng(1))
    assert len(picked) == 20 == len(set(picked))
    assert [sum(20 * q <= i < 20 * (q + 1) for i in picked) for q in range(5)] == [4, 4, 4, 4, 4]
    assert picked == stratified_sample(scores, 20, np.random.default_rng(1))
    assert picked != stratified_sample(scores, 20, np.random.default_rng(2))
    assert stratified_sample(scores[:7], 20, np.random.default_rng(1)) == list(range(7))
    # items without a score are a stratum of their own: 50 of 100 -> half the sample
    mixed = [float("nan")] * 50 + scores[:50]
    assert sum(i < 50 for i in stratified_sample(mixed, 10, np.random.default_rng(1))) == 5


def test_single_mode_page(pair_runs):
    _root, a, _b, _target = pair_runs
    html, data = build_review([a], n=5, seed=1)
    assert data["page"]["mode"] == "single" and data["rubric"]["name"] == "default" and len(data["items"]) == 5
    assert all([o["side"] for o in i["outputs"]] == ["A"] for i in data["items"])
    assert data["page"]["strata"]["xsum"] == {"metric": "rouge1", "how": "per document", "documents": 40, "sampled": 5}
    assert "run-a" in " ".join(e["text"] for e in Page(html).find("header"))
    one = data["items"][0]
    sample = next(r for r in read_jsonl(a / "xsum.samples.jsonl") if r["doc_id"] == one["doc_id"])
    assert one["hash"] == content_hash("xsum", sample["doc_id"], sample["prompt"], [("run-a", sample["prediction"])])


def test_review_errors(pair_runs, tmp_path):
    _root, a, b, _target = pair_runs
    cases = [
        (lambda: build_review([a, b, a]), "one run (single mode) or two runs"),
        (lambda: build_review([a, a]), "pairwise review compares two different runs"),
        (lambda: build_review([a], task="imdb"), "task 'imdb' is not in run"),
        (lambda: build_review([a], rubric="default-pairwise"), "is for pairwise mode, but one run"),
        (lambda: build_review([a], n=0), "--n must be at least 1"),
        (lambda: build_review([a], rubric="nope"), "no rubric named 'nope'"),
    ]
    for call, message in cases:
        with pytest.raises(EvalkitError, match=re.escape(message)):
            call()
    # a run without a generation task (its one task recorded as multiple choice): --task picks it anyway
    other = tmp_path / "mc-run"
    shutil.copytree(a, other)
    results = json.loads((other / "results.json").read_text())
    results["config"]["tasks"]["xsum"]["spec"]["kind"] = "multiple_choice"
    (other / "results.json").write_text(json.dumps(results))
    with pytest.raises(EvalkitError, match="no generation task to review"):
        build_review([other])
    assert len(build_review([other], task="xsum", n=3)[1]["items"]) == 3


def test_review_cli(pair_runs, tmp_path, capsys):
    _root, a, b, _target = pair_runs
    out = tmp_path / "review.html"
    assert main(["review", str(a), str(b), "-o", str(out), "--n", "4", "--seed", "2"]) == 0
    err = capsys.readouterr().err
    assert out.is_file() and "xsum: 4 of 40 documents, stratified by rouge1 by the difference between the runs" in err
    assert "evalkit ratings import FILE --into" in err
    with pytest.raises(SystemExit) as too_many:  # argparse: two positional runs at most
        main(["review", str(a), str(b), str(a)])
    assert too_many.value.code == 2
    capsys.readouterr()
    assert main(["review", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("evalkit: error:") == 1


RUBRIC = {"name": "mine", "mode": "single", "instructions": "Rate.",
          "scales": [{"name": "clarity", "min": 0, "max": 3, "anchors": {0: "none", 3: "crystal"}}]}


def test_rubric_parsing_and_defaults():
    r = parse_rubric(RUBRIC, "mine.yaml")
    assert r.scales[0].label == "Clarity" and r.scales[0].required and r.scales[0].anchors == ((0, "none"), (3, "crystal"))
    assert r.hash == parse_rubric(dict(RUBRIC), "elsewhere.yaml").hash  # the location is not part of the hash
    assert r.hash != parse_rubric({**RUBRIC, "instructions": "Rate carefully."}, "mine.yaml").hash
    default = load_rubric()
    assert default.mode == "single" and [s.name for s in default.scales] == ["fluency", "faithfulness"]
    assert all((s.min, s.max, s.required) == (1, 5, True) for s in default.scales) and default.comment
    pairwise = load_rubric(mode="pairwise")
    assert pairwise.preference and not any(s.required for s in pairwise.scales)


@pytest.mark.parametrize("change,message", [
    ({"colour": "red"}, "field 'colour': unknown field"),
    ({"mode": "triple"}, "field 'mode': unknown mode 'triple'"),
    ({"name": "1bad"}, "field 'name': '1bad' is not a rubric name"),
    ({"scales": [{"name": "x", "min": 1, "max": 12}]}, "0 <= min < max <= 9"),
    ({"scales": [{"name": "x", "min": 3, "max": 3}]}, "0 <= min < max <= 9"),
    ({"scales": [{"name": "x", "min": 1, "max": 5, "anchors": {7: "too high"}}]}, "anchor 7 is not a value on the scale 1-5"),
    ({"scales": [{"name": "x", "min": 1, "max": 5}, {"name": "x", "min": 1, "max": 3}]}, "scale 'x' is listed twice"),
    ({"scales": [{"name": "x", "max": 5}]}, "field 'scales[0].min': is required"),
    ({"scales": [{"name": "x", "min": "one", "max": 5}]}, "field 'scales[0].min': must be int"),
    ({"scales": []}, "a single-mode rubric needs at least one scale"),
    ({"preference": "Which?"}, "is for pairwise rubrics only"),
])
def test_rubric_errors(change, message):
    with pytest.raises(EvalkitError, match=re.escape(message)) as err:
        parse_rubric({**RUBRIC, **change}, "mine.yaml")
    assert str(err.value).startswith("mine.yaml: field")


def test_rubric_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(EvalkitError, match="bad.yaml: invalid YAML at line"):
        load_rubric(bad)
    bad.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(EvalkitError, match="bad.yaml"):
        load_rubric(bad)
