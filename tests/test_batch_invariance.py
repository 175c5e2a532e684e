"""Scores must not depend on the batch size: log-likelihoods within 1e-4 (fp32, CPU), identical greedy text."""

from __future__ import annotations

import pytest

from evalkit.adapters.hf.causal import HFCausalAdapter
from evalkit.engine import RunOptions, prepare_task
from evalkit.requests import Generate, Loglikelihood, RollingLoglikelihood
from evalkit.tasks import resolve_task

from .conftest import DATA, STORIES


@pytest.fixture(scope="module")
def adapters():
    return {bs: HFCausalAdapter(model=str(STORIES), batch_size=bs, device="cpu", dtype="float32") for bs in (1, 16)}


def _requests(task: str, limit: int):
    prepared = prepare_task(resolve_task(task), RunOptions(tasks=[task], limit=limit, data_dir=str(DATA)))
    return [req for w in prepared.work for req in w.requests]


def test_loglikelihood_batch_1_vs_16(adapters):
    reqs = _requests("sst2", 24) + _requests("imdb", 8)
    assert all(isinstance(r, Loglikelihood) for r in reqs)
    one, sixteen = (adapters[bs].loglikelihood(reqs) for bs in (1, 16))
    assert len(one) == len(sixteen) == len(reqs)
    for a, b in zip(one, sixteen):
        assert abs(a.logprob - b.logprob) < 1e-4
        assert a.is_greedy == b.is_greedy
    assert len({round(r.logprob, 3) for r in one}) > len(reqs) // 2, "responses look constant"


def test_rolling_loglikelihood_batch_1_vs_16(adapters):
    docs = [RollingLoglikelihood(text) for text in ("Once upon a time there was a cat. " * 80, "A short one.", "x " * 700)]
    one, sixteen = (adapters[bs].loglikelihood_rolling(docs) for bs in (1, 16))
    for a, b in zip(one, sixteen):
        assert a.n_tokens == b.n_tokens
        assert abs(a.logprob - b.logprob) < 1e-4 * max(1.0, abs(a.logprob) / 1000)


def test_greedy_generation_batch_1_vs_16(adapters):
    prompts = ["Once upon a time", "The little dog", "Lily wanted to", "One day, a big", "Tom and Sue went to the park and",
               "The sun was", "She said", "In the forest there was a tiny"]
    reqs = [Generate(p, until=("\n",), max_new_tokens=24) for p in prompts]
    one, sixteen = (adapters[bs].generate(reqs) for bs in (1, 16))
    assert [r.text for r in one] == [r.text for r in sixteen]
    assert len({r.text for r in one}) > 1


def test_generation_honours_stop_sequences(adapters):
    free = adapters[16].generate([Generate("Once upon a time", until=(), max_new_tokens=40)])[0].text
    assert "," in free, free  # the known continuation: "Once upon a time, there was a little girl..."
    stopped = adapters[16].generate([Generate("Once upon a time", until=(",",), max_new_tokens=40)])[0]
    assert stopped.text == free[: free.index(",")]
    assert stopped.stopped_by == ","


def test_greedy_output_equals_raw_transformers(adapters):
    """Our batched generation against a bare `generate()` on the same tokens (BOS first, as lm-eval 0.4 encodes)."""
    import torch

    adapter = adapters[1]
    ids = adapter.tokenizer("Once upon a time", return_tensors="pt").input_ids
    assert ids[0, 0].item() == adapter.tokenizer.bos_token_id
    with torch.inference_mode():
        raw = adapter.model.generate(ids, max_new_tokens=40, do_sample=False)
    expected = adapter.tokenizer.decode(raw[0, ids.shape[1]:], skip_special_tokens=True)
    out = adapter.generate([Generate("Once upon a time", max_new_tokens=40)])[0].text
    assert out == expected
    # llama2.c's published greedy continuation for stories260K
    assert out.startswith(", there was a little girl named Lily. She loved to play outside in the park.")
