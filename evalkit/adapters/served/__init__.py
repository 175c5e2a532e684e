"""Adapters for models behind a server (OpenAI-compatible HTTP APIs)."""
