"""evalkit: a fast, reproducible evaluation harness for language models."""

__version__ = "0.1.0"

from .errors import EvalkitError  # noqa: E402

__all__ = ["EvalkitError", "__version__"]
