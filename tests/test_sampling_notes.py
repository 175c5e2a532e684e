"""Labels and sampling that mislead (issue 9 item 14): a note for --limit past the data and for truncated inputs,
`--limit-mode first` for lm-eval's first-N, and the bundled model named for what it is."""

from __future__ import annotations

import json

from evalkit.adapters.hf.causal import HFCausalAdapter
from evalkit.adapters.hf.loading import BUNDLED_LABEL
from evalkit.cli.main import main
from evalkit.engine import RunOptions, evaluate

from .conftest import DATA, STORIES


def _evaluate(adapter, tmp_path, **kw):
    lines: list[str] = []
    options = RunOptions(model=str(STORIES), data_dir=str(DATA), output=str(tmp_path), progress=False, batch_size=8, **kw)
    _, results = evaluate(options, adapter=adapter, log=lines.append)
    return results, lines


def test_a_limit_larger_than_the_data_set_says_so(stories_adapter, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "tiny.jsonl").write_text("".join(f'{{"text": "review {i}", "label": {i % 2}}}\n' for i in range(5)))
    task = tmp_path / "tiny.yaml"
    task.write_text("task: tiny\nkind: multiple_choice\ndataset: {local: {path: tiny.jsonl, format: jsonl}}\n"
                    "doc_to_text: '{{ text }}'\nchoices: [negative, positive]\ndoc_to_target: '{{ label }}'\nmetrics: [accuracy]\n")
    lines: list[str] = []
    options = RunOptions(tasks=[str(task)], data_dir=str(data), output=str(tmp_path / "out"), progress=False, limit=50)
    _, results = evaluate(options, adapter=stories_adapter, log=lines.append)
    assert results["tasks"]["tiny"]["n"] == 5
    assert any("--limit 50 is larger than task 'tiny' (5 documents)" in line for line in lines)


def test_a_run_where_every_input_was_truncated_warns(tmp_path):
    tiny_context = HFCausalAdapter(model=str(STORIES), device="cpu", batch_size=8, max_length=8)
    results, lines = _evaluate(tiny_context, tmp_path, tasks=["sst2"], limit=6)
    assert results["tasks"]["sst2"]["truncated_inputs"] == 12
    assert any("every input of task 'sst2' (12) was longer than the model's context of 8 tokens" in line for line in lines)


def test_no_truncation_note_when_nothing_was_cut(stories_adapter, tmp_path):
    _, lines = _evaluate(stories_adapter, tmp_path, tasks=["sst2"], limit=6)
    assert not any("context" in line for line in lines)


def test_limit_mode_first_takes_the_first_documents_like_lm_eval(stories_adapter, tmp_path):
    first, _ = _evaluate(stories_adapter, tmp_path / "first", tasks=["imdb"], limit=6, limit_mode="first")
    sampled, _ = _evaluate(stories_adapter, tmp_path / "random", tasks=["imdb"], limit=6)
    assert first["tasks"]["imdb"]["doc_ids"] == [0, 1, 2, 3, 4, 5]
    assert first["config"]["limit_mode"] == "first" and sampled["config"]["limit_mode"] == "random"
    golds = {json.loads(line)["gold"] for line in next((tmp_path / "first").iterdir()).joinpath("imdb.samples.jsonl").read_text().splitlines()}
    assert golds == {"negative"}, "aclImdb lists the negatives first: first-N is one class, which is why random is the default"
    sampled_golds = {json.loads(line)["gold"] for line in next((tmp_path / "random").iterdir()).joinpath("imdb.samples.jsonl").read_text().splitlines()}
    assert sampled_golds == {"negative", "positive"}


def test_limit_mode_is_checked_by_the_cli(capsys):
    assert _exit_code(["run", "--tasks", "sst2", "--limit-mode", "last"]) == 2
    assert "--limit-mode" in capsys.readouterr().err


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def test_the_bundled_model_is_labelled_as_quantised_in_its_identity(smollm2_adapter):
    identity = smollm2_adapter.identity
    assert identity["source"] == "bundled" and identity["label"] == BUNDLED_LABEL
    assert "Q4_1" in identity["label"] and "de-quantised" in identity["label"]
