"""The engine interface: raw prompts in, generated text out.

Engines know nothing of GuardReasoner; the guard builds prompts and parses what comes back. Every engine
does greedy decoding by default (the reference setting) and reports why each generation stopped.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guardreasoner.scores import LabelLogprobs


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. The defaults are the reference ones: greedy, at most 2048 new tokens."""

    max_new_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    n: int = 1
    """Samples per prompt (training's ``sample`` stage draws several; the guard uses one)."""


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str | None
    """``stop`` (end of sequence) or ``length`` (hit max_new_tokens)."""
    num_generated_tokens: int | None = None
    num_prompt_tokens: int | None = None
    samples: tuple[str, ...] = field(default=())
    """All samples when ``n > 1`` (``text`` is the first)."""
    label_logprobs: LabelLogprobs | None = None
    """What scoring needs (token texts, the label candidates' log-probabilities); None when the engine has none."""


class Engine(abc.ABC):
    """Turns raw prompt strings into generations."""

    name: str = "engine"
    max_context_tokens: int | None = None
    """The model's context window in tokens, when known."""

    @abc.abstractmethod
    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        """Generate for a batch of prompts, in order."""

    async def agenerate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        """Async generation. The default runs :meth:`generate` in a worker thread."""
        return await asyncio.to_thread(self.generate, prompts, config)

    def count_tokens(self, text: str) -> int | None:
        """The number of tokens ``text`` encodes to (BOS included), or None when the engine cannot tell."""
        return None

    def render(self, prompt: str) -> str:
        """The string the engine feeds the model for a raw GuardReasoner prompt (identity unless a chat template applies)."""
        return prompt

    def close(self) -> None:  # noqa: B027 (optional hook: most engines have nothing to release)
        """Release the model and any connections."""
