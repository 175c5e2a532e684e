"""Local layouts users have (issue 9 item 19): one line file per label (rt-polarity.pos / .neg), and a
`folders` layout of the wrong shape that says which shape it expects."""

from __future__ import annotations

import pytest

from evalkit.cli import main
from evalkit.data import load_documents
from evalkit.errors import EvalkitError
from evalkit.tasks import parse_task

POS = "the rock is destined to be the 21st century's new \" conan \" .\n\nan absorbing , gorgeous film .\n"
NEG = "simplistic , silly and tedious .\r\nit's so laddish and juvenile , only teenage boys could find it funny .\n"


def _spec(local: dict, **extra):
    return parse_task({"task": "rt", "kind": "multiple_choice", "dataset": {"local": local},
                       "doc_to_text": "{{ text }}", "choices": ["negative", "positive"],
                       "doc_to_target": "{{ {'neg': 'negative', 'pos': 'positive'}[label] }}", "metrics": ["accuracy"], **extra},
                      "rt.yaml")


def test_label_lines_reads_rt_polarity_pos_and_neg_one_example_per_line(tmp_path):
    folder = tmp_path / "rt-polaritydata"
    folder.mkdir()
    (folder / "rt-polarity.pos").write_text(POS, encoding="utf-8")
    (folder / "rt-polarity.neg").write_bytes(NEG.encode("utf-8"))
    spec = _spec({"path": "rt-polaritydata", "format": "label_lines",
                  "files": {"neg": "rt-polarity.neg", "pos": "rt-polarity.pos"}})
    docs = load_documents(spec, tmp_path)
    assert [(d["label"], d["text"]) for d in docs] == [
        ("neg", "simplistic , silly and tedious ."),
        ("neg", "it's so laddish and juvenile , only teenage boys could find it funny ."),
        ("pos", "the rock is destined to be the 21st century's new \" conan \" ."),
        ("pos", "an absorbing , gorgeous film ."),
    ]
    assert [(d["file"], d["line"]) for d in docs] == [("rt-polarity.neg", 1), ("rt-polarity.neg", 2),
                                                      ("rt-polarity.pos", 1), ("rt-polarity.pos", 3)]
    assert "files" in spec.to_dict()["dataset"]["local"]


def test_label_lines_field_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "t.yaml"
    for local, words in (("{path: rt, format: label_lines}", "'dataset.local.files'"),
                         ("{path: rt, format: label_lines, files: {pos: ../x.pos}}", "'dataset.local.files.pos'"),
                         ("{path: rt, format: jsonl, files: {pos: x.pos}}", "for format 'label_lines'")):
        bad.write_text(f"task: t\nkind: multiple_choice\ndataset:\n  local: {local}\ndoc_to_text: x\n"
                       "choices: [a, b]\ndoc_to_target: a\nmetrics: [accuracy]\n")
        assert main(["validate", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err


def test_label_lines_missing_file_names_it(tmp_path):
    (tmp_path / "rt").mkdir()
    (tmp_path / "rt" / "a.pos").write_text("good\n")
    spec = _spec({"path": "rt", "format": "label_lines", "files": {"pos": "a.pos", "neg": "a.neg"}})
    with pytest.raises(EvalkitError, match="a.neg"):
        load_documents(spec, tmp_path)


@pytest.mark.parametrize("shape", ["flat_txt_files", "label_folders_without_txt", "empty"])
def test_folders_with_the_wrong_shape_say_which_shape_they_expect(tmp_path, shape):
    root = tmp_path / "reviews"
    root.mkdir()
    if shape == "flat_txt_files":  # files straight in the folder, no label folders
        (root / "0_9.txt").write_text("great")
        (root / "1_2.txt").write_text("awful")
    elif shape == "label_folders_without_txt":
        (root / "pos").mkdir()
        (root / "pos" / "0_9.review").write_text("great")
    spec = _spec({"path": "reviews", "format": "folders"})
    with pytest.raises(EvalkitError) as err:
        load_documents(spec, tmp_path)
    message = str(err.value)
    assert "<path>/<label>/<name>.txt" in message and "one example per file" in message
    if shape == "flat_txt_files":
        assert "2 loose file(s)" in message
