"""The adapter protocol: three calls, and the model's identity for results and cache keys."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Mapping, Sequence

from ..requests import (
    Generate,
    GenerateResponse,
    Loglikelihood,
    LoglikelihoodResponse,
    RollingLoglikelihood,
    RollingResponse,
)

Progress = Callable[[int, int], None]
"""progress(requests_done, tokens_processed), called after each batch."""


class Adapter(ABC):
    """A model behind three calls. It never sees a task, only requests."""

    name: str = "adapter"
    model_args: ClassVar[Mapping[str, Any] | None] = None
    """The `--model-arg` names this adapter takes: {name: ModelArg(type, help, min, max, choices)}.

    Checked by `adapters.model_args.check_model_args` before the model loads; None: passed as given."""

    @property
    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """spec, adapter, revision or weights hash, dtype, device: what makes two models different."""

    @abstractmethod
    def loglikelihood(self, requests: Sequence[Loglikelihood], progress: Progress | None = None) -> list[LoglikelihoodResponse]:
        ...

    @abstractmethod
    def loglikelihood_rolling(self, requests: Sequence[RollingLoglikelihood], progress: Progress | None = None) -> list[RollingResponse]:
        ...

    @abstractmethod
    def generate(self, requests: Sequence[Generate], progress: Progress | None = None) -> list[GenerateResponse]:
        ...

    def run_stats(self) -> dict[str, Any]:
        """Facts about the run so far (final batch size, truncated inputs), for results.json."""
        return {}
