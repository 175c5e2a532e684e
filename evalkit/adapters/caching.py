"""An adapter that answers from the response cache and sends only the missing requests to the model.

The missing requests go to the real adapter in chunks of a few batches; each chunk's responses are
committed to SQLite as soon as it finishes, so a killed run loses at most one chunk, and running
the same command again computes only what is missing.

Chunk boundaries are fixed by the full request list (sorted longest first, ties by position), not
by what happens to be cached, so a resumed run sends the model exactly the batches an
uninterrupted run would have sent: the numbers are identical, not merely close.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from .. import distributed
from ..cache import ResponseCache, model_hash, model_key, request_key
from .base import Adapter, Progress

MIN_CHUNK = 16
BATCHES_PER_CHUNK = 4
FALLBACK_CHUNK = 256


def _size(request: Any) -> int:
    return sum(len(v) for v in (getattr(request, f.name) for f in dataclasses.fields(request)) if isinstance(v, str))


class CachingAdapter(Adapter):
    """Wraps a real adapter; identity, stats and everything it does not cache pass through."""

    def __init__(self, inner: Adapter, cache: ResponseCache, model: dict[str, Any], seed: int | None = None,
                 chunk_size: int | None = None):
        self.inner, self.cache, self.model, self.seed = inner, cache, model, seed
        self.model_hash = model_hash(model)
        self.name = inner.name
        self.chunk_size = chunk_size or _default_chunk(inner)
        self.totals = {"hits": 0, "misses": 0, "computed": 0}
        self._last: dict[str, int] = {"hits": 0, "misses": 0, "computed": 0}

    @property
    def identity(self) -> dict[str, Any]:
        return self.inner.identity

    def run_stats(self) -> dict[str, Any]:
        return {**self.inner.run_stats(), "cache": {"path": str(self.cache.path), **self.totals}}

    def take_call_stats(self) -> dict[str, int]:
        """hits / misses / computed since the last call of this method (one task's worth for the engine)."""
        out, self._last = self._last, {"hits": 0, "misses": 0, "computed": 0}
        return out

    def loglikelihood(self, requests, progress=None):
        return self._answer("loglikelihood", self.inner.loglikelihood, requests, progress)

    def loglikelihood_rolling(self, requests, progress=None):
        return self._answer("loglikelihood_rolling", self.inner.loglikelihood_rolling, requests, progress)

    def generate(self, requests, progress=None):
        return self._answer("generate", self.inner.generate, requests, progress)

    def _answer(self, kind: str, compute: Callable[..., list[Any]], requests: Sequence[Any], progress: Progress | None) -> list[Any]:
        keys = [request_key(self.model, kind, r, self.seed) for r in requests]
        found = self.cache.get_many(keys, kind)
        agreed = distributed.agree_on_hits([key in found for key in keys])  # under torchrun: rank 0's view
        if agreed != [key in found for key in keys]:
            found = self._as_agreed(keys, agreed, found, kind)
        hits = sum(key in found for key in keys)
        _report_cached(progress, hits, len(requests))
        order = sorted(range(len(requests)), key=lambda i: (-_size(requests[i]), i))
        computed = 0
        cached = set(found)
        for start in range(0, len(order), self.chunk_size):
            missing = [i for i in order[start:start + self.chunk_size] if keys[i] not in cached]
            todo: list[int] = []
            queued: set[str] = set()
            for i in missing:
                if keys[i] not in found and keys[i] not in queued:
                    queued.add(keys[i])
                    todo.append(i)
            if todo:
                answers = compute([requests[i] for i in todo], progress)
                if len(answers) != len(todo):
                    raise RuntimeError(f"adapter {self.name} returned {len(answers)} responses for {len(todo)} requests")
                fresh = [(keys[i], resp) for i, resp in zip(todo, answers)]
                if distributed.is_main():  # under torchrun every rank holds the gathered answers; rank 0 writes
                    self.cache.put_many(self.model_hash, kind, fresh)
                found.update(fresh)
                computed += len(todo)
            if progress and len(missing) > len(todo):
                progress(len(missing) - len(todo), 0)  # repeated requests, answered once
        stats = {"hits": hits, "misses": len(requests) - hits, "computed": computed}
        for name, value in stats.items():
            self.totals[name] += value
            self._last[name] += value
        return [found[key] for key in keys]


    def _as_agreed(self, keys: list[str], agreed: list[bool], found: dict[str, Any], kind: str) -> dict[str, Any]:
        """Keep exactly the cached answers rank 0 saw (it may have read before or after another writer)."""
        wanted = {key for key, hit in zip(keys, agreed) if hit}
        late = [key for key in wanted if key not in found]
        found = {key: value for key, value in found.items() if key in wanted} | self.cache.get_many(late, kind)
        if len(found) != len(wanted):
            raise RuntimeError(f"the response cache {self.cache.path} lost {len(wanted) - len(found)} entries during the run")
        return found


def _report_cached(progress: Progress | None, hits: int, total: int) -> None:
    if progress is None:
        return
    note = getattr(progress, "cached", None)
    if callable(note):
        note(hits, total)
    elif hits:
        progress(hits, 0)


def _default_chunk(inner: Adapter) -> int:
    size = inner.run_stats().get("batch_size")
    if isinstance(size, int) and size > 0:
        return max(MIN_CHUNK, BATCHES_PER_CHUNK * size)
    return FALLBACK_CHUNK


def with_cache(adapter: Adapter, cache: ResponseCache | str | None, seed: int | None,
               log: Callable[[str], None] = print) -> Adapter:
    """`adapter` behind the response cache (or its folder); unchanged when cache is None or the model is unpinned."""
    if not cache or isinstance(adapter, CachingAdapter):
        return adapter
    key = model_key(adapter.name, adapter.identity, getattr(type(adapter), "cache_version", None))
    if key is None:
        log("evalkit: responses are not cached: the model has no weights hash or resolved revision")
        return adapter
    return CachingAdapter(adapter, cache if isinstance(cache, ResponseCache) else ResponseCache(cache), key, seed)
