"""The engine interface: raw prompts in, generated text out.

Engines know nothing of GuardReasoner; the guard builds prompts and parses what comes back. Every engine
does greedy decoding by default (the reference setting) and reports why each generation stopped.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from guardreasoner.errors import EngineCapabilityError, EngineError, EngineTimeoutError

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
    error: EngineError | None = None
    """Why this prompt's request failed, when it did (then ``text`` is empty). Only :meth:`Engine.generate_each`
    returns such generations; :meth:`Engine.generate` raises instead."""
    label_logprobs: LabelLogprobs | None = None
    """What scoring needs (token texts, the label candidates' log-probabilities); None when the engine has none."""
    forced_answer: bool = False
    """The reasoning hit the engine's ``max_reasoning_tokens`` and the answer was forced (``engines/forcing.py``)."""

    @classmethod
    def failed(cls, error: EngineError) -> Generation:
        return cls(text="", finish_reason=None, error=error)


def raise_first_error(generations: list[Generation]) -> list[Generation]:
    """All-or-nothing: the generations when every request succeeded, else the first failure raised."""
    for generation in generations:
        if generation.error is not None:
            raise generation.error
    return generations


class Engine(abc.ABC):
    """Turns raw prompt strings into generations."""

    name: str = "engine"
    max_context_tokens: int | None = None
    """The model's context window in tokens, when known."""

    @abc.abstractmethod
    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        """Generate for a batch of prompts, in order; any failure raises :class:`EngineError`."""

    async def agenerate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        """Async generation. The default runs :meth:`generate` in a worker thread."""
        return await asyncio.to_thread(self.generate, prompts, config)

    def encode(self, prompt: str) -> list[int] | None:
        """The token ids the model is fed for a raw prompt (rendered, BOS included), or None when the engine
        cannot tell. Where it can, the guard encodes each prompt once and hands the engine an
        :class:`~guardreasoner.prompt.EncodedPrompt` carrying the ids, which the engine uses as they are."""
        return None

    def generate_each(
        self, prompts: list[str], config: GenerationConfig, *, timeout: float | None = None
    ) -> list[Generation]:
        """Generate with per-prompt results, within ``timeout`` seconds for the whole call.

        A prompt whose own request failed comes back as a generation with ``error`` set, so one failure
        costs only its own prompt; a failure of the whole call raises :class:`EngineError`
        (:class:`EngineTimeoutError` past ``timeout``). The default runs :meth:`generate` as one unit, in a
        worker thread when there is a deadline (a late answer is dropped); engines with independent requests
        override it.
        """
        if timeout is None:
            return self.generate(prompts, config)
        result: Future[list[Generation]] = Future()

        def run() -> None:
            try:
                result.set_result(self.generate(prompts, config))
            except BaseException as exc:  # handed to the waiting caller
                result.set_exception(exc)

        threading.Thread(target=run, name=f"guardreasoner-{self.name}", daemon=True).start()
        try:
            return result.result(timeout)
        except TimeoutError:
            raise EngineTimeoutError(f"The {self.name} engine gave no answer within {timeout:g} s.") from None

    async def agenerate_each(
        self, prompts: list[str], config: GenerationConfig, *, timeout: float | None = None
    ) -> list[Generation]:
        """Async :meth:`generate_each`."""
        try:
            return await asyncio.wait_for(self.agenerate(prompts, config), timeout)
        except asyncio.TimeoutError:
            raise EngineTimeoutError(f"The {self.name} engine gave no answer within {timeout:g} s.") from None

    def force_answers(self, prompts: list[str], *, timeout: float | None = None) -> list[Generation]:
        """Answer-first (``guardreasoner.reasoning``): per prompt, the answer block forced right after it.

        Each generation's text is :data:`~guardreasoner.engines.forcing.PROMPT_ANSWER_OPENING` (the separator
        and the ``Answers:`` heading) and then a few greedy tokens (``forcing.answer_config()``), with the
        label candidates' log-probabilities where the engine has them (``label_logprobs``). Per-prompt
        results and the deadline as :meth:`generate_each`. An engine that cannot force an answer leaves this
        as it is: the guard then refuses ``reasoning="auto"`` and ``"never"`` when it is built
        (:meth:`forced_answer_unsupported`).
        """
        raise EngineCapabilityError(self.forced_answer_unsupported() or "force_answers is not implemented.")

    async def aforce_answers(self, prompts: list[str], *, timeout: float | None = None) -> list[Generation]:
        """Async :meth:`force_answers`. The default runs it in a worker thread."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.force_answers, prompts), timeout)
        except asyncio.TimeoutError:
            raise EngineTimeoutError(f"The {self.name} engine gave no answer within {timeout:g} s.") from None

    def forced_answer_unsupported(self) -> str | None:
        """Why this engine cannot force an answer (:meth:`force_answers`), or None when it can."""
        if type(self).force_answers is Engine.force_answers:
            return (
                f"The {self.name} engine ({type(self).__name__}) cannot force an answer: it does not implement "
                "Engine.force_answers, which reasoning='auto' and 'never' need. Use reasoning='always', or the "
                "hf, vllm or openai engine (guardreasoner.testing.ScriptedEngine for tests)."
            )
        return None

    def count_tokens(self, text: str) -> int | None:
        """The number of tokens ``text`` encodes to (BOS included), or None when the engine cannot tell."""
        ids = self.encode(text)
        return None if ids is None else len(ids)

    def render(self, prompt: str) -> str:
        """The string the engine feeds the model for a raw GuardReasoner prompt (identity unless a chat template applies)."""
        return prompt

    def close(self) -> None:  # noqa: B027 (optional hook: most engines have nothing to release)
        """Release the model and any connections."""
