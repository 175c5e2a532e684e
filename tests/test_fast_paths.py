"""The adapter's fast paths give the numbers of the plain ones: shared rows, static cache, early stops."""

from __future__ import annotations

import pytest

from evalkit.adapters.hf.causal import HFCausalAdapter
from evalkit.adapters.hf.generation import Generator, generate_greedy
from evalkit.adapters.hf.scoring import score_token_pairs, shared_rows
from evalkit.adapters.hf.tokens import encode_text
from evalkit.batching import BatchPlan, parse_batch_size, run_batches
from evalkit.errors import EvalkitError
from evalkit.requests import Generate

from .conftest import STORIES


def test_shared_rows_merges_identical_inputs_and_prefixes_only():
    prepared = [([5, 6, 7], [8]), ([5, 6, 7], [9]), ([5, 6], [7]), ([5, 6, 7, 8], [1, 2]), ([4, 6], [7]), ([5], [1])]
    rows = shared_rows(prepared)
    by_input = {tuple(r.inp): sorted(i for i, _, _ in r.reads) for r in rows}
    # [5], [5,6], [5,6,7] (twice) are prefixes of [5,6,7,8]; [4,6] shares nothing
    assert by_input == {(5, 6, 7, 8): [0, 1, 2, 3, 5], (4, 6): [4]}
    starts = {i: start for r in rows for i, start, _ in r.reads}
    assert starts == {0: 2, 1: 2, 2: 1, 3: 2, 4: 1, 5: 0}


@pytest.fixture(scope="module")
def stories():
    return HFCausalAdapter(model=str(STORIES), batch_size=16, device="cpu", dtype="float32")


def test_shared_rows_score_like_separate_forwards(stories):
    """Choices of one context, and a continuation that prefixes another, read from one row."""
    ctx = encode_text(stories.tokenizer, "Once upon a time there was a little")
    other = encode_text(stories.tokenizer, "The dog ran to the")
    pairs = [(ctx, [t]) for t in (300, 301, 302, 303)] + [(ctx, [300, 301]), (ctx, [300]), (other, [5, 6, 7]), (other, [5])]
    merged = score_token_pairs(stories.model, pairs, stories.max_length, BatchPlan(size=16), "cpu")
    assert len(shared_rows([((c + t)[:-1], t) for c, t in pairs])) == 2  # one row per context
    alone = [score_token_pairs(stories.model, [pair], stories.max_length, BatchPlan(size=1), "cpu")[0] for pair in pairs]
    for (lp_m, greedy_m), (lp_a, greedy_a) in zip(merged, alone):
        assert lp_m == pytest.approx(lp_a, abs=1e-4)
        assert greedy_m == greedy_a
    assert len({round(lp, 4) for lp, _ in merged}) > 4


def test_static_and_dynamic_cache_give_the_same_generations(stories):
    reqs = [Generate(p, until=(".", "\n"), max_new_tokens=30) for p in
            ("Once upon a time", "The little dog", "Lily wanted to", "One day, a big", "Tom and Sue went to the park and")]
    plan = BatchPlan(size=4)
    outs = {}
    for cache in ("static", "dynamic"):
        gen = Generator(stories.model, stories.tokenizer, "cpu", cache)
        outs[cache] = generate_greedy(gen, reqs, stories.max_length, plan)[0]
        assert gen.cache_mode == cache
    assert [(r.text, r.n_tokens, r.stopped_by) for r in outs["static"]] == \
           [(r.text, r.n_tokens, r.stopped_by) for r in outs["dynamic"]]
    assert any(r.stopped_by == "." for r in outs["static"])


def test_rows_stop_at_their_stop_sequence_and_count_tokens_to_it(stories):
    free = stories.generate([Generate("Once upon a time", max_new_tokens=40)])[0]
    stopped = stories.generate([Generate("Once upon a time", until=(" was",), max_new_tokens=40),
                                Generate("Once upon a time", max_new_tokens=40)])
    assert stopped[0].text == free.text[: free.text.index(" was")]
    assert stopped[0].stopped_by == " was"
    assert stopped[0].n_tokens < 10 < free.n_tokens
    assert stopped[1].text == free.text and stopped[1].n_tokens == free.n_tokens


def test_kv_cache_argument_is_checked():
    with pytest.raises(EvalkitError, match="kv_cache"):
        HFCausalAdapter(model=str(STORIES), device="cpu", kv_cache="paged")


def test_auto_batches_follow_a_token_budget():
    plan = parse_batch_size("auto", "cpu")
    assert plan.auto and plan.token_budget > 0
    lengths = [1024] * 40 + [10] * 300
    sizes = []
    run_batches(list(range(len(lengths))), lengths, plan, lambda b: (sizes.append(len(b)), b)[1])
    assert sizes[0] == plan.token_budget // 1024
    assert max(sizes) == plan.size  # short rows fill the row cap
    assert sum(sizes) == len(lengths)
    fixed = parse_batch_size(8, "cpu")
    assert fixed.size == 8 and fixed.token_budget == 0


def test_a_model_without_static_cache_falls_back_to_the_dynamic_cache(stories, monkeypatch):
    import transformers

    reqs = [Generate("Once upon a time", until=(".",), max_new_tokens=20)]
    expected = generate_greedy(Generator(stories.model, stories.tokenizer, "cpu", "dynamic"), reqs, stories.max_length,
                               BatchPlan(size=1))[0]

    def unsupported(*args, **kwargs):
        raise ValueError("this model does not support a static cache")

    monkeypatch.setattr(transformers, "StaticCache", unsupported)
    auto = Generator(stories.model, stories.tokenizer, "cpu", "auto")
    assert generate_greedy(auto, reqs, stories.max_length, BatchPlan(size=1))[0] == expected
    assert auto.cache_mode == "dynamic"
    with pytest.raises(ValueError, match="static cache"):
        generate_greedy(Generator(stories.model, stories.tokenizer, "cpu", "static"), reqs, stories.max_length,
                        BatchPlan(size=1))
