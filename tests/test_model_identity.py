"""Numbers you can publish, adapter side (issue 9 items 1, 3, 4, 12, 13; issue 14 item 5).

Each test is a repro that failed on the main of 2026-11-29:
- the fast scoring path trusted the model class (a Falcon-H1 logit multiplier was ignored);
- the response cache answered for a model whose tokenizer, config or weights had changed;
- an empty context scored log p(BOS | BOS) on top of the continuation (-35.59 instead of lm-eval's -26.76);
- `--dtype auto` ignored the checkpoint's dtype.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from evalkit.adapters.hf.causal import HFCausalAdapter
from evalkit.adapters.hf.scoring import FAST, FULL, score_token_pairs, scoring_path
from evalkit.batching import BatchPlan
from evalkit.cache import SCORING_VERSION, model_key
from evalkit.engine import RunOptions, evaluate
from evalkit.requests import Loglikelihood

from .conftest import DATA, STORIES

PAIRS = [([3, 17, 42, 9, 61], [88, 5]), ([7, 7, 101], [12]), ([55, 2, 90, 14, 33, 71, 8], [19, 64, 30])]


def _forward_logprobs(model, pairs):
    """log P(cont | ctx) from the model's own forward pass, one request at a time: the reference."""
    out = []
    with torch.no_grad():
        for ctx, cont in pairs:
            ids = torch.tensor([ctx + cont])
            logp = model(input_ids=ids).logits.float().log_softmax(-1)[0]
            out.append(sum(float(logp[len(ctx) + i - 1, t]) for i, t in enumerate(cont)))
    return out


def _falcon_h1():
    from transformers import FalconH1Config, FalconH1ForCausalLM

    torch.manual_seed(0)
    config = FalconH1Config(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, num_key_value_heads=1, head_dim=16, mamba_d_ssm=32, mamba_n_heads=2,
                            mamba_d_head=16, mamba_d_state=8, mamba_n_groups=1, mamba_chunk_size=8,
                            lm_head_multiplier=4.0)
    return FalconH1ForCausalLM(config).eval()


def _recurrent_gemma():
    from transformers import RecurrentGemmaConfig, RecurrentGemmaForCausalLM

    torch.manual_seed(0)
    config = RecurrentGemmaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=1, lru_width=32, attention_window_size=16,
                                  conv1d_width=4, logits_soft_cap=0.5, block_types=["recurrent", "attention"])
    return RecurrentGemmaForCausalLM(config).eval()


@pytest.mark.parametrize("build", [_falcon_h1, _recurrent_gemma], ids=["falcon-h1-lm_head_multiplier", "recurrentgemma-logits_soft_cap"])
def test_models_that_change_logits_after_the_head_are_scored_with_their_own_forward(build):
    """Falcon-H1 was scored [-13.40, -14.42] where its forward gives [-58.63, -70.73] (issue 9 item 1)."""
    model = build()
    reference = _forward_logprobs(model, PAIRS)
    scored = [lp for lp, _ in score_token_pairs(model, PAIRS, 512, BatchPlan(size=4), "cpu")]
    assert scored == pytest.approx(reference, abs=1e-4)
    decision = scoring_path(model)
    assert decision["path"] == FULL and decision["probe_max_abs_diff"] > 1e-2


def test_the_fast_path_is_kept_only_where_it_reproduces_the_forward(stories_adapter):
    model = stories_adapter.model
    decision = scoring_path(model)
    assert decision["path"] == FAST and decision["probe_max_abs_diff"] < 1e-4
    pairs = [(ctx, cont) for ctx, cont in PAIRS]
    scored = [lp for lp, _ in score_token_pairs(model, pairs, 512, BatchPlan(size=4), "cpu")]
    assert scored == pytest.approx(_forward_logprobs(model, pairs), abs=1e-4)
    assert stories_adapter.run_stats()["scoring_path"]["path"] == FAST


def test_an_empty_context_scores_the_continuation_after_bos_only(stories_adapter):
    """lm-eval: continuation encoded without special tokens after the prefix token: -26.76, not -35.59."""
    (resp,) = stories_adapter.loglikelihood([Loglikelihood("", "positive")])
    tok = stories_adapter.tokenizer
    cont = tok.encode("positive", add_special_tokens=False)
    (reference,) = _forward_logprobs(stories_adapter.model, [([tok.bos_token_id], cont)])
    assert resp.n_tokens == len(cont)
    assert resp.logprob == pytest.approx(reference, abs=1e-4)
    assert resp.logprob == pytest.approx(-26.76, abs=0.01)


def _copy_model(tmp_path, name="copy"):
    folder = tmp_path / name
    shutil.copytree(STORIES, folder)
    return folder


def _run(folder, tmp_path, cache_dir, label):
    options = RunOptions(tasks=["sst2"], model=str(folder), limit=12, data_dir=str(DATA), output=str(tmp_path / label),
                         progress=False, batch_size=8, device="cpu", cache_dir=str(cache_dir))
    _, results = evaluate(options, log=lambda _m: None)
    return results


def _drop_bos_from_tokenizer_json(folder):
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text())
    data["post_processor"] = None  # the template that added <s>
    path.write_text(json.dumps(data))


def _change_rope_theta(folder):
    path = folder / "config.json"
    data = json.loads(path.read_text())
    data["rope_parameters"]["rope_theta"] = 500.0
    path.write_text(json.dumps(data))


def _replace_weights_in_place_keeping_size_and_mtime(folder):
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    stat = path.stat()
    tensors = load_file(path)
    name = next(k for k in tensors if k.endswith("norm.weight"))
    tensors[name] = tensors[name] * 2
    save_file(tensors, str(path), metadata={"format": "pt"})
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("change", [_drop_bos_from_tokenizer_json, _change_rope_theta, _replace_weights_in_place_keeping_size_and_mtime],
                         ids=["tokenizer.json-no-longer-adds-bos", "config.json-rope_theta", "weights-same-size-and-mtime"])
def test_a_changed_model_gets_no_answer_from_the_cache(tmp_path, change):
    """The repro: a copy of stories260K whose tokenizer.json no longer adds <s> got all 60 answers from the cache."""
    folder, cache_dir = _copy_model(tmp_path), tmp_path / "cache"
    first = _run(folder, tmp_path, cache_dir, "first")
    assert first["tasks"]["sst2"]["cache"]["computed"] == 24
    change(folder)
    second = _run(folder, tmp_path, cache_dir, "second")
    assert second["tasks"]["sst2"]["cache"] == {"hits": 0, "misses": 24, "computed": 24}
    samples = [json.loads(line) for run in ("first", "second")
               for line in next((tmp_path / run).iterdir()).joinpath("sst2.samples.jsonl").read_text().splitlines()]
    assert samples[0]["loglikelihoods"] != samples[12]["loglikelihoods"], "the change changes the numbers"


def test_the_cache_key_covers_files_chat_template_and_scoring_code_version(stories_adapter, tmp_path):
    identity = stories_adapter.identity
    assert identity["tokenizer_sha256"] and identity["config_sha256"]
    key = model_key("hf-causal", identity)
    assert key["scoring_version"] == SCORING_VERSION
    for field in ("tokenizer_sha256", "config_sha256", "chat_template_sha256"):
        assert model_key("hf-causal", {**identity, field: "something else"}) != key, field
    # a copy with identical files has the same identity: the hashes are of content, not of paths
    copy = HFCausalAdapter(model=str(_copy_model(tmp_path)), device="cpu")
    assert model_key("hf-causal", copy.identity) == key


def test_results_record_the_tokenizer_hash_and_the_dtype_used(stories_run):
    _, results = stories_run
    model = results["model"]
    assert len(model["tokenizer_sha256"]) == 64 and model["dtype"] == "float32"


def test_dtype_auto_keeps_the_checkpoints_dtype(tmp_path):
    """lm-eval keeps a bf16 checkpoint in bf16; evalkit's auto made it fp32 on CPU and bf16 on any CUDA."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "stories-bf16"
    AutoModelForCausalLM.from_pretrained(STORIES, dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(STORIES).save_pretrained(folder)
    auto = HFCausalAdapter(model=str(folder), device="cpu", dtype="auto")
    assert auto.model.dtype == torch.bfloat16
    assert auto.identity["dtype"] == "bfloat16" and auto.identity["dtype_requested"] == "auto"
    forced = HFCausalAdapter(model=str(folder), device="cpu", dtype="float32")
    assert forced.model.dtype == torch.float32 and forced.identity["dtype"] == "float32"
