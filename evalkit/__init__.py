"""evalkit: a fast, reproducible evaluation harness for language models."""

__version__ = "0.1.0"

from .errors import EvalkitError  # noqa: E402

__all__ = ["EvalkitError", "__version__", "leaderboard"]


def __getattr__(name: str):
    # Lazy, so that `import evalkit` (and the CLI) does not pay for pandas. `evalkit.leaderboard` is the
    # leaderboard module, which is callable: evalkit.leaderboard(path) -> tidy DataFrame.
    if name == "leaderboard":
        from importlib import import_module

        return import_module(f"{__name__}.leaderboard")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
