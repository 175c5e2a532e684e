"""The README's checkpoint story, small: fine-tune stories260K on XSum summaries, save, evaluate, compare."""

from __future__ import annotations

import importlib.util

import pytest

from evalkit.cli import main
from evalkit.analysis.compare import compare_runs, format_comparison
from evalkit.results import read_results

from .conftest import DATA, ROOT, STORIES


def load_example():
    spec = importlib.util.spec_from_file_location("finetune_stories", ROOT / "examples" / "finetune_stories.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_finetuned_checkpoint_is_compared_with_its_base(tmp_path, one_thread, capsys):
    example = load_example()
    tuned = tmp_path / "stories260K-xsum"
    texts = example.training_summaries(DATA, held_out=40)
    assert 900 <= len(texts) <= 960
    texts = texts[:400]
    stats = example.finetune(STORIES, texts, tuned, steps=120)
    assert stats["loss_last"] < stats["loss_first"] - 0.3
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= {p.name for p in tuned.iterdir()}

    base_run, tuned_run = example.evaluate_both(STORIES, tuned, ["wikitext2", "sst2"], 4, DATA, tmp_path / "runs",
                                                bootstrap_iters=50)  # sklearn's F1 costs ~5 ms a resample
    comparison = compare_runs(base_run, tuned_run, iterations=300)
    with capsys.disabled():
        print(f"\nfine-tune: {stats['steps']} steps in {stats['seconds']:.1f} s, "
              f"loss {stats['loss_first']:.3f} -> {stats['loss_last']:.3f}\n{format_comparison(comparison)}")
    rows = {(r.task, r.metric): r for r in comparison.rows}
    assert set(rows) == {("wikitext2", m) for m in ("word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity")} | {
        ("sst2", "accuracy"), ("sst2", "f1")}

    # direction from the engine's own numbers in results.json, significance from compare
    stored = [read_results(r)["tasks"]["wikitext2"]["metrics"]["bits_per_byte"]["value"] for r in (base_run, tuned_run)]
    assert stored[1] < stored[0]
    bpb = rows[("wikitext2", "bits_per_byte")]
    assert (bpb.baseline, bpb.candidate) == (pytest.approx(stored[0]), pytest.approx(stored[1]))
    assert bpb.verdict == "improved" and bpb.p_value < 0.05 and bpb.ci_high < 0
    assert rows[("sst2", "accuracy")].test == "McNemar exact"

    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs" / "base"), str(tmp_path / "runs" / "finetuned"),
                 "--tasks", "wikitext2", "--iterations", "300"]) == 0
    out = capsys.readouterr().out
    assert "wikitext2  bits_per_byte ↓" in out and "result: no regression" in out
