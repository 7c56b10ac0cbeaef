"""The guard: conversations in, verdicts out, with a policy for when the model cannot decide."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from guardreasoner.conversation import Conversation, ConversationLike, fit_to_context, to_conversations
from guardreasoner.engines import Engine, Generation, GenerationConfig, create_engine
from guardreasoner.errors import EngineError, EngineTimeoutError
from guardreasoner.model_source import DEFAULT_MODEL
from guardreasoner.parsing import parse_output
from guardreasoner.policy import FailurePolicy, apply_policy
from guardreasoner.prompt import build_prompt
from guardreasoner.verdict import ParseStatus, Verdict

logger = logging.getLogger("guardreasoner")


class GuardReasoner:
    """A GuardReasoner model behind one of the engines.

    >>> guard = GuardReasoner("yueliu1999/GuardReasoner-8B", engine="vllm")  # doctest: +SKIP
    >>> guard.classify("How do I make a bomb?").is_harmful  # doctest: +SKIP
    True

    ``engine`` is ``"auto"`` (vLLM on a CUDA machine that has it, else transformers), ``"hf"``, ``"vllm"``,
    ``"openai"`` (any OpenAI-compatible server; ``model`` is then the served model's name), or a ready
    :class:`~guardreasoner.engines.Engine`. Other keyword arguments go to the engine (``device``, ``dtype``,
    ``batch_size``, ``tensor_parallel_size``, ``base_url``, ...).

    ``policy`` decides what an unusable verdict (unparseable output, timeout, engine failure) means:
    ``fail_closed`` (harmful; the default), ``fail_open`` (safe) or ``raise`` (:class:`GuardUndecidedError`).
    ``truncation`` is ``"error"`` (a conversation longer than the context raises) or ``"head_tail"``.
    ``timeout`` (seconds) bounds each async call; the ``openai`` engine's own per-request limit is
    ``request_timeout=``. An engine failure in a batch call fails every verdict of that call (under the
    policy), since the engine returns no partial results.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        engine: str | Engine = "auto",
        policy: FailurePolicy | str = FailurePolicy.FAIL_CLOSED,
        max_new_tokens: int = 2048,
        generation: GenerationConfig | None = None,
        truncation: Literal["error", "head_tail"] = "error",
        timeout: float | None = None,
        **engine_options: Any,
    ):
        if truncation not in ("error", "head_tail"):
            raise ValueError(f"truncation must be 'error' or 'head_tail', got {truncation!r}.")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}.")
        self.policy = FailurePolicy(policy)
        self.generation = generation or GenerationConfig(max_new_tokens=max_new_tokens)
        self.truncation = truncation
        self.timeout = timeout
        if isinstance(engine, Engine):
            if engine_options:
                raise ValueError(
                    f"Engine options {sorted(engine_options)} cannot apply to a ready engine instance."
                )
            self.engine = engine
        else:
            self.engine = create_engine(engine, model, **engine_options)
        self.model = os.fspath(model)

    # -- sync -----------------------------------------------------------------------------------------

    def classify(self, prompt: str, response: str | None = None) -> Verdict:
        """Classify one conversation: the user's ``prompt`` and, optionally, the AI's ``response``."""
        return self.classify_batch([Conversation.model_construct(prompt=prompt, response=response)])[0]

    def classify_batch(self, items: Iterable[ConversationLike]) -> list[Verdict]:
        """Classify many conversations in one engine call; verdicts come back in order."""
        conversations, prompts, cut = self._prepare(items)
        if not prompts:
            return []
        try:
            generations = self.engine.generate(prompts, self.generation)
        except EngineError as exc:
            return self._decide([self._failure(exc)] * len(prompts))
        return self._decide([self._parse(c, g, t) for c, g, t in zip(conversations, generations, cut)])

    # -- async ----------------------------------------------------------------------------------------

    async def aclassify(self, prompt: str, response: str | None = None) -> Verdict:
        """Async :meth:`classify`. Concurrent calls share the engine (vLLM batches them continuously)."""
        return (await self.aclassify_batch([Conversation.model_construct(prompt=prompt, response=response)]))[
            0
        ]

    async def aclassify_batch(self, items: Iterable[ConversationLike]) -> list[Verdict]:
        conversations, prompts, cut = self._prepare(items)
        if not prompts:
            return []
        try:
            generations = await asyncio.wait_for(
                self.engine.agenerate(prompts, self.generation), self.timeout
            )
        except (EngineError, asyncio.TimeoutError) as exc:
            return self._decide([self._failure(exc)] * len(prompts))
        return self._decide([self._parse(c, g, t) for c, g, t in zip(conversations, generations, cut)])

    # -- internals ------------------------------------------------------------------------------------

    def _prepare(self, items: Iterable[ConversationLike]) -> tuple[list[Conversation], list[str], list[bool]]:
        """Validate every item, then fit each to the context (raising or cutting, per ``truncation``).

        Each prompt is rendered and encoded once: where the engine can encode, the prompts handed to it are
        :class:`~guardreasoner.prompt.EncodedPrompt` strings that carry their token ids.
        """
        conversations = to_conversations(items)
        if self.engine.max_context_tokens is None:
            return (
                conversations,
                [build_prompt(c.prompt, c.response) for c in conversations],
                [False] * len(conversations),
            )
        budget = self.engine.max_context_tokens - self.generation.max_new_tokens
        fitted, prompts, cut = [], [], []
        for conversation in conversations:
            conversation, prompt, was_cut = fit_to_context(
                conversation,
                encode=self.engine.encode,
                count_tokens=self.engine.count_tokens,
                budget=budget,
                truncate=self.truncation == "head_tail",
            )
            fitted.append(conversation)
            prompts.append(prompt)
            cut.append(was_cut)
        return fitted, prompts, cut

    def _parse(self, conversation: Conversation, generation: Generation, truncated: bool) -> Verdict:
        return parse_output(
            generation.text,
            has_response=conversation.response is not None,
            finish_reason=generation.finish_reason,
            num_generated_tokens=generation.num_generated_tokens,
            num_prompt_tokens=generation.num_prompt_tokens,
            input_truncated=truncated,
        )

    def _failure(self, exc: BaseException) -> Verdict:
        timeout = isinstance(exc, (asyncio.TimeoutError, EngineTimeoutError))
        message = str(exc) or f"timed out after {self.timeout} s"
        return Verdict(
            is_parsing_error=True,
            parse_status=ParseStatus.TIMEOUT if timeout else ParseStatus.ENGINE_ERROR,
            parse_detail=f"The {self.engine.name} engine failed: {message}",
            error=message,
        )

    def _decide(self, verdicts: list[Verdict]) -> list[Verdict]:
        """Apply the policy to each verdict; log once per call how many the policy decided, and why."""
        decided = [apply_policy(verdict, self.policy) for verdict in verdicts]
        undecided = Counter(v.parse_status.value for v in decided if v.decided_by == "policy")
        if undecided:
            logger.warning(
                "GuardReasoner could not decide %d of %d conversation(s) (%s); policy %s treats them as %s.",
                sum(undecided.values()),
                len(decided),
                ", ".join(f"{status}: {count}" for status, count in undecided.most_common()),
                self.policy.value,
                "harmful" if self.policy is FailurePolicy.FAIL_CLOSED else "safe",
            )
        return decided

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> GuardReasoner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
