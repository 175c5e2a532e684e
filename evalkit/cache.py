"""The response cache: one SQLite file (WAL mode) of model responses, keyed by model and request.

A key is the sha256 of a canonical JSON of:
  - the model: adapter name, weights hash (sha256) or hub id + resolved revision, the hashes of its
    config files, tokenizer files and chat template, dtype, max_length, model class, the version of
    evalkit's scoring code (SCORING_VERSION), the adapter's optional `cache_version`, the adapter
    options that change its answers (`adapter_options` of the identity, e.g. a classifier's label_map)
    and, for a served model, the server's host;
  - the request kind (the adapter method) and the full request content (every dataclass field,
    so the stop sequences and max_new_tokens of a generation are part of it);
  - the generation settings: greedy, or the sampling settings plus the seed when a request samples.
Two models never share an entry: their weights hashes (or revisions) differ, so their keys do; a copy
with an edited config.json or tokenizer.json differs in those hashes, and a fix to the scoring code
bumps SCORING_VERSION, so an old answer is never served for it.

Each write is one transaction, so a killed process leaves every committed chunk readable and
nothing half-written. An entry that no longer decodes (a field of the wrong type, such as
`logprob: null`) counts as missing and is computed again. A complete cache on read-only storage is
opened for reading: it answers, and new responses are not stored. A model without a weights hash or
a resolved revision is not cached at all (its weights could change under the same name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from .errors import EvalkitError
from .requests import GenerateResponse, LoglikelihoodResponse, RollingResponse, WordTags

CACHE_FILE = "responses.sqlite"
SCHEMA_VERSION = 1
# Bump whenever tokenisation, windowing or scoring changes what a request returns, so that cached
# answers computed by the old code are never served again. 2: the empty-context prefix (lm-eval's
# rule) and model identities that cover config, tokenizer and chat template.
SCORING_VERSION = 2
MODEL_FILE_HASHES = ("config_sha256", "tokenizer_sha256", "chat_template_sha256")
RESPONSE_TYPES: dict[str, type] = {
    "loglikelihood": LoglikelihoodResponse,
    "loglikelihood_rolling": RollingResponse,
    "generate": GenerateResponse,
    "tag_words": WordTags,
}
OPEN_WAIT_S = 60  # how long opening waits for other processes that are setting up the same cache
_SAMPLING_FIELDS = ("do_sample", "temperature", "top_p", "top_k")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)


def model_key(name: str, identity: dict[str, Any], cache_version: Any = None) -> dict[str, Any] | None:
    """What makes two models answer differently; None when the weights cannot be pinned down."""
    weights = identity.get("sha256")
    if not weights:
        revision = identity.get("revision")
        if not revision:
            return None
        weights = f"{identity.get('spec')}@{revision}"
    key = {"adapter": name, "weights": weights, **{k: identity.get(k) for k in MODEL_FILE_HASHES},
           "dtype": identity.get("dtype"), "max_length": identity.get("max_length"), "class": identity.get("class"),
           "scoring_version": SCORING_VERSION, "cache_version": cache_version}
    if identity.get("adapter_options"):  # arguments that change the answers, e.g. a classifier's label_map
        key["adapter_options"] = identity["adapter_options"]
    if identity.get("server"):  # a served model: the same name and revision on another host is another model
        key["server"] = identity["server"]
    return key


def is_sampling(request: Any) -> bool:
    return bool(getattr(request, "do_sample", False)) or (getattr(request, "temperature", 0) or 0) > 0


def request_key(model: dict[str, Any], kind: str, request: Any, seed: int | None = None) -> str:
    """The cache key of one request for one model (see the module docstring)."""
    content = dataclasses.asdict(request)
    sampling = is_sampling(request)
    generation = {"sampling": sampling, "seed": seed if sampling else None}
    payload = {"v": SCHEMA_VERSION, "model": model, "kind": kind, "type": type(request).__name__,
               "request": content, "generation": generation}
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


_FIELD_TYPES: dict[str, tuple[type, ...]] = {"logprob": (int, float), "n_tokens": (int,), "is_greedy": (bool,),
                                             "truncated": (bool,), "text": (str,), "stopped_by": (str, type(None))}


def _decode(cls: type, text: str) -> Any:
    """A stored response, or None when it no longer decodes into `cls` with the right types (`logprob: null`...)."""
    try:
        data = json.loads(text)
        response = cls(**data)
    except (TypeError, ValueError, RecursionError):
        return None
    for name, value in data.items():
        kinds = _FIELD_TYPES.get(name)
        if kinds and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            return None
    return response


def model_hash(model: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(model).encode("utf-8")).hexdigest()[:32]


class ResponseCache:
    """get_many / put_many over one SQLite file; safe for several processes at once (WAL + busy timeout)."""

    def __init__(self, cache_dir: str | Path):
        self.path = Path(cache_dir) / CACHE_FILE
        self.read_only = False  # True: a complete cache on read-only storage answers, and new responses are not kept
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open_for_writing()
        except (sqlite3.Error, OSError) as err:
            if not self._open_read_only():
                raise EvalkitError(f"cannot open the response cache {self.path} ({err}); "
                                   "pass --cache-dir with a writable folder, delete the file, or use --no-cache") from None

    def _open_for_writing(self) -> None:
        """Connect, switch to WAL and create the table, retrying while another process does the same.

        Processes that open a new cache at once (the ranks of a torchrun launch) race to switch it to
        WAL; SQLite answers the losers "database is locked" at once, without waiting on the busy
        timeout, so the setup is retried for up to OPEN_WAIT_S.
        """
        deadline = time.monotonic() + OPEN_WAIT_S
        while True:
            self.conn = sqlite3.connect(self.path, timeout=60)
            try:
                self.journal_mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no commit
                self._check_version()
                with self.conn:
                    self.conn.execute(
                        "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL,"
                        " response TEXT NOT NULL, created REAL NOT NULL) WITHOUT ROWID")
                    self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                return
            except sqlite3.OperationalError as err:
                self.conn.close()
                busy = "locked" in str(err) or "busy" in str(err)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.01, 0.1))

    def _check_version(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise EvalkitError(f"response cache {self.path} was written by a newer evalkit (schema {version}); "
                               "upgrade evalkit, pass another --cache-dir, or --no-cache")

    def _open_read_only(self) -> bool:
        """Open an existing cache that cannot be written (read-only folder or file) for reading only."""
        if not self.path.is_file():
            return False
        for mode in ("mode=ro", "immutable=1"):  # immutable: a WAL file on read-only storage (no -shm can be made)
            try:
                self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?{mode}", uri=True, timeout=60)
                self._check_version()
                self.conn.execute("SELECT key FROM responses LIMIT 1").fetchall()
            except sqlite3.Error:
                self.conn.close()
                continue
            self.read_only, self.journal_mode = True, mode
            return True
        return False

    def get_many(self, keys: Iterable[str], kind: str) -> dict[str, Any]:
        """The cached responses among `keys`; an entry that no longer decodes counts as missing."""
        cls = RESPONSE_TYPES[kind]
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            rows = self._query(f"SELECT key, response FROM responses WHERE key IN ({','.join('?' * len(part))})", part)
            for key, text in rows:
                response = _decode(cls, text)
                if response is not None:
                    found[key] = response
        return found

    def put_many(self, model: str, kind: str, items: Iterable[tuple[str, Any]]) -> None:
        """Store responses in one transaction: all of them or, if the process dies, none."""
        if self.read_only:
            return
        now = time.time()
        rows = [(key, model, kind, json.dumps(dataclasses.asdict(resp), allow_nan=True), now) for key, resp in items]
        try:
            with self.conn:
                self.conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as err:
            raise EvalkitError(f"cannot write to the response cache {self.path} ({err}); use --no-cache or another --cache-dir") from None

    def count(self, model: str | None = None) -> int:
        if model is None:
            return self._query("SELECT COUNT(*) FROM responses", [])[0][0]
        return self._query("SELECT COUNT(*) FROM responses WHERE model = ?", [model])[0][0]

    def _query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise EvalkitError(f"cannot read the response cache {self.path} ({err}); delete it or use --no-cache") from None

    def close(self) -> None:
        self.conn.close()
