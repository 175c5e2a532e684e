"""Shared fixtures: real data from ../shared/data and real small models, loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EVALKIT_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
MODELS = SHARED / "models"
STORIES = MODELS / "stories260K-hf"
ALL_TASKS = ["imdb", "sst2", "xsum", "wmt21-de-en", "wikitext2"]


def pytest_configure(config):
    if not DATA.is_dir() or not STORIES.is_dir():
        raise pytest.UsageError(f"the tests need ../shared beside the repository (looked in {SHARED}); set EVALKIT_SHARED")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Each test session gets its own evalkit cache (converted GGUF weights, responses)."""
    old = os.environ.get("EVALKIT_CACHE_DIR")
    os.environ["EVALKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("evalkit-cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    yield
    if old is None:
        os.environ.pop("EVALKIT_CACHE_DIR", None)
    else:
        os.environ["EVALKIT_CACHE_DIR"] = old


@pytest.fixture()
def one_thread():
    """stories260K is too small for threads to help; on a shared 2-core machine they slow it down."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def stories_adapter():
    from evalkit.adapters.hf.causal import HFCausalAdapter

    return HFCausalAdapter(model=str(STORIES), batch_size=16, device="cpu")


@pytest.fixture(scope="session")
def smollm2_adapter():
    from evalkit.adapters.hf.causal import HFCausalAdapter

    return HFCausalAdapter(model="", batch_size=16, device="cpu")


@pytest.fixture(scope="session")
def stories_run(tmp_path_factory, stories_adapter):
    """All five shipped tasks on stories260K, 40 documents each: (run_dir, results)."""
    from evalkit.engine import RunOptions, evaluate

    out = tmp_path_factory.mktemp("runs")
    options = RunOptions(tasks=ALL_TASKS, limit=40, data_dir=str(DATA), output=str(out), progress=False,
                         batch_size=16, model=str(STORIES))
    return evaluate(options, adapter=stories_adapter, log=lambda _m: None)


@pytest.fixture(scope="session")
def stub_model():
    """stories260K behind the OpenAI-compatible stub (tests/openai_stub.py): loaded once, shared by the openai tests."""
    from .openai_stub import StubModel

    return StubModel(str(STORIES))


@pytest.fixture
def stub(stub_model):
    """A fresh stub server per test (its fault queue, request log and counters start empty)."""
    from .openai_stub import StubServer

    server = StubServer(stub_model)
    yield server
    server.stop()
