"""Faults between evalkit and a model server: retries, back-off, Retry-After, bounded tries, secrets.

The server is tests/openai_stub.py (stories260K behind a real HTTP server in this process); faults
are queued on it and hit the next requests in order.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalkit.adapters.served.http import JsonClient, ServerError, parse_retry_after
from evalkit.adapters.served.openai import OpenAIAdapter
from evalkit.cache import CACHE_FILE
from evalkit.engine import RunOptions, evaluate
from evalkit.requests import Generate
from evalkit.results import read_samples

from .conftest import DATA, ROOT

SECRET = "sk-evalkit-test-9f3b2c71d0e4a5"


def _adapter(stub, **args):
    return OpenAIAdapter(model="stories", base_url=stub.base_url, backoff=0.01, **args)


REQUEST = Generate("Once upon a time", ("\n",), 3)


@pytest.mark.parametrize("fault, times", [(("status", 500), 2), (("status", 503), 2), (("drop",), 2), (("badjson",), 2),
                                          (("slow", 12.0), 1)])
def test_transient_faults_are_retried(stub, fault, times):
    adapter = _adapter(stub, timeout=6.0)  # a normal answer takes well under a second, the slow one 12 s
    (want,) = adapter.generate([REQUEST])
    stub.faults.extend([fault] * times)
    (got,) = adapter.generate([REQUEST])
    assert got == want
    assert adapter.client.retries == times


def test_retry_after_is_honoured(stub):
    adapter = _adapter(stub)
    stub.faults.append(("status", 429, 1))
    start = time.perf_counter()
    adapter.generate([REQUEST])
    waited = time.perf_counter() - start
    assert adapter.client.retries == 1 and waited >= 1.0  # the back-off alone would be at most 0.01 s


def test_retry_after_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_grows_with_full_jitter():
    client = JsonClient("http://127.0.0.1:9/v1", backoff=0.5)
    delays = [[client._delay(attempt, None) for _ in range(200)] for attempt in range(4)]
    for attempt, values in enumerate(delays):
        cap = 0.5 * 2 ** attempt
        assert all(0 <= v <= cap for v in values) and max(values) > 0.8 * cap and min(values) < 0.2 * cap


def test_bounded_tries_then_one_line(stub):
    adapter = _adapter(stub, max_retries=2)
    stub.faults.extend([("status", 503)] * 3)
    with pytest.raises(ServerError) as err:
        adapter.generate([REQUEST])
    message = str(err.value)
    assert "failed after 3 tries: HTTP 503 (injected HTTP 503)" in message and "\n" not in message
    assert adapter.client.retries == 2 and stub.answered == 0


def test_client_errors_are_not_retried(stub):
    adapter = _adapter(stub)
    with pytest.raises(ServerError, match="HTTP 404"):
        adapter.client.post("/no-such-route", {})
    assert adapter.client.retries == 0


def test_unreachable_server_is_one_line():
    with pytest.raises(ServerError) as err:
        OpenAIAdapter(model="m", base_url="http://127.0.0.1:9/v1", max_retries=1, backoff=0.01)
    assert "failed after 2 tries: connection failed" in str(err.value) and "\n" not in str(err.value)


def test_concurrency_is_bounded(stub):
    stub.delay = 0.3
    adapter = _adapter(stub, max_concurrency=3)
    out = adapter.generate([Generate(f"Once upon a time {i}", ("\n",), 2) for i in range(9)])
    assert len(out) == 9 and stub.max_in_flight == 3


def test_wrong_key_is_refused_without_showing_it(stub, monkeypatch):
    monkeypatch.setenv("EVALKIT_TEST_KEY", "sk-wrong-key-123456")
    stub.expect_key = SECRET
    with pytest.raises(ServerError) as err:
        _adapter(stub, api_key_env="EVALKIT_TEST_KEY").generate([REQUEST])
    assert "HTTP 401" in str(err.value) and "api_key_env" in str(err.value) and "\n" not in str(err.value)
    assert "sk-wrong-key-123456" not in str(err.value)
    assert stub.auth == {"Bearer sk-wrong-key-123456"}


# -- a real run through the CLI, killed and resumed ------------------------------------------------
LIMIT = 15  # sst2 documents: 30 scoring requests


def _command(stub, output: Path, cache: Path) -> list[str]:
    cmd = [sys.executable, "-m", "evalkit", "run", "--adapter", "openai", "--model", "stories",
           "--model-arg", f"base_url={stub.base_url}", "--model-arg", "api_key_env=EVALKIT_TEST_KEY",
           "--model-arg", "max_concurrency=2", "--tasks", "sst2", "--data-dir", str(DATA), "--limit", str(LIMIT),
           "--bootstrap-iters", "50", "--output", str(output), "--no-progress", "--cache-dir", str(cache)]
    return cmd + ["--model-arg", "revision=stories260K-test"]


def _env() -> dict[str, str]:
    return {**os.environ, "EVALKIT_TEST_KEY": SECRET, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _rows(cache: Path) -> int:
    try:
        conn = sqlite3.connect(cache / CACHE_FILE, timeout=5)
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _scoring(stub) -> int:
    return sum(1 for b in stub.bodies if b.get("echo") and b["prompt"] and not isinstance(b["prompt"], str))


def _samples(results_json: Path) -> list[dict]:
    return read_samples(results_json.parent, "sst2")


def test_killed_run_resumes_from_the_cache_and_leaks_no_key(tmp_path, stub):
    stub.expect_key = SECRET
    stub.delay = 0.05
    cache, out = tmp_path / "cache", tmp_path / "out"
    logs = []
    proc = subprocess.Popen(_command(stub, out, cache), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _scoring(stub) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    received = _scoring(stub)
    proc.send_signal(signal.SIGKILL)
    logs += list(proc.communicate(timeout=60))
    assert 10 <= received < 2 * LIMIT, "the kill should land part-way through the run"
    kept = _rows(cache)
    assert kept >= received - 2  # every answer received was committed, but the (at most 2) in flight

    before = _scoring(stub)
    resumed = subprocess.run(_command(stub, out, cache), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    logs += [resumed.stdout, resumed.stderr]
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _scoring(stub) - before == 2 * LIMIT - kept  # only what the killed run had not received
    assert f"{kept} requests answered from" in resumed.stderr

    fresh_dir, fresh_res = _fresh_run(stub, tmp_path / "fresh")  # uninterrupted, no cache, in this process
    (resumed_json,) = out.rglob("results.json")
    resumed_res = json.loads(resumed_json.read_text())
    assert resumed_res["tasks"]["sst2"]["metrics"] == fresh_res["tasks"]["sst2"]["metrics"]
    assert [s["loglikelihoods"] for s in _samples(resumed_json)] == [s["loglikelihoods"] for s in read_samples(fresh_dir, "sst2")]
    assert resumed_res["model"]["revision"] == "stories260K-test" and resumed_res["run"]["logprob_probe"]["passed"]

    assert stub.auth == {f"Bearer {SECRET}"}  # the key was sent...
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == CACHE_FILE for p in written) and len(written) >= 5
    for path in written:  # ...and written nowhere: results, samples, the cache (and its WAL), logs
        assert SECRET.encode() not in path.read_bytes(), path
    assert all(SECRET not in text for text in logs)


def _fresh_run(stub, output: Path, cache: Path | None = None, revision: str = "stories260K-test"):
    os.environ["EVALKIT_TEST_KEY"] = SECRET
    try:
        args = {"revision": revision} if revision else {}
        adapter = OpenAIAdapter(model="stories", base_url=stub.base_url, api_key_env="EVALKIT_TEST_KEY", **args)
        options = RunOptions(tasks=["sst2"], limit=LIMIT, data_dir=str(DATA), output=str(output), progress=False,
                             bootstrap_iters=50, cache_dir=str(cache) if cache else None)
        lines: list[str] = []
        run_dir, results = evaluate(options, adapter=adapter, log=lines.append)
    finally:
        del os.environ["EVALKIT_TEST_KEY"]
    results["log"] = lines
    return run_dir, results


def test_unpinned_server_is_not_cached(tmp_path, stub):
    stub.expect_key = SECRET
    _, results = _fresh_run(stub, tmp_path / "out", tmp_path / "cache", revision="")
    assert any("responses are not cached: the server can change the weights behind a model name" in line
               for line in results["log"])
    assert not (tmp_path / "cache" / CACHE_FILE).exists() or _rows(tmp_path / "cache") == 0
    assert results["model"]["revision"] is None and "cache" not in results["run"]
