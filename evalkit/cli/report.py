"""`evalkit report`: one self-contained HTML file (leaderboard, charts, run metadata, sample browser)."""

from __future__ import annotations

import argparse


def cmd_report(args: argparse.Namespace) -> int:
    from ..errors import EvalkitError
    from .leaderboard import write_output
    from ..analysis.report import build_report

    if args.max_chars is not None and args.max_chars < 0:
        raise EvalkitError(f"--max-chars must be 0 (no limit) or positive, got {args.max_chars}")
    options = {} if args.max_chars is None else {"max_chars": args.max_chars}
    write_output(build_report(args.results, all_runs=args.all, **options), args.output)
    return 0


def register(subparsers) -> None:
    from .leaderboard import add_results_arguments

    p = subparsers.add_parser(
        "report", help="write a self-contained HTML report (works offline)",
        description="One HTML file with no external resources: the leaderboard with 95% confidence intervals, "
                    "a bar chart per task metric, run metadata, and a searchable sample browser per task.")
    add_results_arguments(p)
    p.add_argument("-o", "--output", default="report.html", metavar="FILE", help="the HTML file to write (default: report.html)")
    p.add_argument("--max-chars", type=int, default=None, metavar="N",
                   help="cut prompts, predictions and references longer than N characters (default 4000; 0: keep all)")
    p.set_defaults(func=cmd_report)
