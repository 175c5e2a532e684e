"""evalkit through a real llama.cpp server (llama-cpp-python[server]) with the bundled SmolLM2 GGUF.

Group `servers` (CI: `pytest -m servers`, after `make install-llamacpp`). Generation and chat work;
llama.cpp's echoed prompt log-probs are shifted by one position, so the trust probe refuses scoring,
with its one line, and a run's generation tasks still run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evalkit.adapters.hf.loading import bundled_gguf
from evalkit.adapters.served.openai import OpenAIAdapter
from evalkit.requests import Generate

from .conftest import DATA, ROOT
from .servers import LLAMACPP_VENV, Server, free_port, llamacpp_command, require_env

pytestmark = pytest.mark.servers
NAME = "smollm2-gguf"


@pytest.fixture(scope="module")
def llamacpp(tmp_path_factory):
    python = require_env(LLAMACPP_VENV, "install-llamacpp")
    port = free_port()
    log = tmp_path_factory.mktemp("llamacpp") / "server.log"
    server = Server(llamacpp_command(python, bundled_gguf(), NAME, port), port, log, ready_s=300)
    print(f"\nllama.cpp ready on 127.0.0.1:{port} after {server.startup_s:.0f} s")
    yield server
    server.stop()


def test_generation(llamacpp):
    served = OpenAIAdapter(model=NAME, base_url=llamacpp.base_url)
    assert served.identity["prompt_format"] == "text"  # no /tokenize: prompts go as text
    first, second = served.generate([Generate("The capital of France is", ("\n",), 8),
                                     Generate("List three colours:\n1.", ("\n3.",), 40)])
    print(f"llama.cpp: {first!r}\n           {second!r}")
    assert first.text.startswith(" Paris") and "\n" not in first.text and 1 <= first.n_tokens <= 8
    assert "\n3." not in second.text and second.stopped_by in ("\n3.", None) and second.n_tokens <= 40
    assert served.run_stats()["logprob_probe"].startswith("not run")  # generation needs no probe


def test_chat(llamacpp):
    served = OpenAIAdapter(model=NAME, base_url=llamacpp.base_url, chat=True)
    (out,) = served.generate([Generate("", (), 24, messages=(("system", "Answer in one word."),
                                                           ("user", "What is the capital of France?")))])
    print(f"llama.cpp chat: {out!r}")
    assert "Paris" in out.text and out.n_tokens <= 24


def test_probe_refuses_scoring_and_generation_still_runs(tmp_path, llamacpp):
    cmd = [sys.executable, "-m", "evalkit", "run", "--adapter", "openai", "--model", NAME,
           "--model-arg", f"base_url={llamacpp.base_url}", "--tasks", "sst2,xsum", "--limit", "3",
           "--data-dir", str(DATA), "--output", str(tmp_path), "--no-progress", "--no-cache", "--bootstrap-iters", "20"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    print(run.stderr[-3000:])
    assert run.returncode == 2
    refused = [line for line in run.stderr.splitlines() if "sst2" in line]
    assert len(refused) == 1 and "trust probe failed" in refused[0] and "Traceback" not in run.stderr
    (results_file,) = tmp_path.rglob("results.json")
    results = json.loads(results_file.read_text())
    assert list(results["tasks"]) == ["xsum"] and results["tasks"]["xsum"]["n"] == 3
    assert "sst2" in results["refused_tasks"]
    probe = results["run"]["logprob_probe"]
    assert probe["passed"] is False and probe["reason"] in refused[0]
