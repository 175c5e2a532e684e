"""The seed's story, end to end: a sentiment classifier trained here, evaluated on IMDB through `hf-classifier`.

The product began as a `pipeline("sentiment-analysis")` run over IMDB reviews that reported how
often the model said POSITIVE. This script does it properly:

1. train a small DistilBERT-shaped classifier on SST-2 (examples/train_sst2_classifier.py), unless
   --model names one already trained;
2. `evalkit run --adapter hf-classifier --tasks imdb`: each review's score for negative/positive is
   the log-softmax probability of the model's NEGATIVE/POSITIVE label, and the logged predictions
   are compared with the gold labels (accuracy with its closed-form standard error, binary F1 with
   positive as the positive class and a bootstrap standard error);
3. print that table next to the naive number, the share of POSITIVE predictions, computed from the
   same logged predictions.

    python examples/imdb_story.py                                   # train (~5 CPU-minutes), then evaluate
    python examples/imdb_story.py --model results/sst2-classifier   # evaluate a classifier trained before
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def evaluate(model: Path, limit: int | None, data_dir: Path, output: Path, batch_size: str = "auto") -> Path:
    """The same as `evalkit run --adapter hf-classifier --model MODEL --tasks imdb --data-dir DATA --limit N`."""
    from evalkit.engine import RunOptions, evaluate as run

    options = RunOptions(tasks=["imdb"], model=str(model), adapter="hf-classifier", limit=limit, data_dir=str(data_dir),
                         output=str(output), run_id="imdb-classifier", batch_size=batch_size, progress=False)
    run_dir, _ = run(options, log=lambda msg: print(msg, file=sys.stderr))
    return run_dir


def story_table(run_dir: Path) -> tuple[str, dict[str, float]]:
    """The metrics evalkit reports, next to the share of POSITIVE predictions, as a Markdown table."""
    from evalkit.results import read_results, read_samples

    metrics = read_results(run_dir)["tasks"]["imdb"]["metrics"]
    rows = read_samples(run_dir, "imdb")
    n = len(rows)
    share = sum(r["prediction"] == "positive" for r in rows) / n
    gold_share = sum(r["gold"] == "positive" for r in rows) / n
    numbers = {"accuracy": metrics["accuracy"]["value"], "accuracy_stderr": metrics["accuracy"]["stderr"],
               "f1": metrics["f1"]["value"], "f1_stderr": metrics["f1"]["stderr"], "share_positive": share,
               "gold_share_positive": gold_share, "n": n}
    table = "\n".join([
        f"| IMDB test, {n:,} reviews | value | standard error |",
        "|---|---|---|",
        f"| accuracy (prediction = gold label) | {numbers['accuracy']:.4f} | {numbers['accuracy_stderr']:.4f} (closed form) |",
        f"| F1, positive class (sklearn, binary) | {numbers['f1']:.4f} | {numbers['f1_stderr']:.4f} ({metrics['f1']['stderr_method']}) |",
        f"| naive: share of POSITIVE predictions | {share:.4f} | not a score: it never looks at the gold labels |",
        f"| (share of positive gold labels) | {gold_share:.4f} | |",
    ])
    return table, numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a trained classifier folder (default: train one)")
    parser.add_argument("--limit", type=int, default=None,
                        help="evaluate a seeded sample of N reviews (default: all; ../shared/data holds 1,000 of the test split)")
    parser.add_argument("--data-dir", type=Path, default=SHARED / "data")
    parser.add_argument("--output", type=Path, default=ROOT / "results" / "imdb-story")
    args = parser.parse_args()
    model = args.model
    if model is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from train_sst2_classifier import train

        model = args.output / "sst2-classifier"
        print(json.dumps(train(model, data_dir=args.data_dir), indent=2))
    run_dir = evaluate(model, args.limit, args.data_dir, args.output)
    table, _ = story_table(run_dir)
    print(table)


if __name__ == "__main__":
    main()
