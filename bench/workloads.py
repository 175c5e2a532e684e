"""The three workloads, their documents, and lm-eval task files that read the same documents.

evalkit picks the documents (a seeded sample, `--limit`); the same documents are written to a
JSON-lines file that a local lm-eval task reads, with evalkit's prompt, choices and stop sequences
(lm-eval's own tasks load from the hub). Perplexity keeps lm-eval's own wikitext processing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

SEED = 1234


@dataclass(frozen=True)
class Workload:
    name: str  # evalkit task name
    kind: str  # perplexity | multiple_choice | generate
    score: str  # evalkit metric shown in the table
    lm_eval_score: str  # lm-eval result key, or '' when the bench computes it from samples


WORKLOADS = {
    "wikitext2": Workload("wikitext2", "perplexity", "word_perplexity", "word_perplexity,none"),
    "sst2": Workload("sst2", "multiple_choice", "accuracy", "acc,none"),
    "xsum": Workload("xsum", "generate", "rouge1", ""),
}


def selected_docs(task: str, data_dir: str, limit: int) -> list[dict]:
    from evalkit.data import load_documents, select_documents
    from evalkit.tasks import resolve_task

    return select_documents(load_documents(resolve_task(task), data_dir), limit, SEED)


def write_lm_eval_task(workload: Workload, docs: list[dict], folder: Path) -> str:
    """Write a local lm-eval task for these documents into `folder`; return its task name."""
    import lm_eval

    from evalkit.tasks import resolve_task

    folder.mkdir(parents=True, exist_ok=True)
    spec = resolve_task(workload.name)
    name = f"bench_{workload.name}"
    data = folder / f"{name}.jsonl"
    if workload.kind == "perplexity":
        rows = [{"page": d["page"]} for d in docs]
        src = Path(lm_eval.__file__).parent / "tasks" / "wikitext"
        shutil.copy(src / "preprocess_wikitext.py", folder)
        text = (src / "wikitext.yaml").read_text()
        text = text.replace("task: wikitext", f"task: {name}")
        text = text.replace("dataset_path: EleutherAI/wikitext_document_level", "dataset_path: json")
        text = text.replace("dataset_name: wikitext-2-raw-v1",
                            f"dataset_name: null\ndataset_kwargs:\n  data_files:\n    test: {data}")
        text = text.replace("training_split: train\n", "").replace("validation_split: validation\n", "")
        (folder / f"{name}.yaml").write_text(text)
    elif workload.kind == "multiple_choice":
        rows = [{"sentence": d["sentence"], "label": int(d["label"])} for d in docs]
        config = {"output_type": "multiple_choice", "doc_to_text": spec.doc_to_text, "doc_to_target": "label",
                  "doc_to_choice": list(spec.choices), "target_delimiter": spec.target_delimiter,
                  "metric_list": [{"metric": "acc"}]}
        _write_json_task(folder, name, data, config)
    else:
        rows = [{"document": d["document"], "summary": d["summary"]} for d in docs]
        gen = spec.generation
        config = {"output_type": "generate_until", "doc_to_text": spec.doc_to_text, "doc_to_target": "{{summary}}",
                  "generation_kwargs": {"until": list(gen.until), "max_gen_toks": gen.max_new_tokens, "do_sample": False},
                  "metric_list": [{"metric": "bleu"}]}
        _write_json_task(folder, name, data, config)
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return name


def _write_json_task(folder: Path, name: str, data: Path, config: dict) -> None:
    task = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", **config}
    (folder / f"{name}.yaml").write_text(json.dumps(task, indent=1))


def rouge1(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-1 F-measure (0-100, stemmed), the same scorer for every side."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    scores = [scorer.score(ref, pred)["rouge1"].fmeasure for pred, ref in zip(predictions, references)]
    return 100 * sum(scores) / max(1, len(scores))
