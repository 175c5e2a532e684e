"""hf-seq2seq, hf-classifier and hf-token-classifier against plain transformers forward passes, on small random
models built from configs (tests/tiny_models.py): log-likelihoods and labels within 1e-5, batch size 1 = 16."""

from __future__ import annotations

import pytest
import torch

from evalkit.adapters import get_adapter_class
from evalkit.adapters.hf.classifier import HFClassifierAdapter
from evalkit.adapters.hf.seq2seq import HFSeq2SeqAdapter
from evalkit.adapters.hf.token_classifier import HFTokenClassifierAdapter
from evalkit.adapters.hf.tokens import rolling_windows
from evalkit.errors import EvalkitError
from evalkit.requests import Generate, Loglikelihood, RollingLoglikelihood, TagWords

from .tiny_models import relabel, tiny_bart, tiny_classifier, tiny_tagger

CONTEXTS = ["Translate to French: the cat sat on the mat.", "Question: what is two plus two?\nAnswer:", "Hi",
            "A much longer context that goes on and on about nothing in particular, to make the rows differ in length. ",
            "", "Sentence: a gripping, beautifully shot film\nSentiment:"]
CONTINUATIONS = [" le chat", " four", " there friend", "and then it stops.", "Once upon a time", " positive"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    folders = {"bart": tiny_bart(root / "bart"), "classifier": tiny_classifier(root / "classifier"),
               "tagger": tiny_tagger(root / "tagger")}
    folders["numbered"] = relabel(folders["classifier"], root / "numbered", ("LABEL_0", "LABEL_1"))
    return folders


def test_all_kinds_are_registered_built_ins():
    assert get_adapter_class("hf-seq2seq") is HFSeq2SeqAdapter
    assert get_adapter_class("hf-classifier") is HFClassifierAdapter
    assert get_adapter_class("hf-token-classifier") is HFTokenClassifierAdapter


# -- hf-seq2seq ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bart(folders):
    return {bs: HFSeq2SeqAdapter(model=str(folders["bart"]), batch_size=bs, device="cpu") for bs in (1, 16)}


def _seq2seq_reference(adapter, context: str, continuation: str) -> tuple[float, bool]:
    """log P(continuation | context) by hand: the encoder reads the context, the decoder the start token and the
    continuation shifted by one (lm-eval's seq2seq encoding: trailing spaces move to the continuation)."""
    tok, model = adapter.tokenizer, adapter.model
    stripped = context.rstrip()
    enc = tok.encode(stripped) if stripped else [tok.bos_token_id]
    cont = tok.encode(context[len(stripped):] + continuation, add_special_tokens=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([enc]),
                       decoder_input_ids=torch.tensor([[model.config.decoder_start_token_id] + cont[:-1]])).logits[0]
    logp = logits.log_softmax(-1)
    return float(sum(logp[i, t] for i, t in enumerate(cont))), bool((logits.argmax(-1) == torch.tensor(cont)).all())


def test_seq2seq_loglikelihood_equals_a_plain_forward(bart):
    reqs = [Loglikelihood(c, k) for c in CONTEXTS for k in CONTINUATIONS]
    by_size = {bs: adapter.loglikelihood(reqs) for bs, adapter in bart.items()}
    for r, one, sixteen in zip(reqs, by_size[1], by_size[16]):
        lp, greedy = _seq2seq_reference(bart[1], r.context, r.continuation)
        assert sixteen.logprob == pytest.approx(lp, abs=1e-5)
        assert one.logprob == pytest.approx(sixteen.logprob, abs=1e-5)
        assert one.is_greedy == sixteen.is_greedy == greedy
    assert len({round(r.logprob, 3) for r in by_size[16]}) > 20


def test_seq2seq_rolling_follows_lm_eval_windows(bart):
    adapter = bart[16]
    text = " ".join(f"word{i}" for i in range(150))  # about 300 tokens: three windows of the 128-token context
    (resp,) = adapter.loglikelihood_rolling([RollingLoglikelihood(text)])
    tokens = adapter.tokenizer.encode(text)
    windows = rolling_windows(tokens, adapter.tokenizer.bos_token_id, adapter.max_length)
    assert len(windows) == 3 and [t for _, cont in windows for t in cont] == tokens  # each token scored once
    total = 0.0
    with torch.no_grad():
        for enc, cont in windows:
            dec = torch.tensor([[adapter.model.config.decoder_start_token_id] + cont[:-1]])
            logp = adapter.model(input_ids=torch.tensor([enc]), decoder_input_ids=dec).logits[0].log_softmax(-1)
            total += float(sum(logp[i, t] for i, t in enumerate(cont)))
    assert resp.n_tokens == len(tokens)
    assert resp.logprob == pytest.approx(total, abs=1e-4)
    assert bart[1].loglikelihood_rolling([RollingLoglikelihood(text)])[0].logprob == pytest.approx(resp.logprob, abs=1e-4)


def _greedy_by_hand(adapter, context: str, steps: int) -> list[int]:
    model, tok = adapter.model, adapter.tokenizer
    enc = torch.tensor([tok.encode(context)])
    out = [model.config.decoder_start_token_id]
    with torch.no_grad():
        for _ in range(steps):
            nxt = int(model(input_ids=enc, decoder_input_ids=torch.tensor([out])).logits[0, -1].argmax())
            if nxt == tok.eos_token_id:
                break
            out.append(nxt)
    return out[1:]


def test_seq2seq_generation_is_greedy_and_batch_invariant(bart):
    reqs = [Generate(c or "x", max_new_tokens=6) for c in CONTEXTS]
    one, sixteen = bart[1].generate(reqs), bart[16].generate(reqs)
    assert [(r.text, r.n_tokens) for r in one] == [(r.text, r.n_tokens) for r in sixteen]
    for req, resp in zip(reqs, sixteen):
        assert resp.text == bart[1].tokenizer.decode(_greedy_by_hand(bart[1], req.context, 6), skip_special_tokens=True)
    # a stop sequence cuts the text where it first appears
    first = sixteen[0].text
    if len(first) > 2:
        stop = first[1:3]
        cut = bart[16].generate([Generate(CONTEXTS[0], until=(stop,), max_new_tokens=6)])[0]
        assert cut.text == first[: first.find(stop)] and cut.stopped_by == stop


# -- hf-classifier -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier(folders):
    return {bs: HFClassifierAdapter(model=str(folders["classifier"]), batch_size=bs, device="cpu") for bs in (1, 16)}


TEXTS = ["a gripping, beautifully shot film", "dull", "I walked out after twenty minutes and asked for my money back.",
         "not bad at all", "an utterly forgettable sequel that nobody asked for, with a plot full of holes " * 5]


def _class_logprobs(adapter, text: str) -> torch.Tensor:
    ids = adapter.tokenizer(text)["input_ids"][: adapter.max_length]
    with torch.no_grad():
        return adapter.model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)


def test_classifier_scores_are_the_label_log_softmax_of_a_plain_forward(classifier):
    reqs = [Loglikelihood(t, label) for t in TEXTS for label in ("negative", "positive")]
    one, sixteen = classifier[1].loglikelihood(reqs), classifier[16].loglikelihood(reqs)
    for r, a, b in zip(reqs, one, sixteen):
        logp = _class_logprobs(classifier[1], r.context)
        index = {"negative": 0, "positive": 1}[r.continuation]  # id2label NEGATIVE/POSITIVE, matched case-insensitively
        assert b.logprob == pytest.approx(float(logp[index]), abs=1e-5)
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)
        assert a.is_greedy == b.is_greedy == (int(logp.argmax()) == index)
    assert sixteen[-1].truncated and not sixteen[0].truncated  # the long text passes the 64-token context
    assert {r.is_greedy for r in sixteen} == {True, False}


def test_classifier_label_map_and_a_label_that_maps_to_nothing(folders, classifier):
    numbered = HFClassifierAdapter(model=str(folders["numbered"]), device="cpu", batch_size=4)
    reqs = [Loglikelihood("dull", "negative"), Loglikelihood("dull", "positive")]
    with pytest.raises(EvalkitError) as err:
        numbered.loglikelihood(reqs)
    message = str(err.value)
    assert "\n" not in message and "maps to no model label" in message
    assert "model labels: LABEL_0, LABEL_1" in message and "task labels: negative, positive" in message
    mapped = HFClassifierAdapter(model=str(folders["numbered"]), device="cpu", label_map="LABEL_0:negative,LABEL_1:positive")
    assert mapped.identity["adapter_options"] == {"label_map": {"LABEL_0": "negative", "LABEL_1": "positive"}}
    as_yaml = HFClassifierAdapter(model=str(folders["numbered"]), device="cpu", label_map="{LABEL_1: positive, LABEL_0: negative}")
    logp = _class_logprobs(mapped, "dull")
    for adapter in (mapped, as_yaml):
        assert [r.logprob for r in adapter.loglikelihood(reqs)] == pytest.approx([float(logp[0]), float(logp[1])], abs=1e-6)
    for bad in ("LABEL_0=negative", "LABEL_0:negative,LABEL_0:positive", "LABEL_9:negative"):
        with pytest.raises(EvalkitError, match="label_map"):
            HFClassifierAdapter(model=str(folders["numbered"]), device="cpu", label_map=bad).loglikelihood(reqs)


def test_classifier_refuses_generation_and_perplexity_in_one_line(classifier):
    for call, req in ((classifier[16].generate, Generate("x")), (classifier[16].loglikelihood_rolling, RollingLoglikelihood("x"))):
        with pytest.raises(EvalkitError, match="adapter 'hf-classifier' does not answer") as err:
            call([req])
        assert "\n" not in str(err.value)


# -- hf-token-classifier -------------------------------------------------------------------------------
WORDS = ["Peter", "Blackburn", "visited", "Zürich", "unbelievably", "early", ",", "said", "EU", "officials", "."]
TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def _first_piece_tags(adapter, words: list[str]) -> list[str]:
    """By hand: GPT-2's BPE splits each word (after a space) into pieces; a word's tag is the argmax on its first."""
    tok, ids, firsts = adapter.tokenizer, [], []
    for word in words:
        pieces = tok.encode(" " + word, add_special_tokens=False)
        firsts.append(len(ids))
        ids += pieces
    with torch.no_grad():
        logits = adapter.model(input_ids=torch.tensor([ids])).logits[0]
    return [adapter.model.config.id2label[int(logits[pos].argmax())] for pos in firsts]


@pytest.fixture(scope="module")
def tagger(folders):
    return {bs: HFTokenClassifierAdapter(model=str(folders["tagger"]), batch_size=bs, device="cpu") for bs in (1, 16)}


def test_word_alignment_by_the_first_piece_matches_a_hand_computation(tagger):
    tok = tagger[1].tokenizer
    assert any(len(tok.encode(" " + w, add_special_tokens=False)) > 1 for w in WORDS)  # some words do split
    sentences = [WORDS, WORDS[:3], WORDS[3:], ["Blackburn"]]
    one = tagger[1].tag_words([TagWords(tuple(s), TAGS) for s in sentences])
    sixteen = tagger[16].tag_words([TagWords(tuple(s), TAGS) for s in sentences])
    for words, a, b in zip(sentences, one, sixteen):
        assert list(a.tags) == list(b.tags) == _first_piece_tags(tagger[1], words)
        assert not a.truncated
    assert len({t for r in sixteen for t in r.tags}) > 1


def test_long_sentences_are_tagged_in_windows_of_whole_words(folders):
    short = HFTokenClassifierAdapter(model=str(folders["tagger"]), batch_size=4, device="cpu", max_length=12)
    (resp,) = short.tag_words([TagWords(tuple(WORDS), TAGS)])
    windows = short.word_windows(WORDS)
    assert len(windows) > 1 and [w for _, ws in windows for w in ws] == WORDS
    assert resp.truncated
    assert list(resp.tags) == [t for _, ws in windows for t in _first_piece_tags(short, ws)]


def test_a_model_tag_outside_the_task_tags_is_one_line(tagger):
    with pytest.raises(EvalkitError) as err:
        tagger[16].tag_words([TagWords(("Peter",), ("O", "B-PER", "I-PER"))])
    message = str(err.value)
    assert "\n" not in message and "B-LOC, I-LOC map to no task label" in message and "task labels: O, B-PER, I-PER" in message


def test_classifier_and_tagger_answers_are_cached_under_their_label_maps(tmp_path, folders, classifier, tagger):
    from evalkit.adapters.caching import with_cache
    from evalkit.cache import ResponseCache, model_key

    cache = ResponseCache(tmp_path)
    reqs = [Loglikelihood(t, label) for t in TEXTS[:3] for label in ("negative", "positive")]
    cached = with_cache(classifier[16], cache, 1234, log=lambda m: None)
    first = cached.loglikelihood(reqs)
    again = cached.loglikelihood(reqs)
    assert cached.take_call_stats() == {"hits": 6, "misses": 6, "computed": 6}
    assert [r.logprob for r in again] == [r.logprob for r in first]
    mapped = HFClassifierAdapter(model=str(folders["classifier"]), device="cpu", label_map="NEGATIVE:positive,POSITIVE:negative")
    assert model_key(mapped.name, mapped.identity) != model_key(classifier[16].name, classifier[16].identity)
    swapped = with_cache(mapped, cache, 1234, log=lambda m: None).loglikelihood(reqs)
    # swapped labels: "negative" now reads the model's POSITIVE, so no cached answer of the plain model is reused
    assert [s.logprob for s in swapped] == [f.logprob for pair in zip(first[1::2], first[0::2]) for f in pair]
    tag_reqs = [TagWords(tuple(WORDS), TAGS), TagWords(("Peter",), TAGS)]
    cached_tagger = with_cache(tagger[16], cache, 1234, log=lambda m: None)
    fresh = cached_tagger.tag_words(tag_reqs)
    replay = cached_tagger.tag_words(tag_reqs)
    assert cached_tagger.take_call_stats()["hits"] == 2
    assert [list(r.tags) for r in replay] == [list(r.tags) for r in fresh]


@pytest.mark.parametrize("kind", ["classifier", "bart"])
def test_auto_batch_size_backs_off_on_out_of_memory(folders, kind, bart, classifier):
    """--batch-size auto halves on an (injected) out-of-memory error and loses or repeats nothing, as in hf-causal."""
    cls = HFClassifierAdapter if kind == "classifier" else HFSeq2SeqAdapter
    adapter = cls(model=str(folders[kind]), device="cpu", batch_size="auto")
    forward = adapter.model.forward
    seen: list[int] = []

    def flaky(*args, **kwargs):
        rows = kwargs["input_ids"].shape[0]
        seen.append(rows)
        if rows > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return forward(*args, **kwargs)

    adapter.model.forward = flaky
    reqs = [Loglikelihood(t, label) for t in TEXTS for label in ("negative", "positive")]
    reference = (classifier if kind == "classifier" else bart)[16].loglikelihood(reqs)
    got = adapter.loglikelihood(reqs)
    assert [r.logprob for r in got] == pytest.approx([r.logprob for r in reference], abs=1e-5)
    assert adapter.plan.backoffs >= 1 and adapter.run_stats()["final_batch_size"] <= 3 and max(seen) > 3
