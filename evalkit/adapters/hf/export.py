"""Write a model as a plain safetensors folder that other engines (vLLM, llama.cpp converters) can read.

vLLM cannot read the bundled SmolLM2 GGUF. evalkit's loader already de-quantises a GGUF once and
caches it as a `save_pretrained` folder (loading.py); `export_model` copies that folder (or loads
and saves any other model source) to OUTPUT, with a config.json free of `quantization_config`, the
weights as model.safetensors and the very tokenizer files hf-causal uses, so both adapters see the
same token ids and chat template.

    python -m evalkit.adapters.hf.export --model "" --output DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ...errors import EvalkitError
from ...cachedir import cache_root
from .loading import file_sha256, load_model, resolve_model_source

MARKER = "evalkit.json"


def export_model(spec: str | None, output: str | Path, overwrite: bool = False) -> Path:
    """Write model `spec` (hub id, folder, .gguf, "" for the bundled SmolLM2) as fp32 safetensors to `output`.

    The folder is written next to `output` and renamed into place, so a reader never sees half of it.
    An existing `output` written by this function for the same source is kept as it is.
    """
    out = Path(output).expanduser().resolve()
    kind, location = resolve_model_source(spec)
    source = {"spec": spec or "smollm2-135m-instruct", "source": kind, "location": location}
    if (out / MARKER).is_file() and not overwrite:
        previous = json.loads((out / MARKER).read_text())
        before = previous.get("exported_from", {})
        if before.get("location") == location:
            return out
        if kind in ("bundled", "gguf") and before.get("sha256") and before["sha256"] == file_sha256(Path(location)):
            return out  # the same GGUF installed elsewhere (another checkout's venv): same bytes, same export
        raise EvalkitError(f"{out} holds an export of {previous.get('exported_from', {}).get('spec')!r}; "
                           "pass --overwrite or another --output")
    if out.exists() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise EvalkitError(f"{out} exists and is not an evalkit export; pass an empty or new --output folder")

    import torch

    model, tok, identity = load_model(spec, torch.float32, False, None)  # a GGUF is converted and cached here
    source["sha256"] = identity.get("sha256") or identity.get("revision")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        # loading.py's conversion cache for a GGUF: the very folder hf-causal loads
        cached = cache_root() / "gguf" / source["sha256"][:24] if kind in ("bundled", "gguf") else None
        if cached is not None and (cached / "config.json").is_file():
            for f in cached.iterdir():
                if f.is_file() and f.name != MARKER:
                    shutil.copy2(f, tmp / f.name)
        else:
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
        _clean_config(tmp / "config.json")
        if not list(tmp.glob("*.safetensors")):
            raise EvalkitError(f"exporting {source['spec']} wrote no safetensors file into {tmp}")
        (tmp / MARKER).write_text(json.dumps({"exported_from": source, "dtype": "float32"}, indent=2))
        for f in tmp.iterdir():
            f.chmod(0o644)
        tmp.chmod(0o755)  # mkdtemp makes it private; an export is meant to be shared
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _clean_config(path: Path) -> None:
    """No GGUF quantisation marker, fp32 weights: what vLLM and transformers expect of a plain folder."""
    config = json.loads(path.read_text())
    config.pop("quantization_config", None)
    config["torch_dtype"] = config["dtype"] = "float32"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalkit.adapters.hf.export",
                                     description="Write a model (default: the bundled SmolLM2-135M-Instruct GGUF) "
                                                 "as an fp32 safetensors folder, e.g. for --adapter vllm.")
    parser.add_argument("--model", default="", help="hub id, local folder or .gguf file (default: the bundled SmolLM2)")
    parser.add_argument("--output", required=True, help="folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")
    args = parser.parse_args(argv)
    try:
        out = export_model(args.model, args.output, args.overwrite)
    except EvalkitError as err:
        print(f"evalkit: error: {err}", file=sys.stderr)
        return err.exit_code
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
