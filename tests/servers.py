"""Real model servers for the `servers` test group (bench/serving.py starts and stops them).

The environments are built by `make install-vllm` and `make install-llamacpp`; a test module whose
environment is missing is skipped with the command that builds it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.serving import (  # noqa: F401 - re-exported for the test modules
    LLAMACPP_VENV,
    READY,
    VLLM_VENV,
    Server,
    free_port,
    llamacpp_command,
    smollm2_folder,
    vllm_command,
)


def require_env(venv: Path, make_target: str) -> Path:
    """The venv's python, or a visible skip that says how to build the environment."""
    python = venv / "bin" / "python"
    if not (venv / READY).is_file() or not python.is_file():
        pytest.skip(f"{venv} is not built (no {READY}): run `make {make_target}` first")
    return python
