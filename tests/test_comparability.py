"""What compare refuses or warns about before testing anything (issue 9 items 2, 13 and 14): documents whose
content differs, data hashes, tokenizers, and responses that all came from the cache."""

from __future__ import annotations

import json
import random

import numpy as np

from evalkit.analysis.compare import compare_runs
from evalkit.cli import main
from evalkit.engine import RunOptions, evaluate, prepare_task, task_config
from evalkit.provenance import doc_hash
from evalkit.results import read_results
from evalkit.tasks import resolve_task

from .conftest import DATA, STORIES
from .fake_runs import sst2_records, sst2_spec, write_run
from .resultfiles import edit_samples, read_jsonl


def _shuffled_sst2(folder, seed: int = 90):
    """../shared/data/sst2/dev.tsv with its rows shuffled (header kept): the same file, another order."""
    lines = (DATA / "sst2" / "dev.tsv").read_text(encoding="utf-8").split("\n")
    body = [line for line in lines[1:] if line]
    random.Random(seed).shuffle(body)
    (folder / "sst2").mkdir(parents=True)
    (folder / "sst2" / "dev.tsv").write_text("\n".join([lines[0], *body]) + "\n", encoding="utf-8")
    return folder


def test_task_hash_covers_the_data_and_keeps_a_spec_hash(tmp_path):
    shuffled = _shuffled_sst2(tmp_path / "data")
    spec = resolve_task("sst2")
    def config(data_dir):  # the task's entry in results.json's config (a plain run: no model identity needed)
        return task_config(prepare_task(spec, RunOptions(tasks=["sst2"], limit=200, data_dir=str(data_dir))), {})

    original, moved = config(DATA), config(shuffled)
    assert original["spec_hash"] == moved["spec_hash"] == spec.config_hash
    assert original["hash"] != moved["hash"] and original["data"]["sha256"] != moved["data"]["sha256"]
    assert original["data"]["rows"] == moved["data"]["rows"] == 872
    assert original["data"]["path"] == "sst2/dev.tsv" and original["fewshot_pool"] is None
    assert config(DATA) == original


def test_shuffled_sst2_rows_106_of_200_golds_differ_and_compare_refuses(tmp_path, stories_adapter, one_thread, capsys):
    """Issue 9 item 2: the same sst2 file with its rows shuffled had the same hash; compare paired different
    sentences (106 of 200 golds differ) and gave an unchanged model a CI of +-0.095."""
    shuffled = _shuffled_sst2(tmp_path / "data")
    runs = []
    for name, data_dir in (("original", DATA), ("shuffled", shuffled)):
        options = RunOptions(tasks=["sst2"], model=str(STORIES), limit=200, data_dir=str(data_dir), progress=False,
                             output=str(tmp_path / name), batch_size=32, device="cpu", bootstrap_iters=0)
        runs.append(evaluate(options, adapter=stories_adapter, log=lambda _m: None)[0])
    base, cand = ([json.loads(line) for line in (run / "sst2.samples.jsonl").read_text().splitlines()] for run in runs)
    assert [r["doc_id"] for r in base] == [r["doc_id"] for r in cand]
    assert sum(b["gold"] != c["gold"] for b, c in zip(base, cand)) == 106
    assert all(r["doc_hash"] == doc_hash(r) for r in base + cand)
    differ = sum(b["doc_hash"] != c["doc_hash"] for b, c in zip(base, cand))
    hashes = [read_results(run)["config"]["tasks"]["sst2"] for run in runs]
    assert hashes[0]["spec_hash"] == hashes[1]["spec_hash"] and hashes[0]["hash"] != hashes[1]["hash"]
    assert main(["compare", str(runs[0]), str(runs[1]), "--iterations", "200"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{differ} of 200 shared documents differ in content" in err
    assert "different inputs: data sst2/dev.tsv sha256" in err
    # regress refuses too, before it loads the model
    assert main(["regress", "--baseline", str(runs[0]), "--model", str(STORIES), "--data-dir", str(shuffled),
                 "--output", str(tmp_path / "regress"), "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the candidate would read different inputs than the baseline: data sst2/dev.tsv" in err and "\n" not in err
    assert not (tmp_path / "regress").exists()


def test_an_edited_samples_file_is_refused_naming_doc_ids(tmp_path, capsys):
    correct = np.random.default_rng(1).random(50) < 0.7
    base = write_run(tmp_path, "base", {"sst2": (sst2_spec(), sst2_records(correct))})
    cand = write_run(tmp_path, "cand", {"sst2": (sst2_spec(), sst2_records(correct))})
    flip = {"negative": "positive", "positive": "negative"}
    edit_samples(cand / "sst2.samples.jsonl", lambda i, row: row.update(gold=flip[row["gold"]]) if i in (3, 17) else None)
    assert main(["compare", str(base), str(cand)]) == 2
    err = capsys.readouterr().err.strip()
    assert "2 of 50 shared documents differ in content" in err and "doc_ids 3, 17" in err
    assert "a samples file was edited" in err and "\n" not in err


def test_other_data_with_the_same_shared_documents_is_compared_with_a_note(tmp_path):
    correct = np.random.default_rng(1).random(50) < 0.7
    base = write_run(tmp_path, "base", {"sst2": (sst2_spec(), sst2_records(correct))})
    cand = write_run(tmp_path, "cand", {"sst2": (sst2_spec(), sst2_records(correct))})
    for run, sha in ((base, "a" * 64), (cand, "b" * 64)):
        results = json.loads((run / "results.json").read_text())
        config = results["config"]["tasks"]["sst2"]
        config.update(spec_hash=config["hash"], hash=sha[:16], data={"source": "local", "path": "sst2/dev.tsv", "sha256": sha})
        (run / "results.json").write_text(json.dumps(results))
    comparison = compare_runs(base, cand, iterations=100)
    assert comparison.notes == ["sst2: the runs read different inputs: data sst2/dev.tsv sha256 aaaaaaaaaaaa vs "
                                "sst2/dev.tsv sha256 bbbbbbbbbbbb, but the 50 shared documents hold the same content; compared"]


def _wiki_runs(tmp_path, tokenizers: tuple[str | None, str | None], token_growth: float = 1.3):
    """The issue's case: a candidate 1% worse per byte whose tokenizer makes 30% more tokens."""
    wiki = resolve_task("wikitext2")
    rng = np.random.default_rng(3)
    words = rng.integers(50, 300, 30)
    base = [{"doc_id": i, "loglikelihood": float(-5 * w * rng.uniform(0.7, 1.1)), "words": int(w), "bytes": int(5 * w),
             "tokens": int(1.2 * w)} for i, w in enumerate(words)]
    cand = [{**r, "loglikelihood": r["loglikelihood"] * 1.01, "tokens": int(r["tokens"] * token_growth)} for r in base]
    runs = []
    for name, records, sha in (("base", base, tokenizers[0]), ("cand", cand, tokenizers[1])):
        run = write_run(tmp_path, name, {"wikitext2": (wiki, records)})
        results = json.loads((run / "results.json").read_text())
        if sha:
            results["model"]["tokenizer_sha256"] = sha
        (run / "results.json").write_text(json.dumps(results))
        runs.append(run)
    return runs


def test_token_perplexity_is_left_out_when_the_runs_count_tokens_differently(tmp_path, capsys):
    """Issue 9 item 13: a 1% worse model with 30% more tokens was reported as "improved" on token_perplexity."""
    base, cand = _wiki_runs(tmp_path, ("a" * 64, "b" * 64))
    comparison = compare_runs(base, cand, iterations=200)
    assert [r.metric for r in comparison.rows] == ["word_perplexity", "byte_perplexity", "bits_per_byte"]
    assert all(r.verdict == "regressed" for r in comparison.rows)
    assert comparison.notes == ["wikitext2: token_perplexity left out: the runs cut the same documents into different "
                                "numbers of tokens (tokenizer sha256 aaaaaaaaaaaa vs bbbbbbbbbbbb); word/byte perplexity "
                                "and bits per byte do not depend on the tokenizer"]
    assert main(["compare", str(base), str(cand), "--metrics", "token_perplexity"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot compare wikitext2/token_perplexity: the runs cut the same documents into different numbers" in err
    assert "\n" not in err
    unknown = compare_runs(*_wiki_runs(tmp_path / "unknown", (None, None)), iterations=200)  # counts decide
    assert "token_perplexity" not in [r.metric for r in unknown.rows]


def test_a_tokenizer_saved_again_with_the_same_counts_is_compared_with_a_note(tmp_path):
    """save_pretrained rewrites the tokenizer files (another hash) without changing a single token."""
    comparison = compare_runs(*_wiki_runs(tmp_path, ("a" * 64, "b" * 64), token_growth=1.0), iterations=200)
    token = [r for r in comparison.rows if r.metric == "token_perplexity"]
    assert token and token[0].verdict == "regressed"  # 1% worse, the same tokens: worse per token too
    assert comparison.notes == ["wikitext2: the tokenizer files differ (tokenizer sha256 aaaaaaaaaaaa vs bbbbbbbbbbbb), "
                                "but every document has the same token count in both runs; token_perplexity compared"]
    same = compare_runs(*_wiki_runs(tmp_path / "same", ("a" * 64, "a" * 64), token_growth=1.0), iterations=200)
    assert "token_perplexity" in [r.metric for r in same.rows] and not same.notes


def test_unknown_tokenizers_are_compared_with_a_warning(tmp_path):
    comparison = compare_runs(*_wiki_runs(tmp_path, ("a" * 64, None), token_growth=1.0), iterations=200)
    assert "token_perplexity" in [r.metric for r in comparison.rows]
    assert comparison.notes == ["warning: token_perplexity compared although the candidate run records no tokenizer "
                                "hash; it is comparable only if both models use the same tokenizer"]


def test_a_run_answered_entirely_from_the_cache_gets_a_note(tmp_path, stories_adapter, one_thread, capsys):
    """Issue 9 item 14: a batch-size comparison made with the cache on compared nothing, and said nothing."""
    runs = []
    for batch_size in (16, 4):
        options = RunOptions(tasks=["sst2"], model=str(STORIES), limit=20, data_dir=str(DATA), progress=False,
                             output=str(tmp_path / f"bs{batch_size}"), batch_size=batch_size, device="cpu",
                             cache_dir=str(tmp_path / "cache"), bootstrap_iters=0)
        runs.append(evaluate(options, adapter=stories_adapter, log=lambda _m: None)[0])
    assert read_results(runs[1])["tasks"]["sst2"]["cache"] == {"hits": 40, "misses": 0, "computed": 0}
    assert main(["compare", str(runs[0]), str(runs[1]), "--iterations", "100"]) == 0
    out = capsys.readouterr().out
    assert ("note: sst2: the candidate run took all 40 responses from the response cache, none computed; if the runs "
            "differ only in run settings (batch size, device)") in out and "--no-cache" in out
    assert main(["compare", str(runs[0]), str(runs[0]), "--iterations", "100"]) == 0
    assert "response cache" not in capsys.readouterr().out  # the baseline computed its answers


def test_samples_files_log_a_content_hash_per_document(stories_run):
    run_dir, results = stories_run
    for task in results["tasks"]:
        rows = read_jsonl(run_dir / f"{task}.samples.jsonl")
        assert all(len(r["doc_hash"]) == 16 and r["doc_hash"] == doc_hash(r) for r in rows)
        assert len({r["doc_hash"] for r in rows}) == len(rows)
        assert results["config"]["tasks"][task]["data"]["sha256"]
