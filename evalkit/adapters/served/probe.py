"""The log-prob trust probe: are the server's echoed prompt log-probs the ones it generates with?

For a short prompt P the server first generates t (a few tokens, greedily, with their log-probs).
Then P + t is scored with echo: the log-prob echoed for each token of t must equal the log-prob the
server reported when it generated that token after P, within `tolerance` nats. A server whose echo
is shifted by one position (llama.cpp, llama-cpp-python #1983) or which returns no prompt log-probs
fails, and gets no scoring requests: multiple-choice and perplexity scores from it would be noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from .echo import NoPromptLogprobs, echo_payload, echoed_prompt
from .http import ServerError

PROMPTS = ("The capital of France is", "Once upon a time, there was a little", "The quick brown fox jumps over the")
PROBE_TOKENS = 4


@dataclass(frozen=True)
class ProbeResult:
    passed: bool
    reason: str
    prompt: str | None = None
    tokens: list[str] | None = None
    generated_logprobs: list[float] | None = None
    echoed_logprobs: list[float | None] | None = None
    max_error: float | None = None
    tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_probe(complete: Callable[[dict[str, Any]], Any], model: str, tolerance: float, seed: int) -> ProbeResult:
    """Probe through `complete(payload) -> JSON answer` (a POST to /v1/completions)."""
    unaligned = []
    for prompt in PROMPTS:
        try:
            gen = complete({"model": model, "prompt": prompt, "max_tokens": PROBE_TOKENS, "temperature": 0,
                            "logprobs": 1, "seed": seed})
            tokens, gen_lps = _generated(gen)
            if not tokens:
                unaligned.append(f"{prompt!r}: nothing generated")
                continue
            echoed = echoed_prompt(complete(echo_payload(model, prompt + "".join(tokens))))
        except NoPromptLogprobs as err:
            return ProbeResult(False, str(err), prompt, tolerance=tolerance)
        except ServerError as err:
            if err.status is None or err.status >= 500:
                raise  # the server is down or broken: not a verdict on its log-probs
            return ProbeResult(False, f"the server refused an echo/logprobs request: {err}", prompt, tolerance=tolerance)
        tail = echoed[-len(tokens):]
        if [t.text for t in tail] != tokens:
            unaligned.append(f"{prompt!r}: echoed {[t.text for t in tail]} for generated {tokens}")
            continue
        echo_lps = [t.logprob for t in tail]
        if any(lp is None for lp in echo_lps):
            return ProbeResult(False, "the server returns no prompt log-probs for some echoed tokens", prompt, tokens,
                               gen_lps, echo_lps, None, tolerance)
        error = max(abs(a - b) for a, b in zip(echo_lps, gen_lps))
        if error > tolerance:
            worst = max(range(len(tokens)), key=lambda i: abs(echo_lps[i] - gen_lps[i]))
            reason = (f"echoed prompt log-probs disagree with generation log-probs by up to {error:.3g} nats "
                      f"(token {tokens[worst]!r} after {prompt!r}: echo {echo_lps[worst]:.4f}, generated "
                      f"{gen_lps[worst]:.4f}; tolerance {tolerance:g})")
            return ProbeResult(False, reason, prompt, tokens, gen_lps, echo_lps, error, tolerance)
        return ProbeResult(True, f"echoed log-probs equal generation log-probs within {error:.2g} nats",
                           prompt, tokens, gen_lps, echo_lps, error, tolerance)
    return ProbeResult(False, "the echoed tokens never lined up with the generated ones (" + "; ".join(unaligned) + ")",
                       tolerance=tolerance)


def _generated(answer: Any) -> tuple[list[str], list[float]]:
    try:
        logprobs = answer["choices"][0].get("logprobs")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise NoPromptLogprobs("the server's completion answer has no choices[0]", None, answer) from None
    if not isinstance(logprobs, dict) or not isinstance(logprobs.get("token_logprobs"), list):
        raise NoPromptLogprobs("the server returns no log-probs for generated tokens", None, answer)
    tokens = [str(t) for t in logprobs.get("tokens") or []]
    values = logprobs["token_logprobs"]
    if len(tokens) != len(values) or any(not isinstance(v, (int, float)) for v in values):
        raise NoPromptLogprobs("the server's log-probs for generated tokens are incomplete", None, answer)
    while tokens and not tokens[-1]:  # an end-of-sequence token decodes to nothing: it cannot be echoed
        tokens, values = tokens[:-1], values[:-1]
    return tokens, [float(v) for v in values]
