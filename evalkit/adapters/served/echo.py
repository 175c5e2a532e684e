"""Prompt log-probs from /v1/completions with `echo` and `logprobs`, and where the continuation starts.

The request asks for one generated token (`max_tokens: 1`, never 0: llama.cpp reads 0 as "until the
context is full" and vLLM's echo path has broken on it, lm-eval #1411); the answer lists the
prompt's tokens first, then the generated one, which is dropped. The continuation is found by
position when the prompt was sent as token ids, or by the returned text offsets when it was text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .http import ServerError

GREEDY_SLACK = 1e-6  # nats: a prompt token within this of the best candidate counts as the greedy one


class NoPromptLogprobs(ServerError):
    """The server answered an echo request without usable log-probs for the prompt."""


@dataclass(frozen=True)
class EchoedToken:
    text: str
    logprob: float | None
    best: float | None  # the highest log-prob among the top candidates at this position
    offset: int | None


def echo_payload(model: str, prompt: str | list[int]) -> dict[str, Any]:
    return {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}


def echoed_prompt(answer: Any, n_prompt: int | None = None) -> list[EchoedToken]:
    """The prompt's tokens from an echo answer (`n_prompt`: the prompt's token count, when known)."""
    try:
        choice = answer["choices"][0]
        logprobs = choice.get("logprobs")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise NoPromptLogprobs("the server's echo answer has no choices[0]", None, answer) from None
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("token_logprobs"), list):
        raise NoPromptLogprobs("the server returns no prompt log-probs (echo with logprobs gave none)", None, answer)
    values = logprobs["token_logprobs"]
    tokens = logprobs.get("tokens") or [""] * len(values)
    tops = logprobs.get("top_logprobs") or [None] * len(values)
    offsets = logprobs.get("text_offset") or [None] * len(values)
    if n_prompt is None:
        usage = answer.get("usage") or {}
        n_prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else len(values) - 1
    if n_prompt > len(values) or n_prompt < 1:
        raise NoPromptLogprobs(f"the server echoed {len(values)} log-probs for a prompt of {n_prompt} tokens", None, answer)
    out = []
    for i in range(n_prompt):
        top = tops[i] if i < len(tops) else None
        best = max(top.values()) if isinstance(top, dict) and top else None
        out.append(EchoedToken(str(tokens[i]) if i < len(tokens) else "", _number(values[i]), _number(best),
                               offsets[i] if i < len(offsets) and isinstance(offsets[i], int) else None))
    if all(t.logprob is None for t in out[1:]) and len(out) > 1:
        raise NoPromptLogprobs("the server returns no prompt log-probs (all echoed values are null)", None, answer)
    return out


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if not math.isnan(number) else None


def continuation_start(tokens: list[EchoedToken], context_chars: int) -> int:
    """Index of the token holding the continuation's first character (text prompts; offsets are characters)."""
    if any(t.offset is None for t in tokens):
        raise NoPromptLogprobs("the server's echo answer has no text offsets to find the continuation; "
                               "send token ids instead (--model-arg tokenizer=... or prompt_format=tokens)", None, None)
    start = 0
    for i, tok in enumerate(tokens):
        if tok.offset <= context_chars:
            start = i
        else:
            break
    return start  # a token that straddles the boundary counts as the continuation's


def sum_logprobs(tokens: list[EchoedToken]) -> tuple[float, bool]:
    """(sum of log-probs, every token was the server's top candidate) over the scored tokens."""
    total, greedy = 0.0, True
    for tok in tokens:
        if tok.logprob is None:
            raise NoPromptLogprobs("the server returned a null log-prob inside the continuation", None, None)
        total += tok.logprob
        if tok.best is None or tok.logprob < tok.best - GREEDY_SLACK:
            greedy = False
    return total, greedy
