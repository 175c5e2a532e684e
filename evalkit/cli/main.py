"""The `evalkit` command: run, tasks, validate (and the table/comparison commands)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

from ..errors import EvalkitError


def _model_args(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs as strings; the adapter's declared table converts and checks them (adapters/model_args.py)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise EvalkitError(f"--model-arg takes KEY=VALUE, got '{pair}'")
        out[key.strip().replace("-", "_")] = value
    return out


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text is in --help), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _limit(value: str) -> int | None:
    if value in ("", "none", "None"):
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got '{value}'") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got '{value}'")
    return n


def cmd_run(args: argparse.Namespace) -> int:
    from ..cachedir import cache_root
    from ..engine import RunOptions, evaluate
    from ..errors import InvalidRunError
    from ..preflight import check_bootstrap_iters
    from ..summary import summary_table
    from ..terminal_text import printable

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise EvalkitError("--tasks is empty; pass task names from `evalkit tasks`, e.g. --tasks imdb,sst2")
    check_bootstrap_iters(args.bootstrap_iters, minimum=1)
    options = RunOptions(
        tasks=tasks, model=args.model or None, adapter=args.adapter, model_args=_model_args(args.model_arg),
        limit=args.limit, limit_mode=args.limit_mode, fewshot=args.fewshot, seed=args.seed, batch_size=args.batch_size, device=args.device, dtype=args.dtype,
        data_dir=args.data_dir or None, output=args.output, bootstrap_iters=args.bootstrap_iters,
        trust_remote_code=args.trust_remote_code, progress=not args.no_progress,
        cache_dir=None if args.no_cache else (args.cache_dir or str(cache_root())),
        apply_chat_template=args.apply_chat_template, system_prompt=args.system_prompt,
        fewshot_as_multiturn=args.fewshot_as_multiturn,
    )
    from .. import distributed

    try:
        run_dir, results = evaluate(options, log=lambda msg: print(printable(msg), file=sys.stderr))
    except InvalidRunError as err:  # the files are written: show them, then the one error line (exit 3)
        if err.results is not None and distributed.is_main():
            print(printable(summary_table(err.results)))
            print(f"\nresults: {err.run_dir / 'results.json'}")
        raise
    if not distributed.is_main():  # under torchrun rank 0 reports
        return 0
    print(printable(summary_table(results)))
    cache = results.get("run", {}).get("cache")
    if cache:
        print(f"cache: {cache['hits']} requests answered from {cache['path']}, {cache['computed']} computed by the model",
              file=sys.stderr)
    print(f"\nresults: {run_dir / 'results.json'}")
    return 2 if results.get("refused_tasks") else 0  # each refused task's line was printed when it stopped


def cmd_tasks(args: argparse.Namespace) -> int:
    from ..tasks import available_tasks, load_task_file

    for name, path in sorted(available_tasks().items()):
        try:
            spec = load_task_file(path)
            metrics = ", ".join(m.label for m in spec.metrics)
            print(f"{name:<14} {spec.kind:<16} {metrics:<28} {spec.description}")
        except EvalkitError as err:
            print(f"{name:<14} INVALID: {err}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from ..tasks import load_task_file

    for path in args.files:
        spec = load_task_file(path)
        print(f"{path}: ok (task '{spec.task}', kind {spec.kind}, config hash {spec.config_hash})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="evalkit", description="Evaluate language models on YAML-defined tasks.",
                            epilog="exit codes: 0 done; 1 compare/regress found a regression; 2 a user error, one line "
                                   "on stderr (nothing was run); 3 the run wrote its files but they are invalid "
                                   "(the model returned NaN or inf log-likelihoods)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="evaluate a model on tasks and write results")
    run.add_argument("--model", default=os.environ.get("EVALKIT_MODEL", ""),
                     help="hub id, local folder or .gguf file (default: the bundled SmolLM2-135M-Instruct)")
    run.add_argument("--adapter", default="hf-causal",
                     help="model adapter: hf-causal (default), hf-seq2seq, hf-classifier, hf-token-classifier, "
                          "vllm (make install-vllm), openai (a served model: --model-arg base_url=...), or one "
                          "registered by a package")
    run.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                     help="adapter argument, repeatable, typed and range-checked before the model loads "
                          "(hf-causal: max_length=N, revision=REV, kv_cache=auto|static|dynamic; classifiers: "
                          "label_map=POSITIVE:positive,NEGATIVE:negative; vllm and openai: see the README)")
    run.add_argument("--tasks", required=True, help="comma-separated task names or YAML paths")
    run.add_argument("--limit", type=_limit, default=None, help="evaluate a seeded random sample of N documents per task")
    run.add_argument("--limit-mode", choices=("random", "first"), default="random",
                     help="random: a seeded sample, kept in document order (default); first: the first N documents, "
                          "as lm-eval's --limit, for like-for-like comparisons with it")
    run.add_argument("--fewshot", type=int, default=None, metavar="K",
                     help="few-shot examples per prompt (0 or more), overriding each task's fewshot.k; drawn from the "
                          "task's few-shot split (fewshot.local with --data-dir, fewshot.split from the hub), from "
                          "the evaluation split only where the task sets fewshot.from_eval_split")
    run.add_argument("--seed", type=int, default=1234,
                     help="seed for --limit sampling, few-shot and bootstrap, 0..2**32-1 (default 1234)")
    run.add_argument("--batch-size", default="auto", help="integer or 'auto' (largest that fits, halves on OOM)")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    run.add_argument("--dtype", default="auto", help="auto (the checkpoint's own dtype, as lm-eval; a GGUF is de-quantised to float32), float32, bfloat16, float16")
    run.add_argument("--data-dir", default=os.environ.get("EVALKIT_DATA_DIR", ""),
                     help="read task data from local files laid out like ../shared/data instead of the hub")
    run.add_argument("--output", default="results", help="results directory (default: results)")
    run.add_argument("--bootstrap-iters", type=int, default=1000,
                     help="bootstrap resamples for standard errors, 1..1,000,000 (default 1000)")
    run.add_argument("--apply-chat-template", action="store_true",
                     help="render each prompt through the model's chat template, generation prompt added (lm-eval's "
                          "conventions: few-shot examples in one user turn, no space before a multiple-choice answer)")
    run.add_argument("--system-prompt", default=None, metavar="TEXT", help="with --apply-chat-template: a system turn first")
    run.add_argument("--fewshot-as-multiturn", action="store_true",
                     help="with --apply-chat-template: each few-shot example as its own user/assistant turns")
    run.add_argument("--trust-remote-code", action="store_true",
                     help="allow model repositories, and `evaluate` metric modules named by task files, to run their own code")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--cache-dir", default="", metavar="DIR",
                     help="response cache folder (default: $EVALKIT_CACHE_DIR or ~/.cache/evalkit); a rerun or a "
                          "resumed run computes only the requests that are not cached")
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    run.set_defaults(func=cmd_run)

    tasks = sub.add_parser("tasks", help="list the available tasks")
    tasks.set_defaults(func=cmd_tasks)

    validate = sub.add_parser("validate", help="check task YAML files")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=cmd_validate)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[Any], None]]:
    """Subcommands that live in their own modules (leaderboard, report, compare, ...)."""
    from importlib import import_module

    found = []
    for module in ("leaderboard", "report", "compare", "metrics", "review"):
        try:
            found.append(import_module(f"{__package__}.{module}").register)
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}.{module}":
                raise
    return found


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except EvalkitError as err:
        if not getattr(err, "reported", False):  # a failing torchrun rank says it as soon as it knows
            from ..terminal_text import printable

            print(f"evalkit: error: {printable(str(err))}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:  # `evalkit compare ... | head`: the reader left before the output ended
        _drop_stdout()
        print("evalkit: error: the output pipe closed before all output was written (e.g. `| head`); "
              "write to a file (-o) or read it all", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evalkit: interrupted", file=sys.stderr)
        return 130


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (tests capture it)
        pass


if __name__ == "__main__":
    sys.exit(main())
