"""SQuAD exact match and token F1 (issue 9 item 17), against the official v1.1 evaluation script.

The reference functions below are copied from the official `evaluate-v1.1.py` (SQuAD explorer), so
the test does not use the code it checks. The `squad` task reads the official nested JSON offline.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter

import pytest

from evalkit.data import load_documents
from evalkit.engine import RunOptions, evaluate
from evalkit.errors import EvalkitError
from evalkit.metrics import build_scorer
from evalkit.results import read_samples
from evalkit.tasks import parse_task, resolve_task

from .conftest import DATA


# ---- official SQuAD v1.1 evaluation script (evaluate-v1.1.py), verbatim apart from formatting ----
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def official(records):
    f1 = exact_match = total = 0
    for r in records:
        total += 1
        exact_match += metric_max_over_ground_truths(exact_match_score, r["prediction"], r["references"])
        f1 += metric_max_over_ground_truths(f1_score, r["prediction"], r["references"])
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}
# ---- end of the official script ----


FIXED = [
    ("Denver Broncos", ["Denver Broncos", "Denver Broncos", "Denver Broncos"]),
    ("the Denver Broncos!", ["Denver Broncos"]),
    ("Broncos of Denver", ["Denver Broncos"]),
    ("Santa Clara", ["Santa Clara, California", "Levi's Stadium"]),
    ("Levi's Stadium in the San Francisco Bay Area", ["Levi's Stadium", "Santa Clara, California"]),
    ("an", ["the"]),  # both normalise to nothing: v1.1 gives exact match 1 and F1 0
    ("", ["gold"]),
    ("gold gold gold", ["gold"]),
    ("Kevin Harlan, Boomer Esiason and Dan Fouts", ["Kevin Harlan", "Boomer Esiason", "Dan Fouts"]),
    ("1,000", ["1000"]),
    ("Ça, c'est « la » vie", ["ça cest la vie"]),
]


def test_squad_metrics_equal_the_official_v1_1_script_on_fixed_inputs():
    records = [{"doc_id": i, "prediction": p, "references": refs} for i, (p, refs) in enumerate(FIXED)]
    em = build_scorer("squad_exact_match", {}, records)
    f1 = build_scorer("squad_f1", {}, records)
    expected = official(records)
    assert em.point()["squad_exact_match"] == pytest.approx(expected["exact_match"], abs=1e-12)
    assert f1.point()["squad_f1"] == pytest.approx(expected["f1"], abs=1e-12)
    for r, e, f in zip(records, em.per_sample(), f1.per_sample()):
        assert e["squad_exact_match"] == 100.0 * metric_max_over_ground_truths(exact_match_score, r["prediction"], r["references"])
        assert f["squad_f1"] == pytest.approx(100.0 * metric_max_over_ground_truths(f1_score, r["prediction"], r["references"]))
    assert expected["exact_match"] != pytest.approx(expected["f1"])


def test_the_squad_layout_reads_every_question_of_the_official_dev_set():
    docs = load_documents(resolve_task("squad"), DATA)
    assert len(docs) == 10570 and len({d["id"] for d in docs}) == 10570
    assert sum(len(d["answers"]["text"]) for d in docs) == 34726
    first = docs[0]
    assert first["title"] == "Super_Bowl_50" and first["answers"]["text"][0] == "Denver Broncos"
    assert all(d["context"][s:s + len(t)] == t for d in docs[:500] for t, s in zip(d["answers"]["text"], d["answers"]["answer_start"]))


def test_a_squad_file_with_the_wrong_shape_names_the_place_and_the_shape(tmp_path):
    spec = parse_task({"task": "q", "kind": "generate", "dataset": {"local": {"path": "s.json", "format": "squad"}},
                       "doc_to_text": "{{ question }}", "references_field": "answers.text", "metrics": ["squad_f1"]}, "q.yaml")
    (tmp_path / "s.json").write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "1"}]}]}]}))
    with pytest.raises(EvalkitError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\] needs 'answers'.*expects \{\"data\""):
        load_documents(spec, tmp_path)


def test_squad_task_end_to_end_scores_equal_the_official_script(tmp_path, stories_adapter):
    _, results = evaluate(RunOptions(tasks=["squad"], limit=8, data_dir=str(DATA), output=str(tmp_path),
                                     progress=False, bootstrap_iters=0), adapter=stories_adapter, log=lambda _m: None)
    run_dir = next(tmp_path.iterdir())
    rows = read_samples(run_dir, "squad")
    assert len(rows) == 8 and all(len(r["references"]) >= 1 for r in rows)
    expected = official(rows)
    metrics = results["tasks"]["squad"]["metrics"]
    assert metrics["squad_exact_match"]["value"] == pytest.approx(expected["exact_match"], abs=1e-12)
    assert metrics["squad_f1"]["value"] == pytest.approx(expected["f1"], abs=1e-12)
    assert metrics["squad_f1"]["scale"] == "0-100"
