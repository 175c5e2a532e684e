"""An injected out-of-memory error halves an automatic batch size: nothing lost, nothing run twice, size recorded."""

from __future__ import annotations

from collections import Counter

import pytest

import evalkit.adapters.hf.scoring as scoring
from evalkit.batching import BatchPlan, run_batches
from evalkit.engine import RunOptions, evaluate

from .conftest import DATA, STORIES


class FakeOOM(RuntimeError):
    def __init__(self):
        super().__init__("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")


def _flaky(fn, limit: int, seen: list[int]):
    """`fn`, except that a batch larger than `limit` runs out of memory."""

    def call(batch):
        seen.append(len(batch))
        if len(batch) > limit:
            raise FakeOOM()
        return fn(batch)

    return call


def test_run_batches_halves_on_oom_and_keeps_every_item_exactly_once():
    items = list(range(100))
    done: Counter[int] = Counter()
    sizes: list[int] = []

    def square(batch):
        return [x * x for x in batch]

    def on_done(batch, _out):
        done.update(batch)

    plan = BatchPlan(size=32, auto=True)
    out = run_batches(items, [1] * 100, plan, _flaky(square, 10, sizes), on_done)
    assert out == [x * x for x in items], "in order, none lost"
    assert all(n == 1 for n in done.values()) and sorted(done) == items, "none run twice"
    assert sizes[:3] == [32, 16, 8], "32 and 16 ran out of memory, 8 fits"
    assert plan.backoffs == 2 and plan.final_size == 8


def test_a_fixed_batch_size_does_not_hide_an_oom():
    with pytest.raises(FakeOOM):
        run_batches(list(range(10)), [1] * 10, BatchPlan(size=8), _flaky(lambda b: b, 4, []))


def test_other_errors_are_not_mistaken_for_oom():
    def broken(batch):
        raise ValueError("not memory")

    with pytest.raises(ValueError):
        run_batches(list(range(10)), [1] * 10, BatchPlan(size=8, auto=True), broken)


def test_injected_oom_in_a_real_run_gives_the_same_scores_and_records_the_final_batch_size(tmp_path, monkeypatch, stories_adapter):
    from evalkit.adapters.hf.causal import HFCausalAdapter

    options = RunOptions(tasks=["sst2"], limit=24, data_dir=str(DATA), output=str(tmp_path), progress=False,
                         bootstrap_iters=10)
    _, clean = evaluate(options, adapter=stories_adapter, log=lambda _m: None)

    auto = HFCausalAdapter(model=str(STORIES), batch_size="auto", device="cpu")
    assert auto.plan.auto
    auto.plan.size, auto.plan.token_budget = 32, 0  # start at 32 rows whatever the CPU default, no token cap
    sizes: list[int] = []
    real_run_batches = scoring.run_batches

    def run_batches_with_small_memory(items, lengths, plan, fn, *args, **kwargs):
        return real_run_batches(items, lengths, plan, _flaky(fn, 12, sizes), *args, **kwargs)

    monkeypatch.setattr(scoring, "run_batches", run_batches_with_small_memory)
    _, squeezed = evaluate(options, adapter=auto, log=lambda _m: None)

    assert sizes[:2] == [32, 16] and max(sizes[2:]) <= 8, f"halved twice: {sizes}"
    assert sum(sizes[2:]) == 48, "the 48 requests ran once each after the back-off"
    assert squeezed["run"]["oom_backoffs"] == 2 and squeezed["run"]["final_batch_size"] == 8
    assert squeezed["tasks"]["sst2"]["n"] == 24
    for name, metric in clean["tasks"]["sst2"]["metrics"].items():
        assert squeezed["tasks"]["sst2"]["metrics"][name]["value"] == pytest.approx(metric["value"], abs=1e-12)
