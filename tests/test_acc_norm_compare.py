"""acc_norm on hand-made log-likelihoods (issue 9 item 16), and compare's test for the new metrics.

acc_norm, acc_bytes and squad_exact_match are 0/1 outcomes per document: `compare` tests them with
McNemar, as it does accuracy, also under an alias; squad_f1 is bootstrapped.
"""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.analysis.compare import compare_runs
from evalkit.metrics import build_scorer
from evalkit.tasks import parse_task

from .fake_runs import write_run

# choice "ab" (2 characters, 2 bytes), "ééé" (3 characters, 6 bytes)
CHOICES = ["ab", "ééé"]
LLS = [[-4.0, -5.0],   # acc: ab;  acc_norm: -2 vs -1.67 -> ééé;  acc_bytes: -2 vs -0.83 -> ééé
       [-3.0, -9.0],   # ab; -1.5 vs -3 -> ab; -1.5 vs -1.5 -> tie: first (ab)
       [-7.0, -9.0],   # ab; -3.5 vs -3 -> ééé; -3.5 vs -1.5 -> ééé
       [-2.0, -7.5],   # ab; -1 vs -2.5 -> ab; -1 vs -1.25 -> ab
       [-2.0, -4.0]]   # ab; -1 vs -1.33 -> ab; -1 vs -0.67 -> ééé
GOLD = ["ééé", "ab", "ab", "ab", "ééé"]


def _records():
    return [{"doc_id": i, "choices": CHOICES, "loglikelihoods": ll, "gold": g,
             "prediction": CHOICES[int(np.argmax(ll))]} for i, (ll, g) in enumerate(zip(LLS, GOLD))]


def test_acc_norm_divides_by_characters_acc_bytes_by_bytes_hand_computed():
    records = _records()
    acc = build_scorer("accuracy", {}, records, tuple(CHOICES))
    assert [s["accuracy"] for s in acc.per_sample()] == [0.0, 1.0, 1.0, 1.0, 0.0]
    norm = build_scorer("acc_norm", {}, records, tuple(CHOICES))
    assert [s["acc_norm"] for s in norm.per_sample()] == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert norm.point()["acc_norm"] == pytest.approx(0.6)
    by_bytes = build_scorer("acc_bytes", {}, records, tuple(CHOICES))
    assert [s["acc_bytes"] for s in by_bytes.per_sample()] == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert by_bytes.point()["acc_bytes"] == pytest.approx(0.8)
    assert norm.closed_form_stderr()["acc_norm"] == pytest.approx(np.std([1, 1, 0, 1, 0], ddof=1) / np.sqrt(5))


def _task(metrics):
    return parse_task({"task": "mc", "kind": "multiple_choice", "dataset": {"local": {"path": "d.jsonl", "format": "jsonl"}},
                       "doc_to_text": "{{ q }}", "choices": CHOICES, "doc_to_target": "{{ label }}", "metrics": metrics}, "mc.yaml")


def test_compare_uses_mcnemar_for_acc_norm_and_an_aliased_accuracy(tmp_path):
    spec = _task(["accuracy", "acc_norm", {"name": "accuracy", "as": "acc_again"}])
    rng = np.random.default_rng(3)
    n = 300
    gold = rng.integers(0, 2, n)
    base_ll = rng.normal(-5, 1, (n, 2))
    cand_ll = base_ll.copy()
    cand_ll[:40, :] = base_ll[:40, ::-1]  # the candidate swaps its two log-likelihoods on 40 documents

    def records(lls):
        return [{"doc_id": i, "choices": CHOICES, "loglikelihoods": list(ll), "gold": CHOICES[g],
                 "prediction": CHOICES[int(np.argmax(ll))]} for i, (ll, g) in enumerate(zip(lls, gold))]

    base = write_run(tmp_path, "base", {"mc": (spec, records(base_ll))})
    cand = write_run(tmp_path, "cand", {"mc": (spec, records(cand_ll))})
    rows = {r.metric: r for r in compare_runs(base, cand, iterations=200).rows}
    assert set(rows) == {"accuracy", "acc_norm", "acc_again"}
    for name in rows:
        assert rows[name].test == "McNemar exact", name
    lengths = np.array([len(c) for c in CHOICES], dtype=float)
    right = lambda lls: (np.argmax(lls / lengths, axis=1) == gold)  # noqa: E731
    improved = int(np.sum(~right(base_ll) & right(cand_ll)))
    worsened = int(np.sum(right(base_ll) & ~right(cand_ll)))
    assert (rows["acc_norm"].detail["improved_docs"], rows["acc_norm"].detail["worsened_docs"]) == (improved, worsened)
    assert rows["acc_again"].baseline == rows["accuracy"].baseline


def test_compare_tests_squad_exact_match_with_mcnemar_and_squad_f1_with_the_bootstrap(tmp_path):
    spec = parse_task({"task": "qa", "kind": "generate", "dataset": {"local": {"path": "d.jsonl", "format": "jsonl"}},
                       "doc_to_text": "{{ q }}", "references_field": "answers",
                       "metrics": ["squad_exact_match", "squad_f1"]}, "qa.yaml")
    refs = [["Denver Broncos"], ["Santa Clara, California"], ["gold"], ["1966"]] * 25
    base = [{"doc_id": i, "prediction": r[0], "references": r} for i, r in enumerate(refs)]
    cand = [dict(b, prediction="the " + b["prediction"] + " team" if i % 3 == 0 else b["prediction"]) for i, b in enumerate(base)]
    a = write_run(tmp_path, "a", {"qa": (spec, base)})
    b = write_run(tmp_path, "b", {"qa": (spec, cand)})
    rows = {r.metric: r for r in compare_runs(a, b, iterations=200).rows}
    assert rows["squad_exact_match"].test == "McNemar exact"
    assert rows["squad_exact_match"].detail["worsened_docs"] == 34
    assert rows["squad_f1"].test == "paired bootstrap"
    assert rows["squad_exact_match"].baseline == 100.0
