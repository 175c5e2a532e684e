"""`evalkit metrics`: the metric families a task file can name (built-in and plugins), their values and options."""

from __future__ import annotations

import argparse

from ..errors import EvalkitError


def cmd_metrics(args: argparse.Namespace) -> int:
    from ..metrics import EVALUATE, GROUP, metric_class, metric_targets
    from ..metrics.options import describe

    for name, target in metric_targets().items():
        try:
            cls = metric_class(name)
        except EvalkitError as err:
            print(f"{name:<18} BROKEN: {err}")
            continue
        values = "the module's numeric values" if name == EVALUATE else ", ".join(cls.names)
        options = "passed to the module's compute()" if cls.OPTIONS is None else (describe(cls.OPTIONS) or "none")
        origin = "" if target.startswith("evalkit.") else f"  [plugin {target}]"
        print(f"{name:<18} {'/'.join(cls.kinds):<26} values: {values}; options: {options}{origin}")
    print(f"\nthird-party metrics register in the entry-point group '{GROUP}'; "
          "an evaluate module is named in a task file as {evaluate: PATH_OR_ID}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("metrics", help="list the metric families, their values and options",
                              description="Every metric a task file can name: the built-in families and those "
                                          "registered by installed packages, with the task kinds, reported values "
                                          "and accepted options of each.")
    p.set_defaults(func=cmd_metrics)
