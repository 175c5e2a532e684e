"""The scores in results.json, recomputed independently from the samples files with the reference libraries."""

from __future__ import annotations

import json
import math
import re

import pysbd
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sklearn.metrics import accuracy_score, f1_score

from evalkit.results import read_samples


def _metrics(stories_run, task):
    return stories_run[1]["tasks"][task]["metrics"]


def test_result_files_have_every_documented_key(stories_run):
    run_dir, results = stories_run
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["run_id"] == results["run_id"] == run_dir.name
    for key in ("spec", "sha256", "dtype", "device"):
        assert on_disk["model"][key], key
    for key in ("python", "torch", "transformers", "evalkit"):
        assert on_disk["versions"][key], key
    assert on_disk["config"]["limit"] == 40 and on_disk["config"]["seed"] == 1234
    expected = {"imdb": {"accuracy", "f1"}, "sst2": {"accuracy", "f1"},
                "xsum": {"rouge1", "rouge2", "rougeL", "rougeLsum"}, "wmt21-de-en": {"bleu", "chrf"},
                "wikitext2": {"word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity"}}
    for task, names in expected.items():
        entry = on_disk["tasks"][task]
        assert len(on_disk["config"]["tasks"][task]["hash"]) == 16
        assert entry["n"] == 40 and entry["seconds"] > 0 and entry["throughput"]["tokens_per_s"] > 0
        assert set(entry["metrics"]) == names
        for m in entry["metrics"].values():
            assert math.isfinite(m["value"]) and math.isfinite(m["stderr"]) and m["stderr"] >= 0
        rows = read_samples(run_dir, task)
        assert [r["doc_id"] for r in rows] == entry["doc_ids"]
        for r in rows:
            assert {"doc_id", "prompt", "prediction", "scores"} <= set(r)
            assert "references" in r or "gold" in r or "loglikelihood" in r


def test_bleu_and_chrf_equal_sacrebleu_on_the_logged_predictions(stories_run):
    rows = read_samples(stories_run[0], "wmt21-de-en")
    hyps = [r["prediction"] for r in rows]
    assert all(len(r["references"]) == 2 for r in rows), "de-en must use both references"
    refs = [[r["references"][0] for r in rows], [r["references"][1] for r in rows]]
    bleu, chrf = sacrebleu.corpus_bleu(hyps, refs), sacrebleu.corpus_chrf(hyps, refs)
    metrics = _metrics(stories_run, "wmt21-de-en")
    assert metrics["bleu"]["value"] == pytest.approx(bleu.score, abs=1e-9)
    assert metrics["chrf"]["value"] == pytest.approx(chrf.score, abs=1e-9)
    assert metrics["bleu"]["signature"].startswith("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert metrics["chrf"]["signature"].startswith("nrefs:2|")
    single = sacrebleu.corpus_bleu(hyps, refs[:1]).score
    assert single != pytest.approx(bleu.score), "the second reference must change the score"


def test_rouge_equals_rouge_score_on_the_logged_predictions(stories_run):
    rows = read_samples(stories_run[0], "xsum")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)

    segmenter = pysbd.Segmenter(language="en", clean=False)

    def lines(text):  # the documented rule: kept line breaks, else pysbd's sentences
        kept = [line.strip() for line in text.strip().split("\n") if line.strip()]
        if len(kept) > 1:
            return "\n".join(kept)
        return "\n".join(s.strip() for s in segmenter.segment(text.strip()) if s.strip())

    per_doc = [scorer.score(lines(r["references"][0]), lines(r["prediction"])) for r in rows]
    metrics = _metrics(stories_run, "xsum")
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        expected = 100 * sum(s[key].fmeasure for s in per_doc) / len(per_doc)
        assert metrics[key]["value"] == pytest.approx(expected, abs=1e-9)
        assert metrics[key]["scale"] == "0-100"
    assert any(r["prediction"] for r in rows), "the model generated nothing at all"


@pytest.mark.parametrize("task", ["imdb", "sst2"])
def test_accuracy_and_f1_equal_sklearn(stories_run, task):
    rows = read_samples(stories_run[0], task)
    gold = [r["gold"] for r in rows]
    pred = [r["prediction"] for r in rows]
    metrics = _metrics(stories_run, task)
    assert metrics["accuracy"]["value"] == pytest.approx(accuracy_score(gold, pred), abs=1e-12)
    assert metrics["f1"]["value"] == pytest.approx(f1_score(gold, pred, average="binary", pos_label="positive"), abs=1e-12)
    assert metrics["f1"]["positive_label"] == "positive" and metrics["f1"]["average"] == "binary"
    # the prediction is the argmax of the logged choice log-likelihoods
    for r in rows:
        assert r["prediction"] == ["negative", "positive"][max(range(2), key=lambda i: r["loglikelihoods"][i])]


def test_accuracy_is_not_the_share_of_positive_predictions(stories_run):
    """The classic mistake: on a sample where they differ, accuracy must follow the gold labels."""
    rows = read_samples(stories_run[0], "sst2")
    share_positive = sum(r["prediction"] == "positive" for r in rows) / len(rows)
    correct = sum(r["prediction"] == r["gold"] for r in rows) / len(rows)
    assert correct != share_positive
    assert _metrics(stories_run, "sst2")["accuracy"]["value"] == pytest.approx(correct)


def test_perplexity_is_a_ratio_of_sums(stories_run):
    rows = read_samples(stories_run[0], "wikitext2")
    ll = sum(r["loglikelihood"] for r in rows)
    words, nbytes, tokens = (sum(r[k] for r in rows) for k in ("words", "bytes", "tokens"))
    metrics = _metrics(stories_run, "wikitext2")
    assert metrics["word_perplexity"]["value"] == pytest.approx(math.exp(-ll / words), rel=1e-9)
    assert metrics["byte_perplexity"]["value"] == pytest.approx(math.exp(-ll / nbytes), rel=1e-9)
    assert metrics["bits_per_byte"]["value"] == pytest.approx(-ll / nbytes / math.log(2), rel=1e-9)
    assert metrics["token_perplexity"]["value"] == pytest.approx(math.exp(-ll / tokens), rel=1e-9)
    # words are counted on the original page, as lm-eval does
    assert all(r["words"] == len(re.split(r"\s+", r["prompt"])) or r["words"] > 0 for r in rows)


def test_limit_draws_both_classes_from_a_label_sorted_split(stories_run):
    """The aclImdb folders list all negatives first: --limit must not make the task one class."""
    rows = read_samples(stories_run[0], "imdb")
    golds = [r["gold"] for r in rows]
    assert 8 <= golds.count("positive") <= 32, golds
    assert stories_run[1]["tasks"]["imdb"]["doc_ids"] != list(range(40))


@pytest.mark.parametrize("average", ["binary", "macro", "micro", "weighted"])
def test_fast_f1_resamples_equal_sklearn(average):
    """The bootstrap scores F1 from confusion counts; on any resample it must equal sklearn's f1_score."""
    import numpy as np

    from evalkit.metrics import build_scorer

    rng = np.random.default_rng(0)
    labels = ("a", "b") if average == "binary" else ("a", "b", "c")
    gold = rng.choice(labels, 300, p=[0.6, 0.4] if len(labels) == 2 else [0.5, 0.3, 0.2])
    pred = np.where(rng.random(300) < 0.7, gold, rng.choice(labels, 300))
    records = [{"gold": g, "prediction": p} for g, p in zip(gold, pred)]
    options = {"average": average, **({"positive": "a"} if average == "binary" else {})}
    scorer = build_scorer("f1", options, records, labels)
    for _ in range(20):
        idx = rng.integers(0, 300, 300)
        kwargs = {"pos_label": "a"} if average == "binary" else {"labels": list(labels)}
        expected = f1_score(gold[idx], pred[idx], average=average, zero_division=0.0, **kwargs)
        assert scorer.score(idx)["f1"] == pytest.approx(expected, abs=1e-12)
    assert scorer.point()["f1"] == pytest.approx(scorer.score(np.arange(300))["f1"], abs=1e-12)
