"""evalkit through a real vLLM server equals evalkit in-process (hf-causal) on the same SmolLM2 weights.

Group `servers` (CI: `pytest -m servers`, after `make install-vllm`). One vLLM server on 127.0.0.1
for the module, started and stopped here; hf-causal loads the very safetensors folder vLLM serves
and scores in the same windows (max_length = the server's 1024-token context minus 2).
"""

from __future__ import annotations


import pytest
import torch

from evalkit.adapters.hf.causal import HFCausalAdapter
from evalkit.adapters.hf.tokens import encode_text
from evalkit.adapters.served.openai import OpenAIAdapter
from evalkit.engine import RunOptions, evaluate
from evalkit.results import read_samples

from .conftest import DATA
from .servers import VLLM_VENV, Server, free_port, require_env, smollm2_folder, vllm_command

pytestmark = pytest.mark.servers
WINDOW = 1022
NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def folder():
    return smollm2_folder()


@pytest.fixture(scope="module")
def vllm(tmp_path_factory, folder):
    python = require_env(VLLM_VENV, "install-vllm")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    server = Server(vllm_command(python, folder, NAME, port), port, log)
    print(f"\nvLLM ready on 127.0.0.1:{port} after {server.startup_s:.0f} s")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(vllm):
    return OpenAIAdapter(model=NAME, base_url=vllm.base_url, max_concurrency=8)


@pytest.fixture(scope="module")
def reference(folder):
    return HFCausalAdapter(model=str(folder), device="cpu", dtype="float32", batch_size=8, max_length=WINDOW)


def _run(tmp_path, adapter, task, limit, name):
    options = RunOptions(tasks=[task], limit=limit, data_dir=str(DATA), output=str(tmp_path), progress=False,
                         bootstrap_iters=50, run_id=name)
    run_dir, results = evaluate(options, adapter=adapter, log=print)
    samples = read_samples(run_dir, task)
    return results, samples


def test_window_tokenizer_and_probe(served, reference):
    assert served.max_length == WINDOW and served.identity["server_context"] == 1024
    assert served.identity["prompt_format"] == "tokens" and served.identity["tokenizer"].endswith("/tokenize")
    for text in ("Sentence: a fine film\nSentiment:", " positive", "<|im_start|>user\nHi<|im_end|>", "héllo  wörld\n\n"):
        assert encode_text(served.tokenizer.hf, text) == encode_text(reference.tokenizer, text)
    served._require_trust()
    assert served.probe.passed and served.probe.max_error < 1e-3, served.probe


@pytest.mark.parametrize("task", ["sst2", "imdb"])
def test_multiple_choice_equals_hf_causal(tmp_path, served, reference, task):
    res_s, got = _run(tmp_path, served, task, 100, f"{task}-vllm")
    res_h, want = _run(tmp_path, reference, task, 100, f"{task}-hf")
    assert len(got) == len(want) == 100
    differ = [(g["doc_id"], g["prediction"], w["prediction"]) for g, w in zip(got, want) if g["prediction"] != w["prediction"]]
    assert not differ, differ
    errors = [abs(a - b) for g, w in zip(got, want) for a, b in zip(g["loglikelihoods"], w["loglikelihoods"])]
    print(f"{task}: {len(errors)} requests, largest log-likelihood difference {max(errors):.2e} nats")
    assert max(errors) < 1e-3
    assert res_s["tasks"][task]["metrics"]["accuracy"]["value"] == res_h["tasks"][task]["metrics"]["accuracy"]["value"]
    assert res_s["run"]["logprob_probe"]["passed"]


def test_wikitext_bits_per_byte_equals_hf_causal(tmp_path, vllm, folder, reference):
    """SmolLM2's tokenizer adds no BOS, so the token that starts a document comes from a local tokenizer."""
    served = OpenAIAdapter(model=NAME, base_url=vllm.base_url, tokenizer=str(folder))
    assert served.tokenizer.prefix_token_id == reference.prefix_token_id
    res_s, got = _run(tmp_path, served, "wikitext2", 2, "wiki-vllm")
    res_h, want = _run(tmp_path, reference, "wikitext2", 2, "wiki-hf")
    assert [g["tokens"] for g in got] == [w["tokens"] for w in want] and max(g["tokens"] for g in got) > 2 * WINDOW
    a = res_s["tasks"]["wikitext2"]["metrics"]["bits_per_byte"]["value"]
    b = res_h["tasks"]["wikitext2"]["metrics"]["bits_per_byte"]["value"]
    print(f"wikitext2 bits_per_byte: vLLM {a:.6f}, hf-causal {b:.6f}, relative difference {abs(a - b) / b:.2e}")
    assert abs(a - b) / b < 1e-3


def test_xsum_greedy_generations_match(tmp_path, served, reference, folder):
    _, got = _run(tmp_path, served, "xsum", 20, "xsum-vllm")
    _, want = _run(tmp_path, reference, "xsum", 20, "xsum-hf")
    same = sum(g["prediction"] == w["prediction"] for g, w in zip(got, want))
    print(f"xsum: {same}/20 greedy generations identical")
    for g, w in zip(got, want):
        if g["prediction"] != w["prediction"]:
            gap, text = _near_tie(reference, g["prompt"], g["prediction"], w["prediction"])
            print(f"  doc {g['doc_id']}: {text}")
            assert gap < 0.01, text
    assert same >= 18


@torch.inference_mode()
def _near_tie(reference: HFCausalAdapter, prompt: str, served_text: str, hf_text: str) -> tuple[float, str]:
    """Where two greedy outputs part: the two tokens' log-probs under the fp32 reference at that point."""
    tok = reference.tokenizer
    a, b = tok.encode(served_text, add_special_tokens=False), tok.encode(hf_text, add_special_tokens=False)
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    room = reference.max_length - 64
    ids = encode_text(reference.tokenizer, prompt)[-room:] + b[:k]
    logprobs = reference.model(input_ids=torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)
    ta, tb = (a[k] if k < len(a) else tok.eos_token_id), (b[k] if k < len(b) else tok.eos_token_id)
    gap = abs(float(logprobs[ta] - logprobs[tb]))
    return gap, (f"parts after {k} tokens: vLLM {tok.decode([ta])!r} ({float(logprobs[ta]):.5f}) vs hf-causal "
                 f"{tok.decode([tb])!r} ({float(logprobs[tb]):.5f}): a near-tie, {gap:.2e} nats apart")


def test_chat_generation(served, vllm):
    chat = OpenAIAdapter(model=NAME, base_url=vllm.base_url, chat=True)
    from evalkit.requests import Generate

    (out,) = chat.generate([Generate("What is the capital of France?", (), 16,
                                     messages=(("user", "What is the capital of France?"),))])
    print(f"vLLM chat: {out.text!r}")
    assert "Paris" in out.text
