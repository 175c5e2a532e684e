"""`evalkit leaderboard`: one row per model across the runs in a results directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("table", "csv", "md", "html")
SUFFIX_FORMATS = {".csv": "csv", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".txt": "table"}


def names(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when not given)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] or None


def write_output(text: str, output: str | None) -> None:
    """Print to stdout (control characters from model names escaped), or write the file and say so on stderr."""
    if not output:
        from ..terminal_text import printable

        sys.stdout.write(printable(text))
        return
    from ..errors import EvalkitError

    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise EvalkitError(f"cannot write {output}: {err.strerror or err}") from None
    print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..analysis.leaderboard import build_board, leaderboard, select

    from_suffix = SUFFIX_FORMATS.get(Path(args.output).suffix.lower()) if args.output else None
    fmt = args.format or from_suffix or "table"
    df = select(leaderboard(args.results), names(args.tasks), names(args.metrics))
    board = build_board(df, sort=args.sort, all_runs=args.all)
    write_output(board.render(fmt), args.output)
    return 0


def add_results_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `leaderboard` and `report` share: where the runs are, and whether to keep every run."""
    parser.add_argument("results", nargs="?", default="results",
                        help="results directory or one run directory (default: results)")
    parser.add_argument("--all", action="store_true",
                        help="one row per run instead of one run per model and task (chosen like for like)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "leaderboard", help="one table of models x task metrics from a results directory",
        description="One row per model; for each task the run chosen like for like (the setup - task hash, dtype, "
                    "limit - most models share, then more documents, then the latest; --all keeps every run), values as "
                    "mean ± stderr, '—' for a task a model has not run, and a win-rate column explained under the table.")
    add_results_arguments(p)
    p.add_argument("--tasks", help="comma-separated tasks to show (default: all)")
    p.add_argument("--metrics", help="comma-separated metric names to show (default: all)")
    p.add_argument("--sort", metavar="METRIC", help="sort by TASK/METRIC (or METRIC when unique); default: win rate")
    p.add_argument("--format", choices=FORMATS, help="output format (default: table, or from the -o suffix)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_leaderboard)
