"""Model adapters: the protocol, the registry, and the built-in Hugging Face causal-LM adapter."""

from .base import Adapter
from .registry import adapter_names, get_adapter_class

__all__ = ["Adapter", "adapter_names", "get_adapter_class"]
