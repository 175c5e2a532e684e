"""Batch planning: length-sorted batches, a token budget, and out-of-memory back-off.

`run_batches` walks items in a fixed order, so a batch that runs out of memory is halved and
retried from the same position: no request is lost or run twice, and the final size is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

AUTO_START_CUDA = 256
AUTO_START_CPU = 32
# --batch-size auto: rows per batch are also capped by padded tokens (rows x longest row), so short
# requests share big batches and long ones small batches
AUTO_TOKEN_BUDGET_CUDA = 256 * 1024
AUTO_TOKEN_BUDGET_CPU = 16 * 1024


def is_oom(err: BaseException) -> bool:
    try:
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    text = str(err).lower()
    return isinstance(err, (RuntimeError, MemoryError)) and ("out of memory" in text or isinstance(err, MemoryError))


@dataclass
class BatchPlan:
    """`size`: rows per batch; `token_budget`: padded tokens per batch (rows x longest row), 0 for none."""

    size: int
    auto: bool = False
    token_budget: int = 0
    final_size: int = 0
    backoffs: int = 0


def parse_batch_size(value: str | int | None, device: str) -> BatchPlan:
    from .errors import EvalkitError

    if value in (None, "", "auto"):
        cuda = device.startswith("cuda")
        return BatchPlan(size=4 * (AUTO_START_CUDA if cuda else AUTO_START_CPU), auto=True,
                         token_budget=AUTO_TOKEN_BUDGET_CUDA if cuda else AUTO_TOKEN_BUDGET_CPU)
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise EvalkitError(f"--batch-size must be a positive integer or 'auto', got '{value}'") from None
    if size < 1:
        raise EvalkitError(f"--batch-size must be a positive integer or 'auto', got '{value}'")
    return BatchPlan(size=size)


def plan_batches(lengths: Sequence[int], plan: BatchPlan) -> list[tuple[int, int]]:
    """[start, end) of each batch: up to `size` rows, fewer when rows x longest length would pass the token budget."""
    bounds, pos = [], 0
    while pos < len(lengths):
        bounds.append((pos, pos + _take(lengths, pos, plan.size, plan)))
        pos = bounds[-1][1]
    return bounds


def _take(lengths: Sequence[int], pos: int, size: int, plan: BatchPlan) -> int:
    take = min(size, len(lengths) - pos)
    if plan.token_budget:
        longest = max(lengths[pos:pos + take]) if take else 1
        take = max(1, min(take, plan.token_budget // max(1, longest)))
    return take


def run_batches(
    items: Sequence[T],
    lengths: Sequence[int],
    plan: BatchPlan,
    fn: Callable[[list[T]], list[R]],
    on_done: Callable[[list[T], list[R]], None] | None = None,
    empty_cache: Callable[[], None] | None = None,
) -> list[R]:
    """Run `fn` over consecutive batches of `items` (already sorted by the caller).

    A batch takes up to `plan.size` rows, fewer when rows x longest length would pass the token
    budget. On out-of-memory the size halves and the same batch is retried (only when `plan.auto`).
    Under torchrun the batches are planned the same way and dealt to the ranks (distributed.py).
    """
    from .distributed import current, run_dealt

    ranks = current()
    if ranks is None:
        return _run_local(items, lengths, plan, fn, on_done, empty_cache)
    batches = [(list(items[a:b]), list(lengths[a:b])) for a, b in plan_batches(lengths, plan)]

    def one(batch: tuple[list[T], list[int]]) -> list[R]:  # a rank that runs out of memory halves its own batch
        sub = BatchPlan(size=len(batch[0]), auto=plan.auto)
        out = _run_local(batch[0], batch[1], sub, fn, None, empty_cache)
        plan.backoffs += sub.backoffs
        return out

    def done(batch: tuple[list[T], list[int]], out: list[R]) -> None:
        if on_done:
            on_done(batch[0], out)

    results: list[R] = []
    for out in run_dealt(batches, ranks, one, done):
        results.extend(out)
    plan.final_size = plan.size
    return results


def _run_local(items, lengths, plan: BatchPlan, fn, on_done, empty_cache) -> list:
    results: list = []
    pos = 0
    size = plan.size
    while pos < len(items):
        take = _take(lengths, pos, size, plan)
        batch = list(items[pos:pos + take])
        try:
            out = fn(batch)
        except Exception as err:  # noqa: BLE001 - only OOM is handled, everything else re-raised
            if not (plan.auto and is_oom(err)) or take == 1:
                raise
            if empty_cache:
                empty_cache()
            size = max(1, take // 2)
            plan.backoffs += 1
            continue
        if len(out) != len(batch):
            raise RuntimeError(f"adapter returned {len(out)} results for a batch of {len(batch)}")
        results.extend(out)
        if on_done:
            on_done(batch, out)
        pos += take
    plan.final_size = size
    return results
