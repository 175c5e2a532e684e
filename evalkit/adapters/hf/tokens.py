"""Text -> token ids the way lm-eval 0.4.13's HFLM does it, so that scores are comparable.

The tokenizer adds its own default special tokens (a Llama tokenizer prepends BOS, GPT-2's adds
nothing), except when the text already starts with the BOS string.
"""

from __future__ import annotations


def encode_text(tokenizer, text: str) -> list[int]:
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(text)
