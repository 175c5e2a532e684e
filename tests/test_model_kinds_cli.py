"""The model kinds from the command line: what each refuses is one line and exit code 2; chat runs log what the model saw."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from evalkit.adapters.hf.causal import HFCausalAdapter
from evalkit.cli import main
from evalkit.engine import RunOptions, evaluate
from evalkit.results import read_samples

from .conftest import DATA, STORIES
from .tiny_models import relabel, tiny_chat_llama, tiny_classifier


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinds")
    classifier = tiny_classifier(root / "classifier")
    return {"classifier": classifier, "numbered": relabel(classifier, root / "numbered", ("LABEL_0", "LABEL_1")),
            "chat": tiny_chat_llama(root / "chat")}


def _one_line(capsys, argv: list[str], tmp_path) -> str:
    code = main(["run", *argv, "--data-dir", str(DATA), "--limit", "2", "--output", str(tmp_path / "out"),
                 "--no-progress", "--no-cache"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


def test_a_classifier_refuses_a_generation_task(capsys, tmp_path, folders):
    line = _one_line(capsys, ["--adapter", "hf-classifier", "--model", str(folders["classifier"]), "--tasks", "xsum"], tmp_path)
    assert "adapter 'hf-classifier' answers only multiple_choice tasks, and task 'xsum' is a generate task" in line


def test_a_label_that_maps_to_nothing(capsys, tmp_path, folders):
    line = _one_line(capsys, ["--adapter", "hf-classifier", "--model", str(folders["numbered"]), "--tasks", "sst2"], tmp_path)
    assert "maps to no model label" in line
    assert "model labels: LABEL_0, LABEL_1" in line and "task labels: negative, positive" in line and "label_map=" in line


def test_sequence_labeling_needs_a_token_classifier(capsys, tmp_path):
    line = _one_line(capsys, ["--model", str(STORIES), "--tasks", "conll2003"], tmp_path)
    assert "adapter 'hf-causal' answers only" in line and "use --adapter hf-token-classifier" in line


def test_chat_options_a_classifier_or_a_model_without_template_refuse(capsys, tmp_path, folders):
    line = _one_line(capsys, ["--adapter", "hf-classifier", "--model", str(folders["classifier"]), "--tasks", "sst2",
                              "--apply-chat-template"], tmp_path)
    assert "is a text classifier" in line
    line = _one_line(capsys, ["--model", str(STORIES), "--tasks", "sst2", "--apply-chat-template"], tmp_path)
    assert "has no chat template" in line


def test_a_chat_run_scores_the_rendered_conversation(tmp_path, folders):
    adapter = HFCausalAdapter(model=str(folders["chat"]), device="cpu", batch_size=8)
    opts = RunOptions(tasks=["sst2"], limit=3, data_dir=str(DATA), output=str(tmp_path), progress=False, bootstrap_iters=0)
    chat_dir, chat = evaluate(RunOptions(**{**opts.__dict__, "apply_chat_template": True, "system_prompt": "Be brief.",
                                            "run_id": "chat"}), adapter=adapter, log=lambda m: None)
    plain_dir, plain = evaluate(RunOptions(**{**opts.__dict__, "run_id": "plain"}), adapter=adapter, log=lambda m: None)
    tok = adapter.tokenizer
    template_hash = hashlib.sha256(tok.chat_template.encode()).hexdigest()
    fmt = chat["config"]["tasks"]["sst2"]["prompt_format"]
    assert fmt == {"apply_chat_template": True, "system_prompt": "Be brief.", "fewshot_as_multiturn": False,
                   "chat_template_sha256": template_hash}
    assert chat["config"]["tasks"]["sst2"]["hash"] != plain["config"]["tasks"]["sst2"]["hash"]
    assert "prompt_format" not in plain["config"]["tasks"]["sst2"]
    for rec in read_samples(chat_dir, "sst2"):
        messages = [{"role": r, "content": c} for r, c in rec["messages"]]
        assert messages[0] == {"role": "system", "content": "Be brief."} and messages[1]["content"] == rec["plain_prompt"]
        rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert rec["prompt"] == rendered and rendered.endswith("<|im_start|>assistant\n")
        for choice, logprob in zip(rec["choices"], rec["loglikelihoods"]):
            # lm-eval's conventions: no delimiter before the answer; the context's trailing "\n" moves to it
            ctx = tok.encode(rendered.rstrip("\n"), add_special_tokens=False)
            whole = tok.encode(rendered + choice, add_special_tokens=False)
            with torch.no_grad():
                logp = adapter.model(input_ids=torch.tensor([whole])).logits[0].log_softmax(-1)
            assert logprob == pytest.approx(sum(float(logp[i - 1, whole[i]]) for i in range(len(ctx), len(whole))), abs=1e-5)
    code = main(["compare", str(plain_dir), str(chat_dir)])
    assert code == 2
    results = json.loads((chat_dir / "results.json").read_text())
    assert results["model"]["chat_template_sha256"] == template_hash
