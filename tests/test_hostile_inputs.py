"""Hostile or broken inputs: task files cannot run code, templates cannot leave the sandbox, data paths cannot
leave the data directory, model code runs only when asked, and malformed rows are errors or counted, never skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.cli.main import build_parser, main
from evalkit.engine import RunOptions, evaluate, prepare_task
from evalkit.errors import EvalkitError
from evalkit.tasks import load_task_file

from .conftest import DATA, STORIES

TASK = """
task: tiny
kind: multiple_choice
dataset:
  local: {{path: {path}, format: jsonl}}
doc_to_text: {template}
choices: [negative, positive]
doc_to_target: "{{{{ label }}}}"
metrics: [accuracy]
{extra}
"""
ROWS = [{"sentence": "a good film", "label": 1}, {"sentence": "a dull film", "label": 0}, {"sentence": "fine", "label": 1}]


def _task(folder: Path, template: str = '"{{ sentence }}\\nAnswer:"', path: str = "data.jsonl", extra: str = "",
          rows: list | None = None) -> Path:
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (ROWS if rows is None else rows)))
    task = folder / "tiny.yaml"
    task.write_text(TASK.format(path=path, template=template, extra=extra))
    return task


def _one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _prepare(task: Path, data_dir: Path):
    return prepare_task(load_task_file(task), RunOptions(tasks=[str(task)], data_dir=str(data_dir)))


# -- YAML: a safe loader only --------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
    "!function utils.touch_{marker}",  # lm-eval's tag for running Python from a task file
])
def test_yaml_python_tags_are_refused_without_running_anything(tmp_path, capsys, payload):
    marker = tmp_path / "pwned"
    task = tmp_path / "evil.yaml"
    task.write_text(f"task: evil\nkind: generate\ndoc_to_text: {payload.format(marker=marker)}\n")
    with pytest.raises(EvalkitError, match="invalid YAML.*(constructor|tag)"):
        load_task_file(task)
    line = _one_line_error(capsys, ["validate", str(task)])
    assert "evil.yaml" in line and "invalid YAML" in line
    assert not marker.exists(), "no code ran"


# -- Jinja2: a sandbox --------------------------------------------------------------------------------
@pytest.mark.parametrize("template, refusal", [
    ("{{ ''.__class__.__mro__ }}", "__class__"),
    ("{{ cycler.__init__.__globals__.os.system('id') }}", "__init__"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", "__globals__"),
    ("{{ self.__init__.__globals__ }}", "__init__"),
    ("{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}", "__class__"),
    ("{{ '{0.__class__}'.format(sentence) }}", "__class__"),
    ("{{ sentence | attr('__class__') }}", "__class__"),
    ("{{ 'x' * 10**10 }}", "longer than"),
    ("{{ 9 ** 999999 }}", "too large"),
])
def test_template_escape_attempts_fail_cleanly(tmp_path, capsys, template, refusal):
    task = _task(tmp_path, template=json.dumps(template))
    with pytest.raises(EvalkitError, match=f"doc \\d+ doc_to_text: template refused by the sandbox: .*{refusal}"):
        _prepare(task, tmp_path)
    line = _one_line_error(capsys, ["run", "--tasks", str(task), "--data-dir", str(tmp_path), "--model", str(STORIES),
                                    "--output", str(tmp_path / "out"), "--no-progress", "--no-cache"])
    assert "sandbox" in line and "tiny" in line


def test_templates_still_render_ordinary_prompts(tmp_path):
    prepared = _prepare(_task(tmp_path, template='"{{ sentence | upper }} ({{ sentence | length }})\\nAnswer:"'), tmp_path)
    assert prepared.work[0].prompt == "A GOOD FILM (11)\nAnswer:"


# -- data paths: under the data directory -------------------------------------------------------------
@pytest.mark.parametrize("path", ["../secret.jsonl", "sub/../../secret.jsonl", "/etc/passwd"])
def test_dataset_path_escapes_are_refused_when_the_task_is_loaded(tmp_path, capsys, path):
    line = _one_line_error(capsys, ["validate", str(_task(tmp_path, path=json.dumps(path)))])
    assert "dataset.local.path" in line and "inside the data directory" in line


@pytest.mark.parametrize("field, extra", [
    ("fewshot.local", "fewshot: {k: 1, local: ../secret.jsonl}"),
    ("fewshot.local", "fewshot: {k: 1, local: /etc/passwd}"),
])
def test_fewshot_path_escapes_are_refused_when_the_task_is_loaded(tmp_path, capsys, field, extra):
    line = _one_line_error(capsys, ["validate", str(_task(tmp_path, extra=extra))])
    assert field in line and "inside the data directory" in line


def test_parallel_source_and_reference_escapes_are_refused(tmp_path):
    for local in ("{path: wmt, format: parallel, source: ../../etc/passwd, references: [ref.txt]}",
                  "{path: wmt, format: parallel, source: src.txt, references: [../../../etc/passwd]}"):
        task = tmp_path / "t.yaml"
        task.write_text(f"task: t\nkind: generate\ndataset:\n  local: {local}\ndoc_to_text: x\nreferences_field: references\n"
                        "metrics: [bleu]\n")
        with pytest.raises(EvalkitError, match="inside the data directory"):
            load_task_file(task)


def test_symlinks_out_of_the_data_directory_are_refused_for_data_and_fewshot_files(tmp_path):
    secret = tmp_path / "outside" / "secret.jsonl"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"sentence": "private", "label": 1}) + "\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "link.jsonl").symlink_to(secret)
    task = _task(data, path="link.jsonl")
    with pytest.raises(EvalkitError, match="'link.jsonl' escapes the data directory"):
        _prepare(task, data)
    task = _task(data, extra="fewshot: {k: 1, local: link.jsonl}")
    with pytest.raises(EvalkitError, match="'link.jsonl' escapes the data directory"):
        _prepare(task, data)


# -- model code: only with --trust-remote-code --------------------------------------------------------
def _model_with_custom_code(folder: Path) -> Path:
    import shutil

    shutil.copytree(STORIES, folder)
    (folder / "custom_model.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('EXECUTED').write_text('code ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
        "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="evil", auto_map={"AutoConfig": "custom_model.EvilConfig",
                                               "AutoModelForCausalLM": "custom_model.EvilModel"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_model_code_does_not_run_without_trust_remote_code(tmp_path, capsys):
    model = _model_with_custom_code(tmp_path / "model")
    line = _one_line_error(capsys, ["run", "--tasks", "sst2", "--limit", "2", "--data-dir", str(DATA), "--model", str(model),
                                    "--output", str(tmp_path / "out"), "--no-progress", "--no-cache"])
    assert "--trust-remote-code" in line and "own Python code" in line
    assert not (model / "EXECUTED").exists()


def test_trust_remote_code_is_off_unless_the_flag_is_given(monkeypatch, tmp_path):
    assert build_parser().parse_args(["run", "--tasks", "sst2"]).trust_remote_code is False
    assert RunOptions(tasks=["sst2"]).trust_remote_code is False
    seen = []
    import evalkit.adapters.hf.adapter as hf_adapter

    def fake_load(spec, dtype, trust_remote_code, revision, model_class=None):
        seen.append(trust_remote_code)
        raise EvalkitError("stop here")

    monkeypatch.setattr(hf_adapter, "load_model", fake_load)
    for flag in ([], ["--trust-remote-code"]):
        main(["run", "--tasks", "sst2", "--limit", "1", "--data-dir", str(DATA), "--model", str(STORIES),
              "--output", str(tmp_path), "--no-cache", *flag])
    assert seen == [False, True]


# -- malformed rows: an error that names the row, or a counted handling --------------------------------
def test_a_row_missing_a_field_is_an_error_naming_the_row_and_field(tmp_path):
    rows = ROWS + [{"label": 1}]
    with pytest.raises(EvalkitError, match="doc 3 doc_to_text: 'sentence' is undefined.*has fields: doc_id, label"):
        _prepare(_task(tmp_path, rows=rows), tmp_path)


def test_a_row_missing_its_label_is_an_error(tmp_path):
    with pytest.raises(EvalkitError, match="doc 1 doc_to_target: 'label' is undefined"):
        _prepare(_task(tmp_path, rows=[ROWS[0], {"sentence": "no label"}]), tmp_path)


def test_bytes_that_are_not_utf8_are_an_error_with_the_offset(tmp_path):
    task = _task(tmp_path)
    (tmp_path / "data.jsonl").write_bytes(b'{"sentence": "caf\xe9", "label": 1}\n')
    with pytest.raises(EvalkitError, match=r"data.jsonl is not UTF-8 \(bad byte at offset 17\)"):
        _prepare(task, tmp_path)


def test_a_lone_surrogate_from_a_json_escape_is_an_error(tmp_path):
    task = _task(tmp_path)
    (tmp_path / "data.jsonl").write_text('{"sentence": "bad \\ud800 text", "label": 1}\n')
    with pytest.raises(EvalkitError, match="doc 0 doc_to_text: the document holds text that is not valid Unicode"):
        _prepare(task, tmp_path)


def test_empty_text_is_an_error_for_perplexity_and_a_scored_prompt_for_classification(tmp_path):
    task = tmp_path / "ppl.yaml"
    task.write_text("task: ppl\nkind: perplexity\ndataset:\n  local: {path: data.jsonl, format: jsonl}\n"
                    "doc_to_text: '{{ sentence }}'\nmetrics: [perplexity]\n")
    (tmp_path / "data.jsonl").write_text('{"sentence": "some text"}\n{"sentence": "   "}\n')
    with pytest.raises(EvalkitError, match="doc 1: the text to score is empty"):
        _prepare(task, tmp_path)
    prepared = _prepare(_task(tmp_path, rows=[{"sentence": "", "label": 1}]), tmp_path)
    assert prepared.work[0].prompt == "\nAnswer:" and len(prepared.work[0].requests) == 2


def test_malformed_lines_and_rows_name_the_file_and_line(tmp_path):
    task = _task(tmp_path)
    (tmp_path / "data.jsonl").write_text('{"sentence": "ok", "label": 1}\n{"sentence": "cut\n')
    with pytest.raises(EvalkitError, match="data.jsonl:2: invalid JSON"):
        _prepare(task, tmp_path)
    (tmp_path / "data.jsonl").write_text('{"sentence": "ok", "label": 1}\n["a", "list"]\n')
    with pytest.raises(EvalkitError, match="data.jsonl:2: each JSON line must be an object"):
        _prepare(task, tmp_path)


def test_a_document_longer_than_the_context_is_truncated_and_counted(tmp_path, stories_adapter):
    long_text = "once upon a time there was a very long story. " * 400  # about 19,000 characters, far past 512 tokens
    rows = [{"sentence": long_text, "label": 1}, *ROWS[:2]]
    options = RunOptions(tasks=[str(_task(tmp_path, rows=rows))], data_dir=str(tmp_path), output=str(tmp_path / "out"),
                         progress=False, bootstrap_iters=10)
    run_dir, results = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
    assert results["tasks"]["tiny"]["truncated_inputs"] == 2, "both choices of the long document, and nothing else"
    records = [json.loads(line) for line in (run_dir / "tiny.samples.jsonl").read_text().splitlines()]
    assert [r["truncated"] for r in records] == [True, False, False]
    assert results["tasks"]["tiny"]["n"] == 3, "the long document is scored, not dropped"


def test_no_python_object_reaches_a_task_spec(tmp_path):
    """Even a valid-looking file cannot smuggle a non-plain value into metric options (they go into results.json)."""
    task = _task(tmp_path, extra="")
    text = task.read_text().replace("metrics: [accuracy]", "metrics:\n  - name: accuracy\n    options: {when: 2001-12-14}")
    task.write_text(text)
    with pytest.raises(EvalkitError, match="options.*'when' must be a string, number or boolean"):
        load_task_file(task)


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "x\u0000y", ".hidden"])
def test_a_task_name_cannot_steer_where_result_files_are_written(tmp_path, name):
    task = _task(tmp_path)
    task.write_text(task.read_text().replace("task: tiny", f"task: {json.dumps(name)}"))
    with pytest.raises(EvalkitError, match="field 'task'.*is not a task name"):
        load_task_file(task)
