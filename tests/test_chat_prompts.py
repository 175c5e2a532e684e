"""Chat prompts: the messages build.py makes (lm-eval's conventions), the config hash, and compare's refusal."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from evalkit.build import PromptStyle, build_work
from evalkit.cli import main
from evalkit.data import load_documents
from evalkit.engine import PreparedTask, RunOptions, prepare_task
from evalkit.errors import EvalkitError
from evalkit.requests import Generate, Loglikelihood, RollingLoglikelihood
from evalkit.tasks import resolve_task

from .conftest import DATA

CHAT = PromptStyle(chat=True)


def _work(task: str, style: PromptStyle, k: int = 0, n: int = 3):
    spec = resolve_task(task)
    spec = replace(spec, fewshot=replace(spec.fewshot, k=k))
    docs = load_documents(spec, DATA)
    return spec, docs[:n], build_work(spec, docs[:n], docs, style)


def test_plain_prompts_carry_no_messages():
    _, _, work = _work("sst2", PromptStyle(), k=2)
    assert all(not r.messages for w in work for r in w.requests)
    assert work[0].requests[0].continuation == " negative"


def test_chat_multiple_choice_follows_lm_eval():
    """One user turn holding the plain prompt (few-shot included); the choice follows the generation prompt
    with no target delimiter; context keeps the plain prompt."""
    spec, docs, plain = _work("sst2", PromptStyle(), k=2)
    _, _, chat = _work("sst2", CHAT, k=2)
    for p, c in zip(plain, chat):
        assert c.messages == (("user", p.prompt),)
        assert [r.continuation for r in c.requests] == list(spec.choices)  # "negative", not " negative"
        assert all(r.context == p.prompt and r.messages == c.messages for r in c.requests)


def test_fewshot_as_multiturn_and_system_prompt():
    spec, docs, plain = _work("sst2", PromptStyle(), k=2)
    _, _, chat = _work("sst2", PromptStyle(chat=True, system_prompt="Be brief.", fewshot_as_multiturn=True), k=2)
    for p, c in zip(plain, chat):
        roles = [role for role, _ in c.messages]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
        assert c.messages[0] == ("system", "Be brief.")
        # the shots are the same examples the plain prompt holds, question and answer apart
        shots = p.prompt.split(spec.fewshot.delimiter)
        assert c.messages[1][1] + spec.target_delimiter + c.messages[2][1] == shots[0]
        assert c.messages[2][1] in spec.choices
        assert c.messages[-1][1] == shots[-1]  # the question itself, without the few-shot prefix


def test_chat_generation_and_perplexity():
    _, _, gen = _work("xsum", CHAT, n=2)
    assert all(isinstance(w.requests[0], Generate) and w.requests[0].messages == (("user", w.prompt),) for w in gen)
    _, _, ppl = _work("wikitext2", CHAT, n=1)  # raw text is scored as is, as lm-eval does
    assert isinstance(ppl[0].requests[0], RollingLoglikelihood)


def test_chat_changes_the_config_hash_and_records_the_template_hash():
    spec = resolve_task("sst2")
    opts = RunOptions(tasks=["sst2"], limit=2, data_dir=str(DATA))
    plain = prepare_task(spec, opts)
    chat = prepare_task(spec, replace(opts, apply_chat_template=True))
    ident_a, ident_b = {"chat_template_sha256": "a" * 64}, {"chat_template_sha256": "b" * 64}
    assert plain.config_hash(ident_a) == spec.config_hash and plain.prompt_format(ident_a) is None
    assert chat.config_hash(ident_a) != spec.config_hash
    assert chat.config_hash(ident_a) != chat.config_hash(ident_b)  # another template, another hash
    assert chat.prompt_format(ident_a)["chat_template_sha256"] == "a" * 64
    sys_prompt = prepare_task(spec, replace(opts, apply_chat_template=True, system_prompt="Be brief."))
    assert sys_prompt.config_hash(ident_a) != chat.config_hash(ident_a)
    ppl = prepare_task(resolve_task("wikitext2"), replace(opts, tasks=["wikitext2"], apply_chat_template=True))
    assert ppl.config_hash(ident_a) == resolve_task("wikitext2").config_hash  # perplexity ignores chat


def test_chat_only_options_need_the_flag(capsys):
    code = main(["run", "--tasks", "sst2", "--system-prompt", "hi", "--data-dir", str(DATA), "--limit", "2"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "--system-prompt applies to chat prompts only; add --apply-chat-template" in err[0]


def _fake_run(tmp_path, name: str, prompt_format: dict | None):
    spec = resolve_task("sst2")
    cfg = {"hash": spec.config_hash, "version": "1", "spec": spec.to_dict()}
    if prompt_format:
        cfg.update(prompt_format=prompt_format, hash="c" * 16)
    run = tmp_path / name
    run.mkdir()
    rows = [{"doc_id": i, "prediction": "positive", "gold": "positive" if i % 2 else "negative"} for i in range(20)]
    (run / "results.json").write_text(json.dumps({
        "run_id": name, "model": {"spec": "m"}, "config": {"tasks": {"sst2": cfg}},
        "tasks": {"sst2": {"n": 20, "doc_ids": list(range(20)), "metrics": {}, "samples_file": "sst2.samples.jsonl"}}}))
    (run / "sst2.samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_compare_refuses_chat_against_plain_in_one_line(tmp_path, capsys):
    plain = _fake_run(tmp_path, "plain", None)
    chat = _fake_run(tmp_path, "chat", {"apply_chat_template": True, "system_prompt": None,
                                        "fewshot_as_multiturn": False, "chat_template_sha256": "a" * 64})
    code = main(["compare", str(plain), str(chat)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1
    assert "the candidate ran with --apply-chat-template and the baseline without" in err[0]
    # on purpose, the two prompt formats of one task config can be tested against each other
    assert main(["compare", str(plain), str(chat), "--across-prompt-formats"]) == 0
    assert "accuracy" in capsys.readouterr().out
