"""Few-shot prompts: k examples with their gold answers, seeded per document, never the document itself."""

from __future__ import annotations

from evalkit.engine import RunOptions, prepare_task
from evalkit.tasks import resolve_task

from .conftest import DATA


def _work(fewshot: int, seed: int = 1234):
    return prepare_task(resolve_task("sst2"), RunOptions(tasks=["sst2"], limit=8, fewshot=fewshot, seed=seed, data_dir=str(DATA)))


def test_fewshot_prompts_hold_k_answered_examples_and_not_the_document():
    prepared = _work(3)
    assert prepared.spec.fewshot.k == 3 and prepared.spec.config_hash != resolve_task("sst2").config_hash
    by_id = {d["doc_id"]: d for d in prepared.docs}
    for w in prepared.work:
        shots = w.prompt.split("\n\n")
        assert len(shots) == 4
        assert all(s.rsplit("Sentiment: ", 1)[1] in ("negative", "positive") for s in shots[:3])
        assert shots[3] == f"Sentence: {by_id[w.doc_id]['sentence']}\nSentiment:"
        assert by_id[w.doc_id]["sentence"] not in "\n\n".join(shots[:3])


def test_fewshot_examples_are_seeded():
    assert [w.prompt for w in _work(2).work] == [w.prompt for w in _work(2).work]
    assert [w.prompt for w in _work(0).work] == [w.prompt.split("\n\n")[-1] for w in _work(2).work]
