"""The openai adapter against a real small model behind a real HTTP server (tests/openai_stub.py).

The stub computes log-probs and greedy tokens with a plain transformers forward pass of stories260K;
evalkit's hf-causal adapter on the same folder is the reference. With the same window length the
two must give the same predictions, log-likelihoods (to fp32 rounding) and generations.
"""

from __future__ import annotations

import json

import pytest

from evalkit.adapters.hf.causal import HFCausalAdapter
from evalkit.adapters.served.openai import OpenAIAdapter
from evalkit.engine import RunOptions, evaluate
from evalkit.results import read_samples
from evalkit.errors import EvalkitError, ScoringRefused
from evalkit.requests import Generate, Loglikelihood, RollingLoglikelihood

from .conftest import DATA, STORIES

WINDOW = 510  # the stub reports stories260K's 512-token context; a window sends 511 tokens and asks for one more


@pytest.fixture(scope="module")
def reference():
    return HFCausalAdapter(model=str(STORIES), device="cpu", batch_size=8, max_length=WINDOW)


def _run(tmp_path, adapter, tasks, limit, name):
    options = RunOptions(tasks=tasks, limit=limit, data_dir=str(DATA), output=str(tmp_path / name), progress=False,
                         bootstrap_iters=20, run_id=name)
    return evaluate(options, adapter=adapter, log=lambda _m: None)


def _samples(run_dir, task):
    return read_samples(run_dir, task)


def test_served_numbers_equal_hf_causal(tmp_path, stub, reference):
    served = OpenAIAdapter(model="stories", base_url=stub.base_url, max_concurrency=4)
    assert served.max_length == WINDOW and served.identity["prompt_format"] == "tokens"
    served_dir, served_res = _run(tmp_path, served, ["sst2", "xsum"], 3, "served")
    ref_dir, ref_res = _run(tmp_path, reference, ["sst2", "xsum"], 3, "ref")
    for a, b in zip(_samples(served_dir, "sst2"), _samples(ref_dir, "sst2")):
        assert a["prediction"] == b["prediction"]
        assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-4)
    assert [s["prediction"] for s in _samples(served_dir, "xsum")] == [s["prediction"] for s in _samples(ref_dir, "xsum")]
    probe = served_res["run"]["logprob_probe"]
    assert probe["passed"] and probe["max_error"] < 1e-3
    assert served_res["model"]["server"] == stub.base_url.split("/")[2]
    completions = [b for b in stub.bodies if "max_tokens" in b]
    assert len(completions) >= 10 and all(b["max_tokens"] >= 1 for b in completions)  # never max_tokens: 0


def test_rolling_windows_equal_hf_causal(stub, reference):
    """A document of several windows, and a short one: lm-eval's disjoint windows, as hf-causal scores them."""
    text = (DATA / "wikitext2_raw" / "wiki.test.raw").read_text(encoding="utf-8")[:5000]
    requests = [RollingLoglikelihood(text), RollingLoglikelihood("A short one.")]
    served = OpenAIAdapter(model="stories", base_url=stub.base_url, max_concurrency=4)
    got, want = served.loglikelihood_rolling(requests), reference.loglikelihood_rolling(requests)
    assert [r.n_tokens for r in got] == [r.n_tokens for r in want] and got[0].n_tokens > 2 * WINDOW
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in want], rel=1e-6)
    windows = [b for b in stub.bodies if b.get("echo") and isinstance(b["prompt"], list)]
    assert len(windows) == -(-got[0].n_tokens // WINDOW) + 1 and max(len(b["prompt"]) for b in windows) == WINDOW + 1


def test_text_prompts_split_by_offsets(stub, reference):
    """Without a tokenizer the prompt goes as text and the continuation is found by the echoed offsets."""
    served = OpenAIAdapter(model="stories", base_url=stub.base_url, prompt_format="text")
    requests = [Loglikelihood("Once upon a time, there was a", " little girl"), Loglikelihood("Lily saw a ", "big dog.")]
    got = served.loglikelihood(requests)
    want = reference.loglikelihood(requests)
    assert [r.n_tokens for r in got] == [r.n_tokens for r in want]
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in want], abs=1e-4)
    assert all(isinstance(b["prompt"], str) for b in stub.bodies if "max_tokens" in b)


def test_shifted_echo_is_refused_and_generation_still_runs(tmp_path, stub):
    """llama.cpp's bug, reproduced: each echoed log-prob belongs to the next position."""
    stub.shift_echo = True
    served = OpenAIAdapter(model="stories", base_url=stub.base_url)
    lines = []
    options = RunOptions(tasks=["sst2", "xsum"], limit=2, data_dir=str(DATA), output=str(tmp_path), progress=False,
                         bootstrap_iters=20, run_id="shifted")
    run_dir, results = evaluate(options, adapter=served, log=lines.append)
    assert list(results["tasks"]) == ["xsum"] and results["tasks"]["xsum"]["n"] == 2
    refused = [line for line in lines if "sst2" in line]
    assert len(refused) == 1 and "trust probe failed" in refused[0] and "\n" not in refused[0]
    probe = json.loads((run_dir / "results.json").read_text())["run"]["logprob_probe"]
    assert probe["passed"] is False and probe["max_error"] > 0.05
    scoring = [b for b in stub.bodies if b.get("echo")]
    assert len(scoring) == 1  # the probe's one echo request; no sst2 request reached the server


def test_no_prompt_logprobs_is_refused(stub):
    stub.no_prompt_logprobs = True
    served = OpenAIAdapter(model="stories", base_url=stub.base_url)
    with pytest.raises(ScoringRefused, match="no prompt log-probs"):
        served.loglikelihood([Loglikelihood("Once upon a time", " there")])


def test_a_conversation_goes_to_the_chat_endpoint_without_the_chat_flag(stub):
    """--apply-chat-template requests carry messages: generation sends them to /v1/chat/completions (issue 10)."""
    served = OpenAIAdapter(model="stories", base_url=stub.base_url)
    messages = (("system", "Be brief."), ("user", "Tell me a story."))
    (out,) = served.generate([Generate("Tell me a story.", ("\n",), 12, messages=messages)])
    assert stub.bodies[-1]["messages"] == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Tell me a story."}]
    assert "prompt" not in stub.bodies[-1] and isinstance(out.text, str)
    (plain,) = served.generate([Generate("Tell me a story.", ("\n",), 12)])
    assert "prompt" in stub.bodies[-1]  # a plain prompt still goes to /v1/completions


def test_chat_generation(stub):
    served = OpenAIAdapter(model="stories", base_url=stub.base_url, chat="true")
    (out,) = served.generate([Generate("Tell me a story.", ("\n",), 12, messages=(("user", "Tell me a story."),))])
    assert stub.bodies[-1]["messages"] == [{"role": "user", "content": "Tell me a story."}]
    assert out.n_tokens >= 1 and out.text == stub.completions({"prompt": "user: Tell me a story.\nassistant:",
                                                               "max_tokens": 12, "stop": ["\n"]})["choices"][0]["text"]


@pytest.mark.parametrize("args, message", [
    ({}, "base_url"),
    ({"base_url": "http://127.0.0.1:9/v1", "max_concurrency": 0}, "max_concurrency must be between 1 and 512, got 0"),
    ({"base_url": "http://127.0.0.1:9/v1", "timeout": "soon"}, "timeout must be a number, got 'soon'"),
    ({"base_url": "http://127.0.0.1:9/v1", "chat": "maybe"}, "chat must be true or false"),
    ({"base_url": "http://127.0.0.1:9/v1", "prompt_format": "ids"}, "prompt_format must be one of auto, tokens, text"),
    ({"base_url": "http://127.0.0.1:9/v1", "temperature": 1}, "unknown model argument(s) temperature"),
    ({"base_url": "ftp://x/v1"}, "base_url must look like http://host:port/v1"),
    ({"base_url": "http://127.0.0.1:9/v1", "api_key_env": "EVALKIT_TEST_UNSET_KEY"}, "EVALKIT_TEST_UNSET_KEY is not set"),
])
def test_model_args_are_checked(args, message):
    with pytest.raises(EvalkitError) as err:
        OpenAIAdapter(model="m", **args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_served_model_names_the_served_ones(stub):
    with pytest.raises(EvalkitError, match=r"does not serve 'gpt-9' \(it serves: stories\)"):
        OpenAIAdapter(model="gpt-9", base_url=stub.base_url)
    assert OpenAIAdapter(model=None, base_url=stub.base_url).model_name == "stories"  # the only one served
