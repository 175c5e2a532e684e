"""Sequence labelling: the conll format, the conll2003 task, and entity-level P/R/F1 against seqeval called directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB1

from evalkit.data import read_local
from evalkit.engine import RunOptions, prepare_task
from evalkit.errors import EvalkitError
from evalkit.metrics import build_scorer, summarize
from evalkit.requests import TagWords
from evalkit.tasks import resolve_task
from evalkit.tasks.loader import parse_task
from evalkit.tasks.spec import LocalSource

from .conftest import DATA

COLUMNS = ("tokens", "pos", "chunk", "ner")


def _read(tmp_path: Path, text: str, columns=COLUMNS):
    (tmp_path / "f.conll").write_text(text)
    return read_local(LocalSource(path="f.conll", format="conll", columns=columns), tmp_path, "t")


def test_conll_reader_handles_the_shared_files_quirks(tmp_path):
    # first -DOCSTART- at the END, several blank lines, and no final newline after the last sentence
    text = ("EU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n\n"
            "Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n\n"
            "-DOCSTART- -X- O O\n\n"
            "BRUSSELS NNP I-NP I-LOC\n1996-08-22 CD I-NP O\n\n"
            "-DOCSTART- -X- O O\n"
            "Swansea NN I-NP I-ORG\n1 CD I-NP O")
    docs = _read(tmp_path, text)
    assert [d["tokens"] for d in docs] == [["EU", "rejects"], ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"],
                                           ["Swansea", "1"]]
    assert docs[0]["ner"] == ["I-ORG", "O"] and docs[3]["pos"] == ["NN", "CD"]


def test_conll_reader_names_a_bad_line(tmp_path):
    with pytest.raises(EvalkitError, match=r"f.conll:2: 3 columns, but dataset.local.columns names 4"):
        _read(tmp_path, "EU NNP I-NP I-ORG\nrejects VBZ O\n")


def test_conll2003_counts_match_the_official_release():
    spec = resolve_task("conll2003")
    train = read_local(spec.dataset.local, DATA, "conll2003", path="conll2003/eng.train")
    testa = read_local(spec.dataset.local, DATA, "conll2003")
    assert (len(train), sum(len(d["tokens"]) for d in train)) == (14041, 203621)
    assert (len(testa), sum(len(d["tokens"]) for d in testa)) == (3250, 51362)
    # 5,942 entities in eng.testa (Tjong Kim Sang & De Meulder 2003, Table 2), under conlleval chunking of IOB1
    assert len(get_entities([d["ner"] for d in testa])) == 5942


def test_conll2003_task_builds_word_tagging_requests():
    spec = resolve_task("conll2003")
    prepared = prepare_task(spec, RunOptions(tasks=["conll2003"], limit=5, data_dir=str(DATA)))
    assert len(prepared.work) == 5
    for w in prepared.work:
        (req,) = w.requests
        assert isinstance(req, TagWords)
        assert list(req.words) == w.words and len(w.gold) == len(w.words)
        assert req.labels == spec.labels
        assert w.prompt == " ".join(w.words)


def test_sequence_labeling_task_errors():
    base = {"task": "t", "kind": "sequence_labeling", "dataset": {"local": {"path": "x", "format": "conll", "columns": ["w", "t"]}},
            "metrics": ["entity_f1"]}
    with pytest.raises(EvalkitError, match="words_field.*is required"):
        parse_task(base, "t.yaml")
    with pytest.raises(EvalkitError, match="unknown metric 'accuracy' for kind sequence_labeling"):
        parse_task({**base, "words_field": "w", "tags_field": "t", "metrics": ["accuracy"]}, "t.yaml")
    with pytest.raises(EvalkitError, match="format 'conll' needs the names of its columns"):
        parse_task({**base, "words_field": "w", "tags_field": "t",
                    "dataset": {"local": {"path": "x", "format": "conll"}}}, "t.yaml")


def _records(gold, pred):
    return [{"doc_id": i, "gold": g, "prediction": p} for i, (g, p) in enumerate(zip(gold, pred))]


def _random_tags(rng, n_sent, types=("PER", "ORG", "LOC", "MISC")):
    out = []
    for _ in range(n_sent):
        tags = []
        for _ in range(rng.integers(1, 15)):
            r = rng.random()
            tags.append("O" if r < 0.6 else f"{'B' if r < 0.7 else 'I'}-{types[rng.integers(len(types))]}")
        out.append(tags)
    return out


@pytest.mark.parametrize("mode", ["conlleval", "strict"])
def test_entity_f1_equals_seqeval_called_directly(mode):
    rng = np.random.default_rng(0)
    gold, pred = _random_tags(rng, 300), None
    pred = [[t if rng.random() < 0.7 else g for t, g in zip(tags, _random_tags(rng, 1)[0] * 20)] for tags in gold]
    scorer = build_scorer("entity_f1", {"scheme": "IOB1", "mode": mode}, _records(gold, pred))
    kw = {"mode": "strict", "scheme": IOB1} if mode == "strict" else {}
    expected = {"entity_precision": precision_score(gold, pred, **kw), "entity_recall": recall_score(gold, pred, **kw),
                "entity_f1": f1_score(gold, pred, **kw)}
    values = summarize(scorer, bootstrap_iters=200, seed=1)
    for name, value in expected.items():
        assert values[name].value == pytest.approx(value, abs=1e-12)
        # the per-sentence counts behind the bootstrap give the same corpus value
        assert scorer.score(np.arange(scorer.n))[name] == pytest.approx(value, abs=1e-12)
        assert 0 < values[name].stderr < 0.1 and values[name].stderr_method.startswith("bootstrap(200")
    assert values["entity_f1"].extra["scheme"] == "IOB1" and values["entity_f1"].extra["mode"] == mode


def test_strict_mode_applies_the_declared_scheme():
    gold = [["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]]  # IOB2-style tags: conlleval reads them, strict IOB1 does not
    lenient = build_scorer("entity_f1", {"scheme": "IOB1"}, _records(gold, pred)).point()["entity_f1"]
    strict = build_scorer("entity_f1", {"scheme": "IOB1", "mode": "strict"}, _records(gold, pred)).point()["entity_f1"]
    assert lenient == pytest.approx(f1_score(gold, pred)) and lenient > strict
    assert strict == pytest.approx(f1_score(gold, pred, mode="strict", scheme=IOB1))


def test_gold_tags_outside_the_scheme_are_refused():
    with pytest.raises(EvalkitError, match="gold tag 'S-PER' .* is not an IOB2 tag"):
        build_scorer("entity_f1", {"scheme": "IOB2"}, _records([["S-PER"]], [["O"]]))
    build_scorer("entity_f1", {"scheme": "IOBES"}, _records([["S-PER"]], [["O"]]))  # fine under IOBES


def test_compare_pairs_entity_f1_by_sentence(tmp_path):
    from evalkit.analysis.compare import compare_runs

    from .fake_runs import write_run

    spec = resolve_task("conll2003")
    rng = np.random.default_rng(3)
    gold = _random_tags(rng, 400)
    worse = [[t if rng.random() < 0.6 else "O" for t in tags] for tags in gold]  # drops entities in 40% of tags
    better = [[t if rng.random() < 0.9 else "O" for t in tags] for tags in gold]
    base = write_run(tmp_path, "base", {"conll2003": (spec, _records(gold, worse))})
    cand = write_run(tmp_path, "cand", {"conll2003": (spec, _records(gold, better))})
    rows = {r.metric: r for r in compare_runs(base, cand, iterations=300).rows}
    assert set(rows) == {"entity_precision", "entity_recall", "entity_f1"}
    assert rows["entity_f1"].delta == pytest.approx(f1_score(gold, better) - f1_score(gold, worse))
    assert rows["entity_f1"].verdict == "improved" and rows["entity_f1"].p_value < 0.05
