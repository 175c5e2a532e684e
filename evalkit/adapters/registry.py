"""Adapter lookup: built-ins plus the `evalkit.adapters` entry-point group, resolved lazily by name."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from ..errors import EvalkitError
from .base import Adapter

GROUP = "evalkit.adapters"
_BUILTIN = {"hf-causal": "evalkit.adapters.hf.causal:HFCausalAdapter", "vllm": "evalkit.adapters.vllm:VLLMAdapter"}


def _targets() -> dict[str, str]:
    found = dict(_BUILTIN)
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.value
    return found


def adapter_names() -> list[str]:
    return sorted(_targets())


def get_adapter_class(name: str) -> type[Adapter]:
    targets = _targets()
    if name not in targets:
        raise EvalkitError(f"unknown adapter '{name}' (known: {', '.join(sorted(targets))}); third-party adapters register in the entry-point group '{GROUP}'")
    module, _, attr = targets[name].partition(":")
    try:
        cls = getattr(import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise EvalkitError(f"adapter '{name}' ({targets[name]}) cannot be imported: {err}; install its package") from None
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise EvalkitError(f"adapter '{name}' ({targets[name]}) is not an evalkit Adapter subclass")
    return cls
