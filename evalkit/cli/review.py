"""`evalkit review` (write a rating page) and `evalkit ratings import` (attach exported ratings to runs)."""

from __future__ import annotations

import argparse
import sys


def cmd_review(args: argparse.Namespace) -> int:
    from ..analysis.review import build_review
    from .leaderboard import write_output

    runs = [args.run] + ([args.run_b] if args.run_b else [])
    html, data = build_review(runs, task=args.task, n=args.n, seed=args.seed, rubric=args.rubric)
    write_output(html, args.output)
    page = data["page"]
    for task_name, s in page["strata"].items():
        print(f"{task_name}: {s['sampled']} of {s['documents']} documents, stratified by {s['metric'] or 'nothing (no score)'} "
              f"{s['how']}, seed {page['seed']}", file=sys.stderr)
    print(f"{page['mode']} mode, rubric '{data['rubric']['name']}'; open the file in a browser, rate, export, then: "
          f"evalkit ratings import FILE --into {' --into '.join(runs)}", file=sys.stderr)
    return 0


def cmd_ratings_import(args: argparse.Namespace) -> int:
    from ..analysis.rating_import import import_ratings

    for done in import_ratings(args.files, args.into, rubric=args.rubric, replace=args.replace):
        human = done.human
        replaced = f", {done.replaced} replaced" if done.replaced else ""
        low = f"; LOW agreement: {', '.join(human['low_agreement'])}" if human.get("low_agreement") else ""
        raters = len(human.get("raters") or [])
        print(f"{done.run.path}: {done.added} rating{'s' if done.added != 1 else ''} attached{replaced} ({done.total} in "
              f"ratings.jsonl, {raters} rater{'s' if raters != 1 else ''}){low}")
    return 0


def register(subparsers) -> None:
    review = subparsers.add_parser(
        "review", help="write an HTML page on which people rate outputs (one run, or two runs blind)",
        description="One self-contained HTML file (offline, no request) for human ratings. One run: rate each output "
                    "on the rubric's scales. Two runs: see both outputs blind, in a recorded random order, and pick "
                    "A, B or tie. Ratings are saved in the browser as you go and exported as JSON or CSV for "
                    "`evalkit ratings import`.")
    review.add_argument("run", help="run directory (holds results.json)")
    review.add_argument("run_b", nargs="?", help="a second run directory: pairwise mode")
    review.add_argument("-o", "--output", default="review.html", metavar="FILE", help="the HTML file (default: review.html)")
    review.add_argument("--task", help="the task to review (default: every generation task the runs share)")
    review.add_argument("--n", type=int, default=50, help="documents per task, a stratified sample (default 50)")
    review.add_argument("--seed", type=int, default=1234, help="seed of the sample and of the A/B order (default 1234)")
    review.add_argument("--rubric", help="rubric YAML file or shipped name (default: 'default', or 'default-pairwise' for two runs)")
    review.set_defaults(func=cmd_review)

    ratings = subparsers.add_parser("ratings", help="human ratings: attach exported ratings to runs")
    sub = ratings.add_subparsers(dest="ratings_command", required=True)
    imp = sub.add_parser(
        "import", help="check exported ratings and attach them to runs",
        description="Attach ratings exported from a review page to runs: RUN/ratings.jsonl plus a `human` block in "
                    "results.json (means with document-clustered standard errors, preference win rate with CI and "
                    "sign test, inter-rater agreement). Refuses ratings whose content hash does not match the run's "
                    "samples, duplicates, and values off the rubric's scales.")
    imp.add_argument("files", nargs="+", metavar="FILE", help="ratings exported by the review page (.json or .csv)")
    imp.add_argument("--into", action="append", required=True, metavar="RUN",
                     help="run directory to attach the ratings to; repeat it for both runs of a pairwise review")
    imp.add_argument("--rubric", help="the rubric the ratings were made with (default: the shipped rubric of their mode)")
    imp.add_argument("--replace", action="store_true",
                     help="replace a run's earlier ratings by the same rater of the same outputs instead of refusing")
    imp.set_defaults(func=cmd_ratings_import)
