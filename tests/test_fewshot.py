"""Few-shot prompts: k examples with their gold answers from the task's few-shot split (the evaluation split only when
the task opts in), seeded per document, never the document itself; the pool's identity is in the task hash."""

from __future__ import annotations

import shutil

from evalkit.cli import main
from evalkit.engine import RunOptions, prepare_task, task_config
from evalkit.tasks import resolve_task

from .conftest import DATA, ROOT


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


def _train_sentences() -> set[str]:
    lines = (DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")[1:]
    return {line.rsplit("\t", 1)[0] for line in lines if line}


def test_sst2_examples_come_from_its_train_split_and_the_pool_is_in_the_hash():
    """Issue 9 item 11: without a local few-shot source the examples came from the dev set being scored."""
    prepared = _work(3)
    train = _train_sentences()
    dev = {d["sentence"] for d in prepared.docs}
    for w in prepared.work:
        shots = [s.split("\n")[0].removeprefix("Sentence: ") for s in w.prompt.split("\n\n")[:3]]
        assert all(s in train and s not in dev for s in shots), shots
    pool = prepared.identity["fewshot_pool"]
    assert (pool["source"], pool["path"], pool["rows"]) == ("local", "sst2/train.tsv", 67349)
    zero = _work(0).identity
    assert zero["fewshot_pool"] is None and zero["data"] == prepared.identity["data"]


def test_another_fewshot_pool_changes_the_task_hash_not_the_spec_hash(tmp_path):
    """A hub run and a local run shared one hash with different pools; the pool's content is in the hash now."""
    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    shutil.copy(DATA / "sst2" / "dev.tsv", data / "dev.tsv")
    lines = (DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").split("\n")
    (data / "train.tsv").write_text("\n".join(lines[:101]) + "\n", encoding="utf-8")
    small = prepare_task(resolve_task("sst2"), RunOptions(tasks=["sst2"], limit=8, fewshot=3, data_dir=str(tmp_path / "data")))
    full = _work(3)
    small_cfg, full_cfg = task_config(small, {}), task_config(full, {})  # results.json's config entries
    assert small_cfg["spec_hash"] == full_cfg["spec_hash"]
    assert small_cfg["data"]["sha256"] == full_cfg["data"]["sha256"]
    assert small_cfg["fewshot_pool"]["rows"] == 100 and small_cfg["hash"] != full_cfg["hash"]


def test_a_task_without_a_fewshot_split_is_refused_before_the_model_loads(capsys):
    """imdb has no local train split in ../shared/data: --fewshot 2 used to sample the test reviews being scored."""
    code = main(["run", "--tasks", "imdb", "--fewshot", "2", "--limit", "4", "--data-dir", str(DATA),
                 "--model", "/nonexistent/model", "--no-progress"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert "2-shot prompts need a few-shot split" in err[0] and "fewshot.from_eval_split: true" in err[0]


def test_wmt21_opts_in_to_drawing_from_its_test_set_never_the_document_itself():
    prepared = prepare_task(resolve_task("wmt21-de-en"), RunOptions(tasks=["wmt21-de-en"], limit=10, fewshot=3,
                                                                     data_dir=str(DATA)))
    assert prepared.identity["fewshot_pool"]["source"] == "evaluation split"
    by_id = {d["doc_id"]: d for d in prepared.docs}
    for w in prepared.work:
        shots = w.prompt.split("\n\n")
        assert len(shots) == 4 and by_id[w.doc_id]["source"] not in "\n\n".join(shots[:3])


def test_from_eval_split_must_be_a_boolean(tmp_path, capsys):
    task = tmp_path / "t.yaml"
    text = (ROOT / "tasks" / "wmt21-de-en.yaml").read_text().replace("from_eval_split: true", "from_eval_split: yes please")
    task.write_text(text.replace("task: wmt21-de-en", "task: t"))
    assert main(["validate", str(task)]) == 2
    err = capsys.readouterr().err.strip()
    assert "field 'fewshot.from_eval_split': must be bool" in err and "\n" not in err
