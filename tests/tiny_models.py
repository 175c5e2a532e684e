"""Small random models built from configs, saved like real checkpoints (save_pretrained), for the adapter tests.

Each uses a real tokenizer from ../shared/models: BART's own BPE is GPT-2's, so a BART-shaped model
with the GPT-2 tokenizer is a true BART layout; the classifiers use the same tokenizer (with a
prefix space for words already split, as RoBERTa-style taggers do); the chat model uses SmolLM2's
tokenizer and its ChatML template.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import MODELS

GPT2_TOKENIZER = MODELS / "gpt2-tokenizer"
SMOLLM2_TOKENIZER = MODELS / "smollm2-135m-tokenizer"


def _save(model, tokenizer, folder: Path) -> Path:
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _gpt2_tokenizer(**kwargs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(GPT2_TOKENIZER, **kwargs)
    tok.pad_token = tok.eos_token
    return tok


def tiny_bart(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    tok = _gpt2_tokenizer()
    eos = tok.eos_token_id
    config = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, decoder_start_token_id=eos,
                        forced_eos_token_id=None, forced_bos_token_id=None, dropout=0.0)
    return _save(BartForConditionalGeneration(config), tok, folder)


def tiny_classifier(folder: Path, labels=("NEGATIVE", "POSITIVE"), seed: int = 0) -> Path:
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(seed)
    tok = _gpt2_tokenizer()
    config = DistilBertConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64,
                              pad_token_id=tok.pad_token_id, id2label=dict(enumerate(labels)),
                              label2id={name: i for i, name in enumerate(labels)})
    return _save(DistilBertForSequenceClassification(config), tok, folder)


def tiny_tagger(folder: Path, labels=("O", "B-PER", "I-PER", "B-LOC", "I-LOC"), max_positions: int = 64, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    tok = _gpt2_tokenizer(add_prefix_space=True)  # words given one by one, each after a space
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=max_positions, pad_token_id=tok.pad_token_id,
                        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
    return _save(BertForTokenClassification(config), tok, folder)


def relabel(folder: Path, copy: Path, labels: tuple[str, ...]) -> Path:
    """A copy of a classifier folder whose config names its labels differently (the same weights)."""
    import json
    import shutil

    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def tiny_chat_llama(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(SMOLLM2_TOKENIZER)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return _save(LlamaForCausalLM(config), tok, folder)
