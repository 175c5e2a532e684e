"""The openai adapter's model arguments: typed, range-checked, one line on any mistake.

`--model-arg KEY=VALUE` arrives as a string (or an int when all digits); each argument below says
its type and range, and a bad value names the argument, what it got and what it accepts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...errors import EvalkitError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
PROMPT_FORMATS = ("auto", "tokens", "text")


@dataclass(frozen=True)
class Arg:
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple[str, ...] = ()


ARGS: dict[str, Arg] = {
    "base_url": Arg(str, "", help="the server's OpenAI-compatible root, e.g. http://127.0.0.1:8000/v1"),
    "api_key_env": Arg(str, "", help="name of the environment variable that holds the API key"),
    "revision": Arg(str, "", help="pins the served weights (turns the response cache on)"),
    "chat": Arg(bool, False, help="generate through /v1/chat/completions"),
    "tokenizer": Arg(str, "", help="local tokenizer folder or hub id (default: the server's /tokenize)"),
    "prompt_format": Arg(str, "auto", choices=PROMPT_FORMATS, help="send token ids or text to /v1/completions"),
    "max_concurrency": Arg(int, 8, 1, 512, help="requests in flight at once"),
    "timeout": Arg(float, 300.0, 0.001, 86400, help="seconds to wait for an answer"),
    "max_retries": Arg(int, 5, 0, 100, help="retries of a failed request before the run stops"),
    "backoff": Arg(float, 0.5, 0.0, 600, help="first back-off in seconds, doubled per retry (with jitter)"),
    "max_length": Arg(int, 0, 0, 10_000_000, help="tokens per scoring window (default: the server's context - 2)"),
    "prefix_token_id": Arg(int, -1, -1, 10_000_000, help="token that conditions a document's first window"),
    "probe_tolerance": Arg(float, 0.05, 1e-9, 10.0, help="nats allowed between echoed and generated log-probs"),
    "seed": Arg(int, 1234, 0, 2**63 - 1, help="seed sent with every generation request"),
}


@dataclass(frozen=True)
class ServedOptions:
    base_url: str
    api_key_env: str
    revision: str
    chat: bool
    tokenizer: str
    prompt_format: str
    max_concurrency: int
    timeout: float
    max_retries: int
    backoff: float
    max_length: int
    prefix_token_id: int
    probe_tolerance: float
    seed: int

    def api_key(self) -> str | None:
        """The key from the named environment variable; never stored on the options themselves."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise EvalkitError(f"openai: api_key_env={self.api_key_env} but the environment variable "
                               f"{self.api_key_env} is not set; export it, or drop api_key_env for a server without a key")
        return key


def _convert(name: str, arg: Arg, value: Any) -> Any:
    text = str(value).strip()
    if arg.kind is bool:
        if isinstance(value, bool):
            return value
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise EvalkitError(f"openai: model argument {name} must be true or false, got '{text}'")
    if arg.kind in (int, float):
        try:
            number = arg.kind(text)
        except ValueError:
            kind = "an integer" if arg.kind is int else "a number"
            raise EvalkitError(f"openai: model argument {name} must be {kind}, got '{text}'") from None
        if (arg.low is not None and number < arg.low) or (arg.high is not None and number > arg.high):
            raise EvalkitError(f"openai: model argument {name} must be between {arg.low:g} and {arg.high:g}, got {text}")
        return number
    if arg.choices and text not in arg.choices:
        raise EvalkitError(f"openai: model argument {name} must be one of {', '.join(arg.choices)}, got '{text}'")
    return text


def parse_options(raw: dict[str, Any]) -> ServedOptions:
    unknown = sorted(set(raw) - set(ARGS))
    if unknown:
        raise EvalkitError(f"openai: unknown model argument(s) {', '.join(unknown)} (known: {', '.join(ARGS)})")
    values = {name: _convert(name, arg, raw[name]) if name in raw else arg.default for name, arg in ARGS.items()}
    if not values["base_url"]:
        raise EvalkitError("openai: pass the server with --model-arg base_url=http://HOST:PORT/v1")
    return ServedOptions(**values)
