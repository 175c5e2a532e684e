"""Text -> token ids the way lm-eval 0.4.13's HFLM does it, so that scores are comparable.

The tokenizer adds its own default special tokens (a Llama tokenizer prepends BOS, GPT-2's adds
nothing), except when the text already starts with the BOS string.
"""

from __future__ import annotations

import weakref
from typing import Any


def encode_text(tokenizer, text: str) -> list[int]:
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(text)


_LONGEST: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()
_SLACK_TOKENS = 16  # tokens kept beyond the budget, so a cut mid-word never changes the tokens that are used


def longest_token_chars(tokenizer) -> int:
    """Characters of input one token can cover at most: the longest entry of the vocabulary."""
    try:
        return _LONGEST[tokenizer]
    except (KeyError, TypeError):
        pass
    try:
        longest = max(map(len, tokenizer.get_vocab()), default=0)
    except Exception:  # noqa: BLE001 - a tokenizer without a readable vocabulary: assume long tokens
        longest = 256
    longest = max(longest, 8)
    try:
        _LONGEST[tokenizer] = longest
    except TypeError:
        pass
    return longest


def clip_for_tokens(tokenizer, text: str, max_tokens: int) -> str:
    """The end of `text`, cut by characters before tokenising when only its last `max_tokens` tokens can be used.

    What is kept still holds more than `max_tokens` tokens (twice the budget plus slack, at the longest
    token's length), so the tokens that are used are the same, and an input cut here still counts as
    truncated; but a 200 MB line is never handed to the tokenizer whole.
    """
    keep = 2 * (max_tokens + _SLACK_TOKENS) * longest_token_chars(tokenizer)
    return text if len(text) <= keep else text[-keep:]
