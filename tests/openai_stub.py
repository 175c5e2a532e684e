"""A small OpenAI-compatible HTTP server for the tests, backed by a real model (stories260K) in transformers.

It answers GET /v1/models, POST /v1/completions (text or token-id prompts, echo, logprobs, stop,
max_tokens), POST /v1/chat/completions and vLLM's /tokenize and /detokenize, each computed with a
plain transformers forward pass (no evalkit code), so the openai adapter can be checked against
hf-causal without a vLLM install. It can misbehave on request:
  - faults: a queue of ("status", code, retry_after), ("drop",), ("slow", seconds), ("badjson",),
    each applied to one request, in order;
  - shift_echo: echo log-probs off by one position, as llama.cpp's are;
  - no_prompt_logprobs: echo answers with null log-probs;
  - delay: seconds added to every answer; expect_key: 401 unless the request carries that API key.
It records the request bodies, the Authorization headers and the most requests it had in flight.
Only ever binds 127.0.0.1; `stop()` shuts it down.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


class StubModel:
    def __init__(self, folder: str):
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.context = int(self.model.config.max_position_embeddings)
        self.lock = threading.Lock()
        # transformers 5.2x renamed past_key_values to cache (the old name still works, with a warning)
        self.cache_kwarg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    def encode(self, text: str, special: bool = True) -> list[int]:
        return self.tok.encode(text, add_special_tokens=special)

    def pieces(self, ids: list[int]) -> list[str]:
        """Each token's text, decoded incrementally over a few tokens (as vLLM does), so the pieces join to the text."""
        out = []
        for i in range(len(ids)):
            start = max(0, i - 6)
            before = self.tok.decode(ids[start:i], skip_special_tokens=True)
            out.append(self.tok.decode(ids[start: i + 1], skip_special_tokens=True)[len(before):])
        return out

    @torch.inference_mode()
    def run(self, ids: list[int], max_tokens: int, stop: list[str]):
        """(log-softmax rows over the prompt, greedy new tokens, their log-probs, best log-probs, finish reason).

        Row i of the first item predicts prompt token i + 1. Decoding reuses the key-value cache.
        """
        new, lps, best = [], [], []
        finish = "length"
        with self.lock:
            out = self.model(input_ids=torch.tensor([ids]), use_cache=True)
            rows = out.logits[0].float().log_softmax(-1)
            row, past = rows[-1], _cache_of(out)
            for step in range(max_tokens):
                token = int(row.argmax())
                new.append(token)
                lps.append(float(row[token]))
                best.append(float(row.max()))
                if token == self.tok.eos_token_id or any(s in self.tok.decode(new, skip_special_tokens=True) for s in stop):
                    finish = "stop"
                    break
                if step + 1 < max_tokens:
                    out = self.model(input_ids=torch.tensor([[token]]), **{self.cache_kwarg: past}, use_cache=True)
                    row, past = out.logits[0, -1].float().log_softmax(-1), _cache_of(out)
        return rows, new, lps, best, finish


def _cache_of(output):
    return output.cache if "cache" in output else output.past_key_values


class StubServer:
    def __init__(self, model: StubModel, name: str = "stories", tokenize: bool = True):
        self.model, self.name, self.tokenize = model, name, tokenize
        self.faults: deque = deque()
        self.shift_echo = False
        self.no_prompt_logprobs = False
        self.delay = 0.0  # seconds added to every answer
        self.expect_key: str | None = None  # answer 401 unless "Authorization: Bearer <expect_key>"
        self.in_flight = self.max_in_flight = 0
        self.served = 0  # answered requests (any endpoint)
        self.answered = 0  # answered /v1/completions and /v1/chat/completions requests
        self.auth: set[str] = set()
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- endpoints --------------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.name, "object": "model", "max_model_len": self.model.context}]}

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        m = self.model
        prompt = body["prompt"]
        ids = list(prompt) if isinstance(prompt, list) else m.encode(prompt)
        max_tokens = int(body.get("max_tokens", 16))
        stop = body.get("stop") or []
        rows, new, gen_lps, gen_best, finish = m.run(ids, max_tokens, stop)
        text = m.tok.decode(new, skip_special_tokens=True)
        stop_reason = None
        for s in stop:
            if s in text:
                text, stop_reason = text[: text.index(s)], s
        choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": finish, "stop_reason": stop_reason}
        if body.get("logprobs") is not None:
            if body.get("echo"):
                prompt_lps: list[float | None] = [None] + [float(rows[i - 1, ids[i]]) for i in range(1, len(ids))]
                prompt_best: list[float | None] = [None] + [float(rows[i - 1].max()) for i in range(1, len(ids))]
                if self.shift_echo:  # llama.cpp's bug: each token gets the next position's log-prob
                    prompt_lps = prompt_lps[1:] + [gen_lps[0] if gen_lps else None]
                    prompt_best = prompt_best[1:] + [gen_best[0] if gen_best else None]
                if self.no_prompt_logprobs:
                    prompt_lps = [None] * len(ids)
                all_ids, lps, best = ids + new, prompt_lps + gen_lps, prompt_best + gen_best
                choice["text"] = (prompt if isinstance(prompt, str) else m.tok.decode(ids, skip_special_tokens=True)) + text
            else:
                all_ids, lps, best = new, gen_lps, gen_best
            pieces = m.pieces(all_ids) if body.get("echo") else m.pieces(ids + new)[len(ids):]
            offsets, at = [], 0
            for piece in pieces:
                offsets.append(at)
                at += len(piece)
            choice["logprobs"] = {"tokens": pieces, "token_logprobs": lps, "text_offset": offsets,
                                  "top_logprobs": [None if b is None else {"best": b} for b in best]}
        usage = {"prompt_tokens": len(ids), "completion_tokens": len(new), "total_tokens": len(ids) + len(new)}
        return {"id": "cmpl-stub", "object": "text_completion", "model": self.name, "choices": [choice], "usage": usage}

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in body["messages"]) + "assistant:"
        answer = self.completions({**body, "prompt": text, "logprobs": None, "echo": False})
        choice = answer["choices"][0]
        message = {"role": "assistant", "content": choice["text"]}
        return {**answer, "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": choice["finish_reason"]}]}


def _handler(server: StubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None):
            body = raw if raw is not None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _fault(self) -> bool:
            with server.lock:
                fault = server.faults.popleft() if server.faults else None
            if fault is None:
                return False
            if fault[0] == "status":
                headers = {"Retry-After": str(fault[2])} if len(fault) > 2 and fault[2] is not None else {}
                self._send(fault[1], {"error": {"message": f"injected HTTP {fault[1]}"}}, headers)
            elif fault[0] == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
            elif fault[0] == "slow":
                time.sleep(fault[1])
                return False
            elif fault[0] == "badjson":
                self._send(200, None, raw=b'{"choices": [ oops')
            return True

        def do_GET(self):
            if self.path == "/v1/models":
                self._send(200, server.models())
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.headers.get("Authorization"):
                server.auth.add(self.headers["Authorization"])
            if server.expect_key and self.headers.get("Authorization") != f"Bearer {server.expect_key}":
                self._send(401, {"error": {"message": "Incorrect API key provided"}})
                return
            if self._fault():
                return
            with server.lock:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                time.sleep(server.delay)
                self._answer(body)
            finally:
                with server.lock:
                    server.in_flight -= 1

        def _answer(self, body):
            m = server.model
            if self.path == "/tokenize" and server.tokenize:
                answer = {"tokens": m.encode(body["prompt"], body.get("add_special_tokens", True))}
            elif self.path == "/detokenize" and server.tokenize:
                answer = {"prompt": m.tok.decode(body["tokens"])}
            elif self.path == "/v1/completions":
                answer = server.completions(body)
            elif self.path == "/v1/chat/completions":
                answer = server.chat(body)
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            with server.lock:
                server.served += 1
                server.bodies.append(body)
                if self.path.startswith("/v1/"):
                    server.answered += 1
            self._send(200, answer)

    return Handler
