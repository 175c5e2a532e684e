"""What every Hugging Face adapter shares: arguments, device, dtype, loading, context size, batch plan, identity, chat.

Each model kind (causal.py, seq2seq.py, classifier.py, token_classifier.py) is a small subclass that
names its transformers Auto class and answers its requests with the shared cores: loading.py (model
sources and content hashes), tokens.py (text -> ids), scoring.py (batched log-probabilities and
encoder forwards) and generation.py (greedy decoding with stop sequences).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Sequence

import torch

from ...batching import parse_batch_size
from ...errors import EvalkitError
from ...requests import Generate, GenerateResponse, Loglikelihood, LoglikelihoodResponse, Message
from ...requests import RollingLoglikelihood, RollingResponse
from ..base import Adapter, Progress
from ..model_args import MAX_CONTEXT, ModelArg, check_model_args
from .generation import Generator, generate_greedy
from .labels import parse_label_map
from .loading import load_model
from .scoring import per_document
from .tokens import document_windows, prefix_token_id

DTYPES = {"auto": "auto", "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
# the --model-arg names every kind takes; a kind adds its own to its `model_args` table
COMMON_MODEL_ARGS = {
    "max_length": ModelArg(int, "context length in tokens; default: the model's", min=1, max=MAX_CONTEXT),
    "revision": ModelArg(str, "hub revision: branch, tag or commit"),
}


class HFAdapter(Adapter):
    """A transformers model and its tokenizer, loaded offline-aware from a folder, a hub id or (causal) a GGUF."""

    auto_class = "AutoModelForCausalLM"  # the transformers Auto class of the kind
    model_args = COMMON_MODEL_ARGS

    def __init__(self, model: str | None = None, dtype: str = "auto", device: str = "auto",
                 batch_size: str | int | None = "auto", max_length: int | None = None,
                 trust_remote_code: bool = False, revision: str | None = None, **unknown: Any):
        # typed and range-checked (adapters/model_args.py); a kind's own arguments arrive here only if it
        # does not take them, so they are refused as unknown
        checked = check_model_args(type(self), {"max_length": max_length, "revision": revision, **unknown})
        max_length, revision = checked["max_length"], checked["revision"]
        untaken = sorted(set(checked) - {"max_length", "revision"})
        if untaken:
            raise EvalkitError(f"{self.name}: model argument(s) {', '.join(untaken)} declared but not taken by this adapter")
        if dtype not in DTYPES:
            raise EvalkitError(f"--dtype must be one of {', '.join(DTYPES)}, got '{dtype}'")
        self.device = pick_device(device)
        self.plan = parse_batch_size(batch_size, self.device)  # a bad --batch-size fails before the model loads
        quiet_transformers()
        import transformers

        # "auto" keeps the checkpoint's own dtype (as lm-eval does); the dtype used is recorded in the identity
        self.model, self.tokenizer, self._identity = load_model(model, DTYPES[dtype], trust_remote_code, revision,
                                                                model_class=getattr(transformers, self.auto_class))
        self._identity["dtype_requested"] = dtype
        self.model.to(self.device).eval()
        self.dtype = str(self.model.dtype).replace("torch.", "")
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
        self.max_length = int(max_length or model_max_length(self.model, tok))
        self.truncated = 0
        self._chats: dict[tuple[Message, ...], str] = {}

    @property
    def identity(self) -> dict[str, Any]:
        return {**self._identity, "adapter": self.name, "dtype": self.dtype, "device": self.device,
                "max_length": self.max_length, "class": type(self.model).__name__}

    def run_stats(self) -> dict[str, Any]:
        return {"batch_size": self.plan.size, "final_batch_size": self.plan.final_size or self.plan.size,
                "batch_size_auto": self.plan.auto, "oom_backoffs": self.plan.backoffs, "truncated_inputs": self.truncated,
                "token_budget": self.plan.token_budget}

    def empty_cache(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    # -- chat ---------------------------------------------------------------------------------------
    def render_chat(self, messages: Sequence[Message]) -> str:
        """The conversation through the tokenizer's chat template, generation prompt added (lm-eval's rendering)."""
        key = tuple(messages)
        if key not in self._chats:
            template = getattr(self.tokenizer, "chat_template", None)
            if not template:
                raise EvalkitError(f"{self.name}: model '{self._identity.get('spec')}' has no chat template in its "
                                   "tokenizer; drop --apply-chat-template")
            try:
                self._chats[key] = self.tokenizer.apply_chat_template(
                    [{"role": role, "content": content} for role, content in key], add_generation_prompt=True, tokenize=False)
            except Exception as err:  # noqa: BLE001 - a template that raises (e.g. no system role): the user's to fix
                raise EvalkitError(f"{self.name}: the model's chat template refused the conversation ({type(err).__name__}: "
                                   f"{str(err).splitlines()[0] if str(err) else ''}); drop --system-prompt or "
                                   "--apply-chat-template") from None
        return self._chats[key]

    def prompt(self, context: str, messages: Sequence[Message]) -> str:
        """What the model reads: the rendered conversation of a chat request, else the plain context."""
        return self.render_chat(messages) if messages else context


class HFLabelledAdapter(HFAdapter):
    """A model that answers with its own labels (`id2label`): a sequence or token classifier.

    The labels map to the task's case-insensitively or through `--model-arg label_map=...` (labels.py);
    the map changes the answers, so it is an adapter option of the identity and the cache key."""

    model_args = {**COMMON_MODEL_ARGS,
                  "label_map": ModelArg(str, "model label to task label, e.g. POSITIVE:positive,NEGATIVE:negative")}

    def __init__(self, model: str | None = None, label_map: Any = None, **kwargs: Any):
        self.label_map = parse_label_map(label_map)
        super().__init__(model, **kwargs)
        config = self.model.config
        self.model_labels = [str(config.id2label[i]) for i in range(config.num_labels)]

    @property
    def identity(self) -> dict[str, Any]:
        return {**super().identity, "labels": self.model_labels,
                "adapter_options": {"label_map": self.label_map} if self.label_map else None}


class HFLanguageModel(HFAdapter):
    """A model that gives text a probability (causal or encoder-decoder): the three language-model calls.

    A kind supplies how a (context, continuation) pair becomes token ids, how pairs are scored, and
    when a pair was too long; windows, chat prompts, generation and the counts are shared.
    """

    def __init__(self, model: str | None = None, kv_cache: str = "auto", **kwargs: Any):
        super().__init__(model, **kwargs)
        self.prefix_token_id = prefix_token_id(self.tokenizer)
        self.generator = Generator(self.model, self.tokenizer, self.device, kv_cache)

    def run_stats(self) -> dict[str, Any]:
        return {**super().run_stats(), "kv_cache": self.generator.cache_mode}

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    def score_pairs(self, pairs: list[tuple[list[int], list[int]]], progress: Progress | None) -> list[tuple[float, bool]]:
        raise NotImplementedError

    def too_long(self, ctx: list[int], cont: list[int]) -> bool:
        raise NotImplementedError

    def loglikelihood(self, requests: Sequence[Loglikelihood], progress: Progress | None = None) -> list[LoglikelihoodResponse]:
        pairs = [self.encode_pair(self.prompt(r.context, r.messages), r.continuation) for r in requests]
        for i, (_, cont) in enumerate(pairs):
            if not cont:
                raise EvalkitError(f"request {i}: the continuation {requests[i].continuation!r} is empty after tokenisation")
        too_long = [self.too_long(ctx, cont) for ctx, cont in pairs]
        self.truncated += sum(too_long)
        return [LoglikelihoodResponse(lp, greedy, len(cont), cut)
                for (lp, greedy), (_, cont), cut in zip(self.score_pairs(pairs, progress), pairs, too_long)]

    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihood], progress: Progress | None = None) -> list[RollingResponse]:
        """lm-eval's disjoint windows (tokens.rolling_windows): every token is scored exactly once."""
        owners, pairs, counts = document_windows(self.tokenizer, [r.text for r in requests], self.prefix_token_id,
                                                 self.max_length)
        scored = self.score_pairs(pairs, per_document(progress, len(requests), len(pairs)))
        totals = [0.0] * len(requests)
        for owner, (lp, _) in zip(owners, scored):
            totals[owner] += lp
        return [RollingResponse(totals[i], counts[i]) for i in range(len(requests))]

    def generate(self, requests: Sequence[Generate], progress: Progress | None = None) -> list[GenerateResponse]:
        plain = [replace(r, context=self.prompt(r.context, r.messages), messages=()) for r in requests]
        responses, truncated = generate_greedy(self.generator, plain, self.max_length, self.plan, progress, self.empty_cache)
        self.truncated += truncated
        return responses


def pick_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "mps", "cuda") and not re.fullmatch(r"cuda:\d{1,3}", device):
        raise EvalkitError(f"--device must be auto, cpu, cuda, cuda:N or mps, got '{device}'")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EvalkitError(f"--device {device} asked for, but no CUDA device is available; use --device cpu or auto")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise EvalkitError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                               f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EvalkitError("--device mps asked for, but this machine has no Apple MPS device; use --device cpu or auto")
    return device


def quiet_transformers() -> None:
    """No weight-loading bars or over-length warnings: evalkit truncates itself and reports it."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def model_max_length(model, tok) -> int:
    """lm-eval's rule: the model config's context size, else the tokenizer's, else 2048."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(model.config, attr, None)
        if value:
            return int(value)
    if tok.model_max_length and tok.model_max_length < 1_000_000:
        return int(tok.model_max_length)
    return 2048
