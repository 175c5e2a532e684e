"""Where evalkit keeps converted weights, file hashes and (later) responses."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("EVALKIT_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "evalkit")
    return Path(root)
