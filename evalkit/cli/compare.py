"""The `evalkit compare` and `evalkit regress` subcommands (registered by cli.py).

Exit codes: 0 no regression beyond tolerance, 1 a metric is confidently worse than its tolerance (or
cannot be tested, without --allow-untestable), 2 the runs cannot be compared (or any other user error).
"""

from __future__ import annotations

import argparse
import sys

from ..analysis.compare import ADJUSTMENTS, FORMATS, compare_runs, format_comparison, parse_tolerance_args
from ..terminal_text import printable

EXIT_CODES = ("exit codes: 0 no regression beyond tolerance; 1 a metric is confidently worse than its tolerance "
              "(adjusted p < alpha), or not testable (non-finite values) without --allow-untestable; 2 not comparable "
              "(different task configs, documents whose content differs, no shared documents)")
GATE = ("Every row is tested on the documents both runs share (matched by doc_id, checked by content); p-values "
        "are adjusted over the rows (--adjust, Holm by default), and a row fails when the candidate is worse than "
        "its tolerance with adjusted p < alpha (one-sided at alpha/2 against the tolerance: without adjustment, "
        "the whole 95% CI lies beyond it). ")


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _add_test_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Options shared by compare and regress; regress leaves them None so that its spec file decides."""
    parser.add_argument("--alpha", type=float, default=0.05 if defaults else None,
                        help="significance level (default 0.05)")
    parser.add_argument("--tolerance", action="append", default=[], metavar="METRIC=DELTA",
                        help="allowed regression of a metric (or TASK/METRIC), absolute or relative like 2%%; repeatable (default 0)")
    parser.add_argument("--adjust", choices=ADJUSTMENTS, default="holm" if defaults else None,
                        help="adjust p-values for the number of rows: holm (family-wise error, default), "
                             "bh (Benjamini-Hochberg false discovery rate) or none")
    parser.add_argument("--allow-untestable", action="store_true", default=None,
                        help="let rows that cannot be tested (non-finite values, e.g. a model that output NaN) pass "
                             "the gate instead of failing it")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    parser.add_argument("--seed", type=int, default=1234 if defaults else None, help="paired-bootstrap seed (default 1234)")
    parser.add_argument("--iterations", type=int, default=1000 if defaults else None,
                        help="paired-bootstrap resamples (default 1000)")


def cmd_compare(args: argparse.Namespace) -> int:
    comparison = compare_runs(
        args.baseline, args.candidate, alpha=args.alpha, tolerances=parse_tolerance_args(args.tolerance),
        tasks=_names(args.tasks) if args.tasks else None, metrics=_names(args.metrics) if args.metrics else None,
        iterations=args.iterations, seed=args.seed, adjust=args.adjust, allow_untestable=bool(args.allow_untestable),
        across_prompt_formats=args.across_prompt_formats,
    )
    print(printable(format_comparison(comparison, args.format)))
    return comparison.exit_code


def cmd_regress(args: argparse.Namespace) -> int:
    from ..errors import EvalkitError
    from ..analysis.regress import RegressionSpec, load_regression_spec, run_regression

    if bool(args.spec) == bool(args.baseline):
        raise EvalkitError("regress takes a spec file or --baseline RUN_DIR (exactly one of them)")
    spec = load_regression_spec(args.spec) if args.spec else RegressionSpec(baseline=args.baseline)
    spec.tolerances.update(parse_tolerance_args(args.tolerance))
    for name in ("alpha", "seed", "iterations", "adjust", "allow_untestable"):
        if getattr(args, name) is not None:
            setattr(spec, name, getattr(args, name))
    if args.data_dir:
        spec.data_dir = args.data_dir
    comparison, run_dir = run_regression(
        spec, args.model, adapter_name=args.adapter, batch_size=args.batch_size, device=args.device, dtype=args.dtype,
        output=args.output, progress=not args.no_progress, log=lambda msg: print(msg, file=sys.stderr),
    )
    print(f"candidate run: {run_dir}", file=sys.stderr)
    print(printable(format_comparison(comparison, args.format)))
    return comparison.exit_code


def register(subparsers) -> None:
    compare = subparsers.add_parser(
        "compare", help="paired significance test of a candidate run against a baseline run",
        description="Compare two runs on the documents they share: McNemar for accuracy, a paired bootstrap "
                    "for corpus metrics; attached human ratings (evalkit ratings import): Wilcoxon signed-rank for "
                    "rating scales, the sign test for preferences. " + GATE + EXIT_CODES)
    compare.add_argument("baseline", help="baseline run directory (holds results.json)")
    compare.add_argument("candidate", help="candidate run directory")
    compare.add_argument("--tasks", default="", help="comma-separated tasks to compare (default: all shared)")
    compare.add_argument("--metrics", default="", help="comma-separated metrics to compare (default: all)")
    compare.add_argument("--across-prompt-formats", action="store_true",
                         help="pair a --apply-chat-template run with a plain run of the same task config (refused otherwise)")
    _add_test_options(compare, defaults=True)
    compare.set_defaults(func=cmd_compare)

    regress = subparsers.add_parser(
        "regress", help="evaluate a candidate model like a baseline run, then compare",
        description="Evaluate --model with the baseline run's task configs, limit, seed and data, then compare "
                    "it with the baseline. The baseline comes from a regression spec (YAML) or --baseline. " + GATE + EXIT_CODES)
    regress.add_argument("spec", nargs="?", help="regression spec YAML (baseline, tasks, metrics, tolerances)")
    regress.add_argument("--baseline", default="", help="baseline run directory, instead of a spec")
    regress.add_argument("--model", default="", help="the candidate: hub id, local folder or .gguf file")
    regress.add_argument("--adapter", default="hf-causal", help="model adapter (default: hf-causal)")
    regress.add_argument("--batch-size", default="auto", help="integer or 'auto'")
    regress.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    regress.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    regress.add_argument("--data-dir", default="",
                         help="task data directory; needed when the baseline read local data (never taken from its results)")
    regress.add_argument("--output", default="results", help="where the candidate's run is written (default: results)")
    regress.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_test_options(regress, defaults=False)
    regress.set_defaults(func=cmd_regress)
