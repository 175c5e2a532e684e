"""Local data formats under --data-dir, and the shipped offline layouts of ../shared/data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from evalkit.data import load_documents, select_documents
from evalkit.errors import EvalkitError
from evalkit.tasks import parse_task, resolve_task

from .conftest import DATA

ROWS = [{"text": "good film", "label": "1"}, {"text": "bad, film", "label": "0"}, {"text": "fine \"quoted\"", "label": "1"}]


def _spec(fmt: str, path: str, **local):
    return parse_task({
        "task": "t", "kind": "multiple_choice", "dataset": {"local": {"path": path, "format": fmt, **local}},
        "doc_to_text": "{{ text }}", "choices": ["no", "yes"], "doc_to_target": "{{ label }}", "metrics": ["accuracy"],
    }, "test")


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet"])
def test_tabular_formats_give_the_same_documents(tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    frame = pd.DataFrame(ROWS)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        path.write_text("text\tlabel\n" + "".join(f"{r['text']}\t{r['label']}\n" for r in ROWS))
    else:
        frame.to_parquet(path)
    docs = load_documents(_spec(fmt, path.name), tmp_path)
    assert [(d["text"], str(d["label"]), d["doc_id"]) for d in docs] == [(r["text"], r["label"], i) for i, r in enumerate(ROWS)]


def test_text_format_one_document_per_line_or_split_on_a_heading(tmp_path):
    (tmp_path / "a.txt").write_text(" = A = \nline one\n\n = = sub = = \nmore\n = B = \nlast\n")
    lines = load_documents(_spec("text", "a.txt"), tmp_path)
    assert len(lines) == 6
    docs = load_documents(_spec("text", "a.txt", split_on="^ = [^=].* = $"), tmp_path)
    assert [d["text"] for d in docs] == [" = A = \nline one\n\n = = sub = = \nmore", " = B = \nlast\n"]


def test_shipped_offline_layouts_load_with_their_real_sizes():
    sizes = {"imdb": 1000, "sst2": 872, "xsum": 1000, "wmt21-de-en": 1000, "wmt21-en-de": 1002}
    for task, n in sizes.items():
        assert len(load_documents(resolve_task(task), DATA)) == n, task
    imdb = load_documents(resolve_task("imdb"), DATA)
    assert {d["label"] for d in imdb} == {"neg", "pos"}
    de_en = load_documents(resolve_task("wmt21-de-en"), DATA)
    assert all(len(d["references"]) == 2 for d in de_en)
    wiki = load_documents(resolve_task("wikitext2"), DATA)
    assert 55 <= len(wiki) <= 70
    assert all(d["page"].lstrip().startswith("= ") for d in wiki)
    assert sum(len(d["page"].split()) for d in wiki) == pytest.approx(241_211, rel=0.01)


def test_limit_sample_is_seeded_and_stable():
    docs = load_documents(resolve_task("imdb"), DATA)
    a = [d["doc_id"] for d in select_documents(docs, 50, 1234)]
    b = [d["doc_id"] for d in select_documents(docs, 50, 1234)]
    c = [d["doc_id"] for d in select_documents(docs, 50, 99)]
    assert a == b and a != c and a == sorted(a)
    labels = [docs[i]["label"] for i in a]
    assert 15 <= labels.count("pos") <= 35


def test_folders_need_a_folder(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(EvalkitError, match="folder"):
        load_documents(_spec("folders", "f.txt"), tmp_path)
