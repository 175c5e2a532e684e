"""Our rolling windows against lm-eval's own get_rolling_token_windows + make_disjoint_window."""

from __future__ import annotations

import random

import pytest

from evalkit.adapters.hf.causal import rolling_windows

lm_utils = pytest.importorskip("lm_eval.utils")


@pytest.mark.parametrize("n_tokens,max_len", [(1, 4), (4, 4), (5, 4), (17, 4), (100, 7), (1023, 512), (1025, 512), (3000, 1024)])
def test_rolling_windows_equal_lm_eval(n_tokens, max_len):
    tokens = [random.Random(n_tokens).randrange(1000) for _ in range(n_tokens)]
    theirs = [lm_utils.make_disjoint_window(w) for w in
              lm_utils.get_rolling_token_windows(token_list=tokens, prefix_token=-1, max_seq_len=max_len, context_len=1)]
    ours = rolling_windows(tokens, -1, max_len)
    assert [(list(a), list(b)) for a, b in theirs] == ours
    predicted = [t for _, cont in ours for t in cont]
    assert predicted == tokens, "every token is predicted exactly once"
    assert ours[0][0][0] == -1, "the first window is conditioned on the prefix token"
