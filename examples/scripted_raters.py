"""Exercise the human-review pipeline end to end with two *scripted* raters (not people).

    python examples/scripted_raters.py RUN_A RUN_B [--out DIR] [--n 30] [--seed 1234]

1. `evalkit review RUN_A RUN_B` builds the pairwise page (blind, random sides) and its items;
2. two raters, each a fixed rule, rate every item and write the page's JSON export format:
   - "rouge-rater" prefers the output with the higher ROUGE-L F1 against the reference summary
     (rouge-score, stemming, 0-100), tie when the two are within 1 point;
   - "overlap-rater" prefers the output whose words come from the source article more often (share of
     the output's lower-cased word tokens found in the article; a crude faithfulness proxy), tie within
     0.05, and calls an empty output the loser;
3. `evalkit ratings import` attaches both files to both runs (the real import: hashes, duplicates and
   scales are checked), then `evalkit leaderboard` shows the human column.

These raters are scripts: they exercise the page's data, the import and the statistics. They say nothing
about what people think of the outputs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from evalkit.analysis.ratings import export_document, make_rating
from evalkit.analysis.review import build_review
from evalkit.results import read_samples

WORD = re.compile(r"[a-z0-9']+")


def rouge_rule(scorer, reference: str):
    def pick(a: str, b: str) -> str:
        ra, rb = (100 * scorer.score(reference, text)["rougeL"].fmeasure for text in (a, b))
        return "tie" if abs(ra - rb) <= 1.0 else ("A" if ra > rb else "B")
    return pick


def overlap_rule(source: str):
    vocabulary = set(WORD.findall(source.lower()))

    def share(text: str) -> float:
        words = WORD.findall(text.lower())
        return sum(w in vocabulary for w in words) / len(words) if words else -1.0

    def pick(a: str, b: str) -> str:
        sa, sb = share(a), share(b)
        return "tie" if abs(sa - sb) <= 0.05 else ("A" if sa > sb else "B")
    return pick


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--out", default="scripted-review", help="folder for review.html and the two exports")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    from rouge_score import rouge_scorer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    html, page = build_review([args.run_a, args.run_b], task="xsum", n=args.n, seed=args.seed)
    (out / "review.html").write_text(html, encoding="utf-8")
    references = {str(r["doc_id"]): r["references"][0] for r in read_samples(args.run_a, "xsum")}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    files = []
    for rater in ("rouge-rater", "overlap-rater"):
        ratings = []
        for item in page["items"]:
            a, b = (o["text"] for o in item["outputs"])
            rule = (rouge_rule(scorer, references[str(item["doc_id"])]) if rater == "rouge-rater"
                    else overlap_rule(item["source"]))
            ratings.append(make_rating(page, item, rater, preference=rule(a, b)))
        path = out / f"ratings-{rater}.json"
        path.write_text(json.dumps(export_document(page, rater, ratings), indent=1), encoding="utf-8")
        files.append(str(path))
        picks = [r["preferred_run"] or "tie" for r in ratings]
        print(f"{rater}: " + ", ".join(f"{picks.count(k)} {k}" for k in dict.fromkeys(sorted(picks))), file=sys.stderr)
    evalkit = [sys.executable, "-m", "evalkit"]
    subprocess.run([*evalkit, "ratings", "import", *files, "--into", args.run_a, "--into", args.run_b], check=True)
    results = str(Path(args.run_a).resolve().parent)
    subprocess.run([*evalkit, "leaderboard", results, "--tasks", "xsum", "--metrics", "rougeL,human:preference",
                    "--format", "md"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
