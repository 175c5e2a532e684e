"""The `openai` adapter: a model behind an OpenAI-compatible server (vLLM, SGLang, llama.cpp, hosted APIs).

    evalkit run --adapter openai --model NAME --model-arg base_url=http://127.0.0.1:8000/v1 --tasks sst2

- Scoring uses /v1/completions with `echo` and `logprobs` (see echo.py), after the trust probe
  (probe.py) passed once; a server that fails it gets no scoring request (ScoringRefused).
- With a tokenizer (the server's /tokenize or `tokenizer=`), prompts go as token ids built exactly
  as hf-causal builds them, and long documents are scored in hf-causal's rolling windows of
  `max_length` tokens (default: the server's context minus 2: a window sends max_length + 1 tokens
  and asks for one more). Without one, prompts go as text and the continuation is found by offsets.
- Generation is greedy (temperature 0) with the request's stop sequences, max tokens and a seed,
  through /v1/completions or, with `chat=true`, /v1/chat/completions.
- Up to `max_concurrency` requests are in flight, sent in request order; `stream_answers` hands each
  answer over as it arrives, so the response cache keeps everything received before a crash.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

from ...errors import EvalkitError, ScoringRefused
from ...requests import (
    Generate,
    GenerateResponse,
    Loglikelihood,
    LoglikelihoodResponse,
    RollingLoglikelihood,
    RollingResponse,
)
from ..base import Adapter, Progress
from ..hf.generation import cut_at_stop
from ..hf.tokens import encode_pair, encode_text, rolling_windows
from .echo import continuation_start, echo_payload, echoed_prompt, sum_logprobs
from .http import JsonClient, ServerError
from .options import ServedOptions, parse_options
from .probe import ProbeResult, run_probe
from .tokenizer import LocalTokenizer, ServerTokenizer, max_model_len

DEFAULT_CONTEXT = 2048  # lm-eval's default for servers that do not report theirs
MAX_STOP_SEQUENCES = 4  # the OpenAI API's limit; longer lists are also cut here, after the answer


class OpenAIAdapter(Adapter):
    name = "openai"

    def __init__(self, model: str | None = None, dtype: str | None = "auto", device: str | None = "auto",
                 batch_size: str | int | None = "auto", trust_remote_code: bool = False, **model_args: Any):
        for flag, value in (("--dtype", dtype), ("--device", device)):
            if value not in (None, "", "auto"):
                raise EvalkitError(f"openai: {flag} is chosen where the server starts (e.g. vllm --dtype), not here; drop {flag}")
        self.options: ServedOptions = parse_options(model_args)
        self.concurrency = _concurrency(self.options, batch_size, "max_concurrency" in model_args)
        opts = self.options
        self.client = JsonClient(opts.base_url, opts.api_key(), opts.timeout, opts.max_retries, opts.backoff)
        self.model_name, entry = self._served_model(model)
        self.server_context = max_model_len(entry)
        self.server_revision = entry.get("revision") if isinstance(entry.get("revision"), str) else None
        self.server_root = entry.get("root") if isinstance(entry.get("root"), str) else None
        prefix = opts.prefix_token_id if opts.prefix_token_id >= 0 else None
        if opts.tokenizer:
            self.tokenizer: LocalTokenizer | ServerTokenizer | None = LocalTokenizer(opts.tokenizer, trust_remote_code)
            if prefix is not None:
                self.tokenizer.prefix_token_id = prefix
        else:
            self.tokenizer = ServerTokenizer.probe(self.client, self.model_name, prefix)
        if opts.prompt_format == "tokens" and self.tokenizer is None:
            raise EvalkitError(f"openai: prompt_format=tokens needs token ids, but {self.client.public_root} has no "
                               "/tokenize; pass --model-arg tokenizer=PATH")
        self.token_prompts = self.tokenizer is not None and opts.prompt_format != "text"
        self.max_length = opts.max_length or (self.server_context - 2 if self.server_context else DEFAULT_CONTEXT)
        self.probe: ProbeResult | None = None
        self._lock = threading.Lock()
        self.truncated = 0

    # -- identity ---------------------------------------------------------------------------------
    @property
    def identity(self) -> dict[str, Any]:
        revision = self.options.revision or self.server_revision
        return {"spec": self.model_name, "adapter": self.name, "served_model": self.model_name,
                "server": self.client.host + (f":{self.client.port}" if self.client.port else ""),
                "base_url": self.client.public, "revision": revision or None,
                "revision_source": "pinned" if self.options.revision else "server" if revision else None,
                "endpoint": "chat/completions" if self.options.chat else "completions",
                "prompt_format": "tokens" if self.token_prompts else "text",
                "tokenizer": self.tokenizer.source if self.tokenizer else None,
                "max_length": self.max_length, "server_context": self.server_context,
                "server_model_root": self.server_root, "dtype": None, "device": "server"}

    @property
    def cache_version(self) -> str:
        """Settings that change answers without changing the weights: part of the response-cache key."""
        return f"openai-1/{self.identity['endpoint']}/{self.identity['prompt_format']}/{self.identity['tokenizer']}"

    uncached_reason = ("the server can change the weights behind a model name; pin them with "
                       "--model-arg revision=... (a tag, commit or date you trust) to cache responses")

    def run_stats(self) -> dict[str, Any]:
        # no "batch_size": the cache wrapper then hands over large chunks, which keep max_concurrency requests in
        # flight; each answer is committed as it arrives (stream_answers), so a crash loses none received
        return {"max_concurrency": self.concurrency, "requests_sent": self.client.requests,
                "retries": self.client.retries, "truncated_inputs": self.truncated,
                "logprob_probe": self.probe.to_dict() if self.probe else "not run (no scoring request was sent)"}

    # -- the protocol -----------------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[Loglikelihood], progress: Progress | None = None) -> list[LoglikelihoodResponse]:
        return _in_order(self.stream_answers("loglikelihood", requests, progress), len(requests))

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihood], progress: Progress | None = None) -> list[RollingResponse]:
        return _in_order(self.stream_answers("loglikelihood_rolling", requests, progress), len(requests))

    def generate(self, requests: Sequence[Generate], progress: Progress | None = None) -> list[GenerateResponse]:
        return _in_order(self.stream_answers("generate", requests, progress), len(requests))

    def stream_answers(self, kind: str, requests: Sequence[Any], progress: Progress | None = None) -> Iterator[tuple[int, Any]]:
        """(request index, response) pairs as the answers arrive; the caching wrapper commits each at once."""
        if kind == "generate":
            return self._stream(self._generate_one, list(requests), progress)
        self._require_trust()
        if kind == "loglikelihood":
            return self._stream(self._score_one, list(requests), progress)
        return self._rolling(list(requests), progress)

    # -- the trust probe --------------------------------------------------------------------------
    def _require_trust(self) -> None:
        with self._lock:
            if self.probe is None:
                self.probe = run_probe(self._complete, self.model_name, self.options.probe_tolerance, self.options.seed)
        if not self.probe.passed:
            raise ScoringRefused(
                f"openai: {self.model_name} at {self.client.public} gets no scoring requests: the log-prob trust probe "
                f"failed: {self.probe.reason}. Multiple-choice and perplexity tasks need a server whose echoed prompt "
                "log-probs are right (vLLM's are); generation tasks still run")

    # -- one request each -------------------------------------------------------------------------
    def _complete(self, payload: dict[str, Any]) -> Any:
        return self.client.post("/completions", payload)

    def _context(self, context: str, messages) -> str:
        if not messages:
            return context
        if isinstance(self.tokenizer, LocalTokenizer):
            return self.tokenizer.render_chat(messages)
        raise EvalkitError("openai: a chat conversation can be scored only once rendered here (chat endpoints return no "
                           "prompt log-probs): pass --model-arg tokenizer=PATH, a folder with the model's chat template")

    def _score_one(self, r: Loglikelihood) -> tuple[LoglikelihoodResponse, int]:
        context = self._context(r.context, r.messages)
        if self.token_prompts:
            prefix = self._prefix() if not context else self.tokenizer.prefix_token_id
            ctx, cont = encode_pair(self.tokenizer.hf, context, r.continuation, prefix)
            if not cont:
                raise EvalkitError(f"openai: the continuation {r.continuation!r} is empty after tokenisation")
            prompt = (ctx + cont)[-(self.max_length + 1):]
            n = min(len(cont), len(prompt) - 1)
            truncated = len(ctx) + len(cont) > self.max_length + 1
            if truncated:
                self._count_truncated()
            scored = echoed_prompt(self._complete(echo_payload(self.model_name, prompt)), len(prompt))[-n:]
            size = len(prompt)
        else:
            spaces = len(context) - len(context.rstrip())  # as encode_pair: trailing spaces go with the continuation
            context, continuation = context[: len(context) - spaces], context[len(context) - spaces:] + r.continuation
            if not context:
                raise EvalkitError("openai: an empty context can be scored only from token ids; pass --model-arg tokenizer=PATH")
            tokens = echoed_prompt(self._complete(echo_payload(self.model_name, context + continuation)))
            scored, truncated, size = tokens[continuation_start(tokens, len(context)):], False, len(tokens)
        if not scored:
            raise EvalkitError(f"openai: the continuation {r.continuation!r} is empty after tokenisation")
        logprob, greedy = sum_logprobs(scored)
        return LoglikelihoodResponse(logprob, greedy, len(scored), truncated), size

    def _prefix(self) -> int:
        prefix = self.tokenizer.prefix_token_id if self.tokenizer else None
        if prefix is None:
            raise EvalkitError("openai: the server's tokenizer adds no BOS token, so evalkit cannot tell which token "
                               "starts a document; pass --model-arg prefix_token_id=N (the BOS or EOS id) or tokenizer=PATH")
        return prefix

    def _rolling(self, requests: list[RollingLoglikelihood], progress: Progress | None) -> Iterator[tuple[int, Any]]:
        if not self.token_prompts:
            raise EvalkitError("openai: perplexity needs token-id prompts (rolling windows); pass --model-arg tokenizer=PATH "
                               "for a server without /tokenize, and do not set prompt_format=text")
        prefix = self._prefix()
        owners, windows, counts = [], [], []
        for i, r in enumerate(requests):
            tokens = encode_text(self.tokenizer.hf, r.text)
            counts.append(len(tokens))
            for window in rolling_windows(tokens, prefix, self.max_length):
                owners.append(i)
                windows.append(window)
        left = Counter(owners)
        totals = [0.0] * len(requests)
        for w, logprob in self._stream(self._window_one, windows, _tokens_only(progress)):
            owner = owners[w]
            totals[owner] += logprob
            left[owner] -= 1
            if left[owner] == 0:
                if progress:
                    progress(1, 0)
                yield owner, RollingResponse(totals[owner], counts[owner])
        for i in range(len(requests)):
            if not counts[i]:
                if progress:
                    progress(1, 0)
                yield i, RollingResponse(0.0, 0)

    def _window_one(self, window: tuple[list[int], list[int]]) -> tuple[float, int]:
        ctx, cont = window
        prompt = ctx + cont
        scored = echoed_prompt(self._complete(echo_payload(self.model_name, prompt)), len(prompt))[-len(cont):]
        return sum_logprobs(scored)[0], len(prompt)

    def _generate_one(self, r: Generate) -> tuple[GenerateResponse, int]:
        common = {"model": self.model_name, "max_tokens": r.max_new_tokens, "temperature": 0, "seed": self.options.seed}
        if r.until:
            common["stop"] = list(r.until)[:MAX_STOP_SEQUENCES]
        truncated = False
        # a conversation (--apply-chat-template) goes to the chat endpoint, where the server applies the model's
        # template, unless a local tokenizer renders it here (then the text is hf-causal's exactly); chat=true
        # sends plain prompts there too, as one user turn
        if self.options.chat or (r.messages and not isinstance(self.tokenizer, LocalTokenizer)):
            messages = r.messages or (("user", r.context),)
            answer = self.client.post("/chat/completions", {**common, "messages": [{"role": role, "content": content}
                                                                                   for role, content in messages]})
            text = _choice(answer).get("message", {}).get("content") or ""
        else:
            prompt: str | list[int] = self._context(r.context, r.messages)
            if self.token_prompts:
                room = self.max_length - r.max_new_tokens
                if room < 1:
                    raise EvalkitError(f"openai: max_new_tokens {r.max_new_tokens} leaves no room for a prompt in max_length {self.max_length}")
                ids = encode_text(self.tokenizer.hf, prompt)
                truncated = len(ids) > room
                if truncated:
                    self._count_truncated()
                prompt = ids[-room:] or [self._prefix()]
            answer = self._complete({**common, "prompt": prompt})
            text = _choice(answer).get("text") or ""
        choice = _choice(answer)
        text, stopped = cut_at_stop(text, tuple(r.until))
        if stopped is None and choice.get("finish_reason") == "stop" and choice.get("stop_reason") in r.until:
            stopped = choice["stop_reason"]
        usage = answer.get("usage") or {}
        n_tokens = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else 0
        return GenerateResponse(text, n_tokens, truncated, stopped), int(usage.get("total_tokens") or 0)

    def _count_truncated(self) -> None:
        with self._lock:
            self.truncated += 1

    # -- plumbing ---------------------------------------------------------------------------------
    def _served_model(self, model: str | None) -> tuple[str, dict[str, Any]]:
        """The served model's name and its /v1/models entry (empty when the server does not list models)."""
        try:
            listing = self.client.get("/models")
        except ServerError as err:
            if err.status in (404, 405) and model:
                return model, {}
            raise
        entries = {e["id"]: e for e in (listing or {}).get("data", []) if isinstance(e, dict) and isinstance(e.get("id"), str)}
        if model:
            if entries and model not in entries:
                raise EvalkitError(f"openai: the server at {self.client.public} does not serve '{model}' "
                                   f"(it serves: {', '.join(sorted(entries)[:10])}); pass one of those as --model")
            return model, entries.get(model, {})
        if len(entries) == 1:
            return next(iter(entries.items()))
        raise EvalkitError(f"openai: pass the served model's name with --model (the server at {self.client.public} lists "
                           f"{', '.join(sorted(entries)[:10]) or 'no models'})")

    def _stream(self, work: Callable[[Any], tuple[Any, int]], items: list[Any],
                progress: Progress | None) -> Iterator[tuple[int, Any]]:
        """Run `work` on every item, at most `concurrency` at a time, sent in order; yield (index, result)."""
        if not items:
            return
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="evalkit-openai")
        in_flight: dict[Future, int] = {}
        sent = 0
        try:
            while sent < len(items) or in_flight:
                while sent < len(items) and len(in_flight) < self.concurrency:
                    in_flight[pool.submit(work, items[sent])] = sent
                    sent += 1
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=in_flight.__getitem__):
                    index = in_flight.pop(future)
                    result, tokens = future.result()
                    if progress:
                        progress(1, tokens)
                    yield index, result
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _choice(answer: Any) -> dict[str, Any]:
    try:
        choice = answer["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise ServerError("openai: the server's answer has no choices[0]", None, answer) from None
    return choice if isinstance(choice, dict) else {}


def _in_order(pairs: Iterator[tuple[int, Any]], n: int) -> list[Any]:
    out: list[Any] = [None] * n
    for index, response in pairs:
        out[index] = response
    return out


def _tokens_only(progress: Progress | None) -> Progress | None:
    """Windows add tokens to the bar; a document counts once its last window is scored."""
    if progress is None:
        return None
    return lambda _windows, tokens: progress(0, tokens)


def _concurrency(options: ServedOptions, batch_size: Any, explicit: bool) -> int:
    """max_concurrency, or an integer --batch-size when max_concurrency is not given."""
    if explicit or batch_size in (None, "", "auto"):
        return options.max_concurrency
    try:
        value = int(batch_size)
    except (TypeError, ValueError):
        raise EvalkitError(f"openai: --batch-size must be an integer or auto, got '{batch_size}' "
                           "(it sets max_concurrency, the requests in flight at once)") from None
    if value < 1:
        raise EvalkitError(f"openai: --batch-size must be at least 1, got {value}")
    return value
