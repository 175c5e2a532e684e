"""evalkit against lm-eval 0.4 on the same model and documents: perplexity and multiple-choice accuracy.

lm-eval's own tasks load from the hub, which these machines cannot reach, so the same documents are
written to a JSON-lines file and lm-eval reads them through a local task YAML that keeps its own
wikitext processing (detokeniser, word and byte counts) and its SST-2 prompt.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalkit.data import load_documents, select_documents
from evalkit.engine import RunOptions, evaluate
from evalkit.results import read_samples
from evalkit.tasks import resolve_task

from .conftest import DATA, STORIES

lm_eval = pytest.importorskip("lm_eval")


def _lm_eval(tmp_path: Path, task: str, batch_size: int = 8) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(STORIES, dtype="float32")
    tok = AutoTokenizer.from_pretrained(STORIES)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device="cpu")
    return simple_evaluate(model=lm, tasks=[task], task_manager=TaskManager(include_path=str(tmp_path)),
                           log_samples=True, bootstrap_iters=0, verbosity="ERROR")


def _docs(task: str, limit: int):
    spec = resolve_task(task)
    return select_documents(load_documents(spec, str(DATA)), limit, 1234)


def test_wikitext2_word_perplexity_matches_lm_eval(tmp_path, stories_adapter):
    docs = _docs("wikitext2", 8)
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"page": d["page"]}) + "\n" for d in docs))
    src = Path(lm_eval.__file__).parent / "tasks" / "wikitext"
    shutil.copy(src / "preprocess_wikitext.py", tmp_path)
    yaml_text = (src / "wikitext.yaml").read_text()
    yaml_text = yaml_text.replace("task: wikitext", "task: wikitext_local")
    yaml_text = yaml_text.replace("dataset_path: EleutherAI/wikitext_document_level", "dataset_path: json")
    yaml_text = yaml_text.replace("dataset_name: wikitext-2-raw-v1",
                                  f"dataset_name: null\ndataset_kwargs:\n  data_files:\n    test: {tmp_path / 'docs.jsonl'}")
    yaml_text = yaml_text.replace("training_split: train\n", "").replace("validation_split: validation\n", "")
    (tmp_path / "wikitext_local.yaml").write_text(yaml_text)
    theirs = _lm_eval(tmp_path, "wikitext_local")["results"]["wikitext_local"]

    _, ours = evaluate(RunOptions(tasks=["wikitext2"], limit=8, data_dir=str(DATA), output=str(tmp_path / "out"),
                                  progress=False, bootstrap_iters=0), adapter=stories_adapter, log=lambda _m: None)
    mine = ours["tasks"]["wikitext2"]["metrics"]
    print(f"\nwikitext2 word_perplexity: evalkit {mine['word_perplexity']['value']:.6f} "
          f"lm-eval {theirs['word_perplexity,none']:.6f}")
    assert mine["word_perplexity"]["value"] == pytest.approx(theirs["word_perplexity,none"], rel=1e-3)
    assert mine["byte_perplexity"]["value"] == pytest.approx(theirs["byte_perplexity,none"], rel=1e-3)
    assert mine["bits_per_byte"]["value"] == pytest.approx(theirs["bits_per_byte,none"], rel=1e-3)


def test_sst2_accuracy_and_loglikelihoods_match_lm_eval(tmp_path, stories_adapter):
    limit = 60
    docs = _docs("sst2", limit)
    (tmp_path / "sst2.jsonl").write_text("".join(json.dumps({"sentence": d["sentence"], "label": int(d["label"])}) + "\n" for d in docs))
    spec = resolve_task("sst2")
    (tmp_path / "sst2_local.yaml").write_text(json.dumps({
        "task": "sst2_local", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(tmp_path / "sst2.jsonl")}},
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": spec.doc_to_text,
        "doc_to_target": "label", "doc_to_choice": list(spec.choices), "metric_list": [{"metric": "acc"}],
    }))
    theirs = _lm_eval(tmp_path, "sst2_local")
    _, ours = evaluate(RunOptions(tasks=["sst2"], limit=limit, data_dir=str(DATA), output=str(tmp_path / "out"),
                                  progress=False, bootstrap_iters=0), adapter=stories_adapter, log=lambda _m: None)
    mine = ours["tasks"]["sst2"]["metrics"]["accuracy"]["value"]
    print(f"\nsst2 accuracy ({limit} docs): evalkit {mine:.4f} lm-eval {theirs['results']['sst2_local']['acc,none']:.4f}")
    assert mine == pytest.approx(theirs["results"]["sst2_local"]["acc,none"], abs=1e-12)

    run_dir = next((tmp_path / "out").iterdir())
    our_rows = read_samples(run_dir, "sst2")
    their_rows = sorted(theirs["samples"]["sst2_local"], key=lambda s: s["doc_id"])
    assert len(our_rows) == len(their_rows) == limit
    for a, b in zip(our_rows, their_rows):
        their_ll = [resp[0] for resp in b["filtered_resps"]]
        assert a["loglikelihoods"] == pytest.approx(their_ll, abs=1e-4)


def test_acc_norm_and_acc_bytes_match_lm_eval_per_document(tmp_path, stories_adapter):
    """acc_norm is lm-eval 0.4.13's: loglikelihood / characters of the choice, without the target delimiter.

    The choices "awful" (5 characters, 5 bytes) and "café" (4 characters, 5 bytes) were picked so that
    on these documents dividing by characters, by bytes, or by characters plus the delimiter each
    gives different answers: only lm-eval's own convention can match it document by document.
    """
    limit = 60
    docs = _docs("sst2", limit)
    choices = ["awful", "café"]
    (tmp_path / "sst2.jsonl").write_text("".join(json.dumps({"sentence": d["sentence"], "label": int(d["label"])}) + "\n" for d in docs))
    spec = resolve_task("sst2")
    (tmp_path / "sst2_norm.yaml").write_text(json.dumps({
        "task": "sst2_norm", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(tmp_path / "sst2.jsonl")}},
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": spec.doc_to_text,
        "doc_to_target": "label", "doc_to_choice": choices,
        "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}, {"metric": "acc_bytes"}],
    }))
    theirs = _lm_eval(tmp_path, "sst2_norm")
    ours_yaml = tmp_path / "ours" / "sst2_norm.yaml"
    ours_yaml.parent.mkdir()
    ours_yaml.write_text(json.dumps({
        "task": "sst2_norm", "kind": "multiple_choice", "dataset": {"local": {"path": "sst2/dev.tsv", "format": "tsv"}},
        "doc_to_text": spec.doc_to_text, "choices": choices, "doc_to_target": "{{ label }}",
        "metrics": ["accuracy", "acc_norm", "acc_bytes"],
    }))
    _, ours = evaluate(RunOptions(tasks=[str(ours_yaml)], limit=limit, data_dir=str(DATA), output=str(tmp_path / "out"),
                                  progress=False, bootstrap_iters=0), adapter=stories_adapter, log=lambda _m: None)
    mine = ours["tasks"]["sst2_norm"]["metrics"]
    result = theirs["results"]["sst2_norm"]
    print(f"\nsst2 ({limit} docs, choices {choices}): acc {mine['accuracy']['value']:.4f}/{result['acc,none']:.4f} "
          f"acc_norm {mine['acc_norm']['value']:.4f}/{result['acc_norm,none']:.4f} "
          f"acc_bytes {mine['acc_bytes']['value']:.4f}/{result['acc_bytes,none']:.4f} (evalkit/lm-eval)")
    assert mine["accuracy"]["value"] == pytest.approx(result["acc,none"], abs=1e-12)
    assert mine["acc_norm"]["value"] == pytest.approx(result["acc_norm,none"], abs=1e-12)
    assert mine["acc_bytes"]["value"] == pytest.approx(result["acc_bytes,none"], abs=1e-12)

    run_dir = next((tmp_path / "out").iterdir())
    our_rows = read_samples(run_dir, "sst2_norm")
    their_rows = sorted(theirs["samples"]["sst2_norm"], key=lambda s: s["doc_id"])
    assert [r["scores"]["acc_norm"] for r in our_rows] == [float(s["acc_norm"]) for s in their_rows]
    assert [r["scores"]["acc_bytes"] for r in our_rows] == [float(s["acc_bytes"]) for s in their_rows]
    # the conventions disagree on these documents, so matching lm-eval above pins its convention down
    def correct(divisor):
        return [float(choices[int(np.argmax(np.array(r["loglikelihoods"]) / divisor))] == r["gold"]) for r in our_rows]

    chars = np.array([len(c) for c in choices], dtype=float)
    assert correct(chars) == [r["scores"]["acc_norm"] for r in our_rows]
    assert correct(chars) != [r["scores"]["accuracy"] for r in our_rows]
    assert correct(chars) != correct(np.array([len(c.encode()) for c in choices], dtype=float))
    assert correct(chars) != correct(chars + len(" "))  # with the target delimiter counted
