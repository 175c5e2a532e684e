"""The `evalkit` command. Each module only parses arguments and calls the library."""

from .main import main

__all__ = ["main"]
