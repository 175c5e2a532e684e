"""The response cache: keys that separate models and settings, chunked writes, zero model calls on a rerun."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import pytest

from evalkit.adapters.base import Adapter
from evalkit.adapters.caching import CachingAdapter, with_cache
from evalkit.cache import CACHE_FILE, ResponseCache, model_key, request_key
from evalkit.engine import RunOptions, evaluate
from evalkit.errors import EvalkitError
from evalkit.progress import Progress
from evalkit.requests import (
    Generate,
    GenerateResponse,
    Loglikelihood,
    LoglikelihoodResponse,
    RollingLoglikelihood,
    RollingResponse,
)

from .conftest import DATA, STORIES


class CountingAdapter(Adapter):
    """A deterministic fake model that counts every request it is asked to compute."""

    name = "counting"

    def __init__(self, sha256: str | None = "weights-a", dtype: str = "float32", max_length: int = 512, offset: float = 0.0):
        self._identity = {"spec": "fake", "sha256": sha256, "dtype": dtype, "max_length": max_length, "device": "cpu"}
        self.offset = offset
        self.calls: list[int] = []  # the size of every call
        self.computed: list[object] = []

    @property
    def identity(self):
        return dict(self._identity)

    def _note(self, requests, progress):
        self.calls.append(len(requests))
        self.computed.extend(requests)
        if progress:
            progress(len(requests), 1)

    def loglikelihood(self, requests, progress=None):
        self._note(requests, progress)
        return [LoglikelihoodResponse(-len(r.context + r.continuation) - self.offset, False, len(r.continuation)) for r in requests]

    def loglikelihood_rolling(self, requests, progress=None):
        self._note(requests, progress)
        return [RollingResponse(-float(len(r.text)) - self.offset, len(r.text)) for r in requests]

    def generate(self, requests, progress=None):
        self._note(requests, progress)
        return [GenerateResponse(r.context[::-1][: r.max_new_tokens], r.max_new_tokens) for r in requests]

    def run_stats(self):
        return {"batch_size": 4}


def _lls(n: int, prefix: str = "doc") -> list[Loglikelihood]:
    return [Loglikelihood(f"{prefix} {i} " + "x" * (i % 7), " yes") for i in range(n)]


def test_second_call_makes_zero_model_calls_and_returns_identical_responses(tmp_path):
    inner = CountingAdapter()
    adapter = with_cache(inner, str(tmp_path), seed=1)
    assert isinstance(adapter, CachingAdapter) and adapter.chunk_size == 16  # 4 batches of 4, at least 16
    requests = _lls(40)
    first = adapter.loglikelihood(requests)
    assert sum(inner.calls) == 40 and inner.calls == [16, 16, 8], "missing requests go to the model in chunks"
    assert adapter.take_call_stats() == {"hits": 0, "misses": 40, "computed": 40}

    again = with_cache(CountingAdapter(), str(tmp_path), seed=1)  # a fresh process would build exactly this
    second = again.loglikelihood(requests)
    assert again.inner.calls == [], "zero model calls the second time"
    assert second == first
    assert again.take_call_stats() == {"hits": 40, "misses": 0, "computed": 0}
    assert ResponseCache(tmp_path).journal_mode == "wal"


def test_only_missing_requests_are_computed_and_repeats_only_once(tmp_path):
    inner = CountingAdapter()
    adapter = with_cache(inner, str(tmp_path), seed=1)
    adapter.loglikelihood(_lls(10))
    adapter.take_call_stats()
    more = _lls(15) + _lls(3)  # 5 new requests and 13 cached ones (3 of them asked twice)
    out = adapter.loglikelihood(more)
    assert sorted(r.context for r in inner.computed[10:]) == sorted(r.context for r in _lls(15)[10:])
    assert adapter.take_call_stats() == {"hits": 13, "misses": 5, "computed": 5}
    assert [r.logprob for r in out] == [-len(r.context + r.continuation) for r in more]


def test_stats_count_hits_misses_and_computed(tmp_path):
    adapter = with_cache(CountingAdapter(), str(tmp_path), seed=1)
    adapter.loglikelihood(_lls(10))
    adapter.take_call_stats()
    requests = _lls(12) + [_lls(12)[11]]  # 2 new, one of them asked twice
    adapter.loglikelihood(requests)
    assert adapter.take_call_stats() == {"hits": 10, "misses": 3, "computed": 2}
    assert adapter.run_stats()["cache"]["computed"] == 12 and adapter.run_stats()["batch_size"] == 4


@pytest.mark.parametrize("change", [
    {"sha256": "weights-b"},          # other weights
    {"dtype": "bfloat16"},            # other dtype
    {"max_length": 256},              # other context length
])
def test_a_different_model_never_reads_another_models_entries(tmp_path, change):
    requests = _lls(8)
    with_cache(CountingAdapter(), str(tmp_path), seed=1).loglikelihood(requests)
    kwargs = {"sha256": "weights-a", "dtype": "float32", "max_length": 512, **change}
    other = CountingAdapter(offset=100.0, **kwargs)
    out = with_cache(other, str(tmp_path), seed=1).loglikelihood(requests)
    assert len(other.computed) == 8, "every request computed again"
    assert [r.logprob for r in out] == [-len(r.context + r.continuation) - 100.0 for r in requests]
    rows = sqlite3.connect(tmp_path / CACHE_FILE).execute("SELECT model, COUNT(*) FROM responses GROUP BY model").fetchall()
    assert sorted(n for _, n in rows) == [8, 8]


def test_key_covers_kind_content_and_generation_settings():
    model = model_key("hf-causal", {"sha256": "abc", "dtype": "float32", "max_length": 512}, None)
    base = request_key(model, "generate", Generate("Q:", ("\n",), 32))
    assert base != request_key(model, "generate", Generate("Q:", ("\n",), 64)), "max_new_tokens"
    assert base != request_key(model, "generate", Generate("Q:", ("\n\n",), 32)), "stop sequences"
    assert base != request_key(model, "generate", Generate("Q: ", ("\n",), 32)), "one more space"
    assert base == request_key(model, "generate", Generate("Q:", ("\n",), 32), seed=7), "greedy: the seed does not matter"
    assert request_key(model, "loglikelihood", Loglikelihood("a", "b")) != request_key(model, "loglikelihood", Loglikelihood("a ", "b"))
    assert request_key(model, "loglikelihood_rolling", RollingLoglikelihood("ab")) != request_key(model, "generate", Generate("ab"))


def test_sampling_requests_are_keyed_by_seed():
    @dataclass(frozen=True)
    class SampledGenerate(Generate):
        temperature: float = 0.8

    model = model_key("hf-causal", {"sha256": "abc", "dtype": "float32"}, None)
    req = SampledGenerate("Q:", ("\n",), 16)
    assert request_key(model, "generate", req, seed=1) != request_key(model, "generate", req, seed=2)
    assert request_key(model, "generate", req, seed=1) != request_key(model, "generate", Generate("Q:", ("\n",), 16), seed=1)


def test_a_model_without_weights_hash_or_revision_is_not_cached(tmp_path):
    said = []
    adapter = with_cache(CountingAdapter(sha256=None), str(tmp_path), seed=1, log=said.append)
    assert not isinstance(adapter, CachingAdapter) and "not cached" in said[0]
    pinned = CountingAdapter(sha256=None)
    pinned._identity.update(spec="org/model", revision="0123abcd")
    assert isinstance(with_cache(pinned, str(tmp_path), seed=1), CachingAdapter)
    assert not isinstance(with_cache(CountingAdapter(), None, seed=1), CachingAdapter), "--no-cache"


def test_a_broken_cache_file_is_one_clear_error(tmp_path):
    (tmp_path / CACHE_FILE).write_bytes(b"this is not a database" * 100)
    with pytest.raises(EvalkitError, match="cannot open the response cache .*--no-cache"):
        with_cache(CountingAdapter(), str(tmp_path), seed=1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EvalkitError, match="--cache-dir"):
        ResponseCache(blocker / "sub")


def test_opening_waits_while_another_process_sets_up_the_same_cache(tmp_path):
    """The ranks of a torchrun launch open a new cache at once. While another connection holds the
    write lock, SQLite refuses the switch to WAL at once ("database is locked", no busy wait); the
    cache must wait for it rather than stop the run (a CI failure of the dying-rank test)."""
    import threading

    other = sqlite3.connect(tmp_path / CACHE_FILE, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the write lock a peer holds while it creates the table
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        cache = ResponseCache(tmp_path)
    finally:
        release.join()
        other.close()
    assert cache.journal_mode == "wal" and not cache.read_only
    cache.put_many("m", "loglikelihood", [("k", LoglikelihoodResponse(logprob=-1.0, is_greedy=True, n_tokens=1))])
    assert cache.count() == 1


def test_an_entry_that_no_longer_decodes_is_recomputed(tmp_path):
    inner = CountingAdapter()
    adapter = with_cache(inner, str(tmp_path), seed=1)
    adapter.loglikelihood(_lls(3))
    conn = sqlite3.connect(tmp_path / CACHE_FILE)
    with conn:
        conn.execute("UPDATE responses SET response = ?", (json.dumps({"old_field": 1}),))
    out = with_cache(CountingAdapter(), str(tmp_path), seed=1).loglikelihood(_lls(3))
    assert [r.n_tokens for r in out] == [len(" yes")] * 3


def test_progress_bar_says_how_many_were_cached(tmp_path, capsys):
    adapter = with_cache(CountingAdapter(), str(tmp_path), seed=1)
    adapter.loglikelihood(_lls(20))
    bar = Progress("fake", 20, enabled=True)
    with_cache(CountingAdapter(), str(tmp_path), seed=1).loglikelihood(_lls(20), bar)
    bar.close()
    err = capsys.readouterr().err
    assert "cached 20/20" in err and "20/20" in err


def test_engine_records_cache_hits_per_task_and_the_rerun_computes_nothing(tmp_path, stories_adapter):
    options = RunOptions(tasks=["sst2"], limit=8, data_dir=str(DATA), output=str(tmp_path / "out"), progress=False,
                         model=str(STORIES), cache_dir=str(tmp_path / "cache"), bootstrap_iters=10)
    _, first = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
    _, second = evaluate(options, adapter=stories_adapter, log=lambda _m: None)
    assert first["tasks"]["sst2"]["cache"] == {"hits": 0, "misses": 16, "computed": 16}
    assert second["tasks"]["sst2"]["cache"] == {"hits": 16, "misses": 0, "computed": 0}
    assert second["tasks"]["sst2"]["metrics"] == first["tasks"]["sst2"]["metrics"]
    assert second["run"]["cache"]["path"].endswith(CACHE_FILE)
    _, uncached = evaluate(RunOptions(**{**options.__dict__, "cache_dir": None}), adapter=stories_adapter, log=lambda _m: None)
    assert uncached["tasks"]["sst2"]["cache"] is None and "cache" not in uncached["run"]


def _perturbed_copy(folder):
    """stories260K with one weight changed: another model, with its own weights hash."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(STORIES, folder)
    weights = load_file(folder / "model.safetensors")
    name = next(k for k in sorted(weights) if k.endswith("norm.weight"))
    weights[name] = weights[name] * 1.5
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_two_real_models_never_share_cache_entries(tmp_path, stories_adapter):
    from evalkit.adapters.hf.causal import HFCausalAdapter

    other = HFCausalAdapter(model=str(_perturbed_copy(tmp_path / "other-model")), batch_size=16, device="cpu")
    assert other.identity["sha256"] != stories_adapter.identity["sha256"]

    def run(adapter):
        options = RunOptions(tasks=["sst2"], limit=6, data_dir=str(DATA), output=str(tmp_path / "out"), progress=False,
                             cache_dir=str(tmp_path / "cache"), bootstrap_iters=10)
        run_dir, results = evaluate(options, adapter=adapter, log=lambda _m: None)
        lls = [json.loads(line)["loglikelihoods"] for line in (run_dir / "sst2.samples.jsonl").read_text().splitlines()]
        return results["tasks"]["sst2"]["cache"], lls

    stats_a, lls_a = run(stories_adapter)
    stats_b, lls_b = run(other)
    assert stats_a["computed"] == 12 and stats_b == {"hits": 0, "misses": 12, "computed": 12}
    assert lls_a != lls_b, "the other model's answers are its own"
    stats_a2, lls_a2 = run(stories_adapter)
    assert stats_a2 == {"hits": 12, "misses": 0, "computed": 0} and lls_a2 == lls_a
    rows = sqlite3.connect(tmp_path / "cache" / CACHE_FILE).execute(
        "SELECT model, COUNT(*) FROM responses GROUP BY model").fetchall()
    assert sorted(n for _, n in rows) == [12, 12]
