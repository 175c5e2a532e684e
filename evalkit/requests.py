"""Small frozen request and response records: what the engine asks an adapter, and what it gets back.

An adapter never sees a task; it only sees these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Message = tuple[str, str]
"""One chat turn: (role, content), role one of "system", "user", "assistant"."""


@dataclass(frozen=True)
class Loglikelihood:
    """log P(continuation | context).

    With `messages` (a chat run), the context the model sees is the conversation rendered through the
    model's chat template with the generation prompt; `context` keeps the plain prompt for the logs.
    An adapter that cannot render a conversation refuses such a request with one line.
    """

    context: str
    continuation: str
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True)
class RollingLoglikelihood:
    """log P(text), scored in disjoint windows of the model's context (lm-eval's convention)."""

    text: str


@dataclass(frozen=True)
class Generate:
    """Greedy continuation of context, cut at the first stop sequence (`messages`: as for Loglikelihood)."""

    context: str
    until: tuple[str, ...] = ()
    max_new_tokens: int = 64
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True)
class TagWords:
    """One tag per word of a sentence that is already split into words (sequence labelling).

    `labels` is the task's tag set: the adapter maps its own labels onto it (and refuses with one line
    when one maps to nothing), so every tag it answers is one of `labels`.
    """

    words: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class LoglikelihoodResponse:
    logprob: float
    is_greedy: bool
    n_tokens: int
    truncated: bool = False


@dataclass(frozen=True)
class RollingResponse:
    logprob: float
    n_tokens: int


@dataclass(frozen=True)
class GenerateResponse:
    text: str
    n_tokens: int
    truncated: bool = False
    stopped_by: str | None = field(default=None)


@dataclass(frozen=True)
class WordTags:
    """A tag per word. `truncated`: the sentence was longer than the model's context, so it was tagged in
    consecutive windows of whole words, each window read without the others."""

    tags: tuple[str, ...]
    truncated: bool = False


Request = Loglikelihood | RollingLoglikelihood | Generate | TagWords
