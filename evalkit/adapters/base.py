"""The adapter protocol: the calls a model answers, and the model's identity for results and cache keys.

Language models answer three calls (log-likelihood, rolling log-likelihood, generation). A
classifier answers only some of them, and a token classifier only `tag_words`: each adapter lists
the request types it answers in `request_types`, so the engine refuses a task it cannot run in one
line before any model loads, and every call it does not answer refuses in one line too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Mapping, Sequence

from ..errors import EvalkitError
from ..requests import (
    Generate,
    GenerateResponse,
    Loglikelihood,
    LoglikelihoodResponse,
    Message,
    RollingLoglikelihood,
    RollingResponse,
    TagWords,
    WordTags,
)

Progress = Callable[[int, int], None]
"""progress(requests_done, tokens_processed), called after each batch."""


class Adapter(ABC):
    """A model behind a few calls. It never sees a task, only requests."""

    name: str = "adapter"
    model_args: ClassVar[Mapping[str, Any] | None] = None
    """The `--model-arg` names this adapter takes: {name: ModelArg(type, help, min, max, choices)}.

    Checked by `adapters.model_args.check_model_args` before the model loads; None: passed as given."""
    request_types: frozenset[type] = frozenset({Loglikelihood, RollingLoglikelihood, Generate})
    # a text classifier: multiple-choice requests carry the task's raw input text and the label names
    classifier_input: bool = False
    truncation: str = "cut to their end"  # what happens to an input longer than the model's context, for the notes

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

    def tag_words(self, requests: Sequence[TagWords], progress: Progress | None = None) -> list[WordTags]:
        """One tag per word (sequence labelling); only token classifiers answer it."""
        raise self.refusal("word tagging (sequence_labeling tasks)", "hf-token-classifier")

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The text a chat conversation becomes for this model (what the logs show it saw)."""
        raise EvalkitError(f"adapter '{self.name}' cannot render chat messages; drop --apply-chat-template")

    def refusal(self, what: str, use: str) -> EvalkitError:
        """The one-line error for a call this adapter does not answer."""
        return EvalkitError(f"adapter '{self.name}' does not answer {what}; use --adapter {use}")

    def run_stats(self) -> dict[str, Any]:
        """Facts about the run so far (final batch size, truncated inputs), for results.json."""
        return {}
