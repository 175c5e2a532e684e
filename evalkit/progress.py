"""A progress bar with requests done, tokens per second and cache hits (tqdm, on stderr)."""

from __future__ import annotations

import time

from tqdm.auto import tqdm


class Progress:
    """Callable as progress(requests_done, tokens); `cached(hits, total)` notes answers from the cache."""

    def __init__(self, label: str, total: int, enabled: bool = True):
        self.tokens = 0
        self.hits = 0
        self.total = total
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc=label, unit="req", disable=not enabled, dynamic_ncols=True, leave=True)

    def update(self, requests: int, tokens: int) -> None:
        self.tokens += tokens
        self.bar.set_postfix_str(self._postfix(), refresh=False)
        self.bar.update(requests)

    __call__ = update

    def cached(self, hits: int, total: int) -> None:
        self.hits += hits
        self.bar.set_postfix_str(self._postfix(), refresh=False)
        self.bar.update(hits)

    def _postfix(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        text = f"{self.tokens / elapsed:,.0f} tok/s"
        return f"{text}, cached {self.hits}/{self.total}" if self.hits else text

    def close(self) -> None:
        self.bar.close()
