"""A small JSON-over-HTTP client for model servers: timeouts, bounded retries, back-off, Retry-After.

One keep-alive connection per thread (http.client is not thread-safe). A try fails on a timeout, a
refused or dropped connection, HTTP 408/409/429/5xx or a body that is not JSON; it is retried after
an exponential back-off with full jitter (base * 2**try, capped), or after the server's Retry-After
when it sends one. After `max_retries` retries the call raises ServerError, one line that names the
URL, the last failure and what to do. Other HTTP errors (400, 401, 404...) are not retried.

The API key goes only into the Authorization header; no message, log or exception text contains it.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from ...errors import EvalkitError

RETRY_STATUS = {408, 409, 429} | set(range(500, 600))
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 300.0


class ServerError(EvalkitError):
    """A request the server did not answer usefully (after retries where retrying made sense)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status, self.body = status, body


@dataclass
class _Failure:
    reason: str
    retry_after: float | None = None


def public_url(url: str) -> str:
    """scheme://host[:port]/path, without user info, query or fragment (they may hold a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class JsonClient:
    """POST/GET JSON to one server with retries; safe to share between threads."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 300.0, max_retries: int = 5,
                 backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EvalkitError(f"base_url must look like http://host:port/v1, got '{public_url(base_url)}'")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.root_prefix = self.prefix[:-3] if self.prefix.endswith("/v1") else self.prefix  # /tokenize lives here
        self.public = public_url(base_url)
        self.public_root = self.public[: len(self.public) - (len(self.prefix) - len(self.root_prefix))]
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._sleep = sleep
        self._local = threading.local()
        self._lock = threading.Lock()
        self.retries = 0  # retried tries, all threads together (run_stats)
        self.requests = 0

    # -- one try ---------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = self._local.conn = cls(self.host, self.port, timeout=self.timeout)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _try(self, method: str, path: str, body: bytes | None, root: bool) -> tuple[Any, _Failure | None]:
        """(decoded JSON, None) on success, (error body, failure) otherwise; raises ServerError when not retryable."""
        url = (self.public_root if root else self.public) + path
        try:
            conn = self._connection()
            conn.request(method, (self.root_prefix if root else self.prefix) + path, body=body, headers=self._headers)
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
            retry_after = parse_retry_after(resp.getheader("Retry-After"))
            if resp.getheader("Connection", "").lower() == "close":
                self._drop_connection()
        except socket.timeout:
            self._drop_connection()
            return None, _Failure(f"no answer within {self.timeout:g} s")
        except (ConnectionError, http.client.HTTPException, OSError) as err:
            self._drop_connection()
            return None, _Failure(f"connection failed ({type(err).__name__}: {_first_line(err)})")
        try:
            data = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            data = None
            if status < 400:
                return None, _Failure(f"HTTP {status} with a body that is not JSON ({_snippet(raw)})")
        if status < 400:
            return data, None
        detail = _error_detail(data, raw)
        if status in RETRY_STATUS:
            return data, _Failure(f"HTTP {status} {detail}", retry_after)
        hint = ("; the server refused the credentials: check the variable named by api_key_env"
                if status in (401, 403) else "")
        raise ServerError(f"{method} {url} failed: HTTP {status} {detail}{hint}", status, data)

    # -- with retries ----------------------------------------------------------------------------
    def request(self, method: str, path: str, payload: dict[str, Any] | None = None, root: bool = False) -> Any:
        """The decoded JSON answer; `root`: the path is under the server root, not the base URL (/v1)."""
        body = json.dumps(payload).encode("utf-8") if payload is not None else None
        with self._lock:
            self.requests += 1
        failure = None
        for attempt in range(self.max_retries + 1):
            data, failure = self._try(method, path, body, root)
            if failure is None:
                return data
            if attempt == self.max_retries:
                break
            with self._lock:
                self.retries += 1
            self._sleep(self._delay(attempt, failure.retry_after))
        tries = self.max_retries + 1
        raise ServerError(f"{method} {self.public_root if root else self.public}{path} failed after {tries} tr{'y' if tries == 1 else 'ies'}: "
                          f"{failure.reason}; check that the server is up and healthy, or raise "
                          "--model-arg max_retries / timeout")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_S)
        cap = min(MAX_BACKOFF_S, self.backoff * (2 ** attempt))
        return random.uniform(0, cap)  # full jitter: concurrent clients do not retry in lockstep

    def post(self, path: str, payload: dict[str, Any], root: bool = False) -> Any:
        return self.request("POST", path, payload, root)

    def get(self, path: str) -> Any:
        return self.request("GET", path)


def _first_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text.splitlines()[0][:200]


def _snippet(raw: bytes) -> str:
    text = raw[:80].decode("utf-8", "replace").replace("\n", " ")
    return repr(text + ("..." if len(raw) > 80 else ""))


def _error_detail(data: Any, raw: bytes) -> str:
    """The server's own error message (OpenAI style {"error": {"message": ...}}), shortened to one line."""
    message = None
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            message = err.get("message")
        elif err is not None:
            message = err
    text = " ".join(str(message if message is not None else raw[:200].decode("utf-8", "replace")).split())
    return f"({text[:300]})" if text else ""
