"""Text -> token ids the way lm-eval 0.4.13's HFLM does it, so that scores are comparable.

- The tokenizer adds its own default special tokens (a Llama tokenizer prepends BOS, GPT-2's adds
  nothing), except when the text already starts with the BOS string.
- A context's trailing whitespace moves to the continuation, and the pair is split by encoding the
  whole text and the context alone (so the continuation's first token is the one the model sees).
- An empty context is the prefix token (BOS, else EOS), and the continuation is then encoded
  without special tokens; if it already starts with the prefix token, that token is the context.
"""

from __future__ import annotations


def encode_text(tokenizer, text: str) -> list[int]:
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(text)


def prefix_token_id(tokenizer) -> int:
    """The token an empty context (and the first perplexity window) is conditioned on: BOS, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_pair(tokenizer, context: str, continuation: str, prefix: int) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) for log P(continuation | context), as lm-eval encodes them."""
    if not context:
        cont = tokenizer.encode(continuation, add_special_tokens=False)
        if cont and cont[0] == prefix:
            return cont[:1], cont[1:]
        return [prefix], cont
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = encode_text(tokenizer, context + continuation)
    ctx = encode_text(tokenizer, context)
    return ctx, whole[len(ctx):]


def rolling_windows(tokens: list[int], prefix: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """lm-eval's get_rolling_token_windows(context_len=1) + make_disjoint_window.

    Every token is predicted exactly once; the first window is conditioned on the prefix token,
    later full windows on the one token before them, and the last partial window on as much
    preceding text as fits.
    """
    if not tokens:
        return []
    windows = []
    first = min(max_len, len(tokens))
    windows.append(([prefix] + tokens[: first - 1], tokens[:first]))
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, max_len)
        end = done + n
        inp = tokens[max(0, end - max_len - 1): end - 1]
        cont = tokens[end - n: end]
        windows.append((inp, cont))
        done = end
    return [(inp[: len(inp) - (len(cont) - 1)], cont) for inp, cont in windows]


def document_windows(tokenizer, texts, prefix: int, max_len: int) -> tuple[list[int], list[tuple[list[int], list[int]]], list[int]]:
    """Every document's rolling windows, flattened: (owner document of each window, the windows, tokens per document)."""
    owners, pairs, counts = [], [], []
    for i, text in enumerate(texts):
        tokens = encode_text(tokenizer, text)
        counts.append(len(tokens))
        for pair in rolling_windows(tokens, prefix, max_len):
            owners.append(i)
            pairs.append(pair)
    return owners, pairs, counts
