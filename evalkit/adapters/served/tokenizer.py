"""Token ids for a served model: from a local tokenizer (`tokenizer=`) or the server's own /tokenize.

Both offer `.hf`, an object with a Hugging Face tokenizer's `bos_token` and `encode(text,
add_special_tokens)`, so the adapter encodes through hf/tokens.py exactly as hf-causal does (the
tokenizer's default special tokens, except when the text already starts with the BOS string; the
context/continuation split; the empty-context prefix), and scoring windows and truncation match an
in-process run token for token. vLLM-style servers expose POST /tokenize and /detokenize at the
server root (beside /v1).
"""

from __future__ import annotations

from typing import Any

from ...errors import EvalkitError
from ..hf.tokens import prefix_token_id
from .http import JsonClient, ServerError


MEMO_ENTRIES = 4096


class LocalTokenizer:
    """A Hugging Face tokenizer loaded here (offline-aware); also renders chat conversations."""

    def __init__(self, location: str, trust_remote_code: bool = False):
        from transformers import AutoTokenizer

        try:
            self.tok = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:
            first = (str(err).splitlines() or [""])[0][:200]
            raise EvalkitError(f"openai: cannot load tokenizer '{location}' ({type(err).__name__}: {first}); "
                               "pass a local tokenizer folder with --model-arg tokenizer=PATH") from None
        self.source = f"local:{location}"
        self.prefix_token_id = prefix_token_id(self.tok)

    @property
    def hf(self):
        return self.tok

    def render_chat(self, messages) -> str:
        if not getattr(self.tok, "chat_template", None):
            raise EvalkitError(f"openai: the tokenizer {self.source[6:]} has no chat template to render the conversation; "
                               "pass a tokenizer that has one, or chat=true to let the server render it")
        return self.tok.apply_chat_template([{"role": r, "content": c} for r, c in messages], tokenize=False,
                                            add_generation_prompt=True)


class ServerTokenizer:
    """The server's /tokenize (vLLM, SGLang); None from `probe` when the server has none."""

    def __init__(self, client: JsonClient, model: str, root: bool, prefix_token_id: int | None):
        self.client, self.model, self.root = client, model, root
        self._memo: dict[tuple[str, bool], tuple[int, ...]] = {}
        self.source = f"server:{client.public_root if root else client.public}/tokenize"
        bos = self.encode("", True)
        self.bos_id = bos[0] if len(bos) == 1 else None
        self.bos_token = self._detokenize(bos) if self.bos_id is not None else None  # the BOS string, as HF names it
        self.prefix_token_id = self.bos_id if self.bos_id is not None else prefix_token_id

    @classmethod
    def probe(cls, client: JsonClient, model: str, prefix_token_id: int | None) -> "ServerTokenizer | None":
        for root in (True, False):
            try:
                return cls(client, model, root, prefix_token_id)
            except ServerError as err:
                if err.status not in (400, 404, 405, 422):
                    raise
        return None

    @property
    def hf(self):
        return self

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        key = (text, add_special_tokens)
        if key in self._memo:  # a multiple-choice context is encoded once per choice: ask the server once
            return list(self._memo[key])
        data = self.client.post("/tokenize", {"model": self.model, "prompt": text, "add_special_tokens": add_special_tokens},
                                self.root)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise ServerError(f"openai: {self.source[7:]} answered without a list of token ids", 422)
        if len(self._memo) >= MEMO_ENTRIES:
            self._memo.clear()
        self._memo[key] = tuple(tokens)
        return tokens

    def _detokenize(self, tokens: list[int]) -> str | None:
        try:
            data = self.client.post("/detokenize", {"model": self.model, "tokens": tokens}, self.root)
        except ServerError:
            return None
        return data.get("prompt") if isinstance(data, dict) else None


def max_model_len(info: dict[str, Any] | None) -> int | None:
    """The context length a /v1/models entry reports (vLLM: max_model_len), if any."""
    for key in ("max_model_len", "context_length", "max_context_length", "n_ctx"):
        value = (info or {}).get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None
