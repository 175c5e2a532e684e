"""A quick check that the Hugging Face hub can be reached, so offline machines fail in seconds.

Without it, an offline `from_pretrained("gpt2")` retries for about 50 s before failing.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from urllib.parse import urlparse


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        from huggingface_hub import constants

        endpoint = urlparse(constants.ENDPOINT)
        host, port = endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)
    except Exception:  # noqa: BLE001 - an odd endpoint setting: let the real call decide
        return True
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
