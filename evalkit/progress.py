"""A progress bar with requests done and tokens per second (tqdm, on stderr)."""

from __future__ import annotations

import time

from tqdm.auto import tqdm


class Progress:
    def __init__(self, label: str, total: int, enabled: bool = True):
        self.tokens = 0
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc=label, unit="req", disable=not enabled, dynamic_ncols=True, leave=True)

    def update(self, requests: int, tokens: int) -> None:
        self.tokens += tokens
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.tokens / elapsed:,.0f} tok/s", refresh=False)
        self.bar.update(requests)

    def close(self) -> None:
        self.bar.close()
