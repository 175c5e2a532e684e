"""The examples' stories, small: a classifier and a tagger trained here for a few CPU-seconds, then evaluated
through hf-classifier on imdb and hf-token-classifier on conll2003; every number checked against sklearn or
seqeval called directly on the logged predictions."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from seqeval.metrics import f1_score as entity_f1
from sklearn.metrics import accuracy_score, f1_score

from evalkit.engine import RunOptions, evaluate
from evalkit.results import read_samples

from .conftest import DATA, ROOT

sys.path.insert(0, str(ROOT / "examples"))
import imdb_story  # noqa: E402
import train_conll_tagger  # noqa: E402
import train_sst2_classifier  # noqa: E402


def test_the_imdb_story_small(tmp_path):
    model = tmp_path / "classifier"
    facts = train_sst2_classifier.train(model, train_size=600, epochs=1, max_seconds=8, dim=32, layers=1, vocab_size=2000)
    assert (model / "config.json").is_file() and 0 <= facts["sst2_dev_accuracy"] <= 1
    run_dir = imdb_story.evaluate(model, 60, DATA, tmp_path / "runs", batch_size="16")
    table, numbers = imdb_story.story_table(run_dir)
    rows = read_samples(run_dir, "imdb")
    gold = [r["gold"] for r in rows]
    pred = [r["prediction"] for r in rows]
    assert numbers["n"] == len(rows) == 60
    assert numbers["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    correct = np.array([g == p for g, p in zip(gold, pred)], dtype=float)
    assert numbers["accuracy_stderr"] == pytest.approx(correct.std(ddof=1) / np.sqrt(len(correct)))
    assert numbers["f1"] == pytest.approx(f1_score(gold, pred, pos_label="positive", zero_division=0))
    assert numbers["share_positive"] == pytest.approx(pred.count("positive") / 60)
    assert numbers["gold_share_positive"] == pytest.approx(gold.count("positive") / 60)
    assert "share of POSITIVE predictions" in table and f"{numbers['accuracy']:.4f}" in table
    # each review's two scores are the log-softmax of the model's NEGATIVE/POSITIVE over the raw review text
    for r in rows:
        assert np.exp(r["loglikelihoods"]).sum() == pytest.approx(1.0, abs=1e-5)
        assert not r["prompt"].startswith("Review:")


def test_the_conll_tagger_story_small(tmp_path):
    model = tmp_path / "tagger"
    train_conll_tagger.train(model, epochs=2, max_seconds=20, hidden=64, layers=1, vocab_size=2000, limit=2000)
    run_dir, results = evaluate(RunOptions(tasks=["conll2003"], model=str(model), adapter="hf-token-classifier", limit=80,
                                           data_dir=str(DATA), output=str(tmp_path / "runs"), progress=False,
                                           bootstrap_iters=100), log=lambda m: None)
    rows = read_samples(run_dir, "conll2003")
    gold = [r["gold"] for r in rows]
    pred = [r["prediction"] for r in rows]
    assert all(len(g) == len(p) == len(r["words"]) for g, p, r in zip(gold, pred, rows))
    metrics = results["tasks"]["conll2003"]["metrics"]
    assert metrics["entity_f1"]["value"] == pytest.approx(entity_f1(gold, pred))
    assert metrics["entity_f1"]["value"] > 0  # it found some entities: the comparison is not 0 = 0
    assert 0 < metrics["entity_f1"]["stderr"] < 0.2 and metrics["entity_f1"]["scheme"] == "IOB1"
