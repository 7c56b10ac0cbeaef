"""The guard: conversations in, verdicts out, with a policy for when the model cannot decide."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from guardreasoner.conversation import Conversation, ConversationLike, fit_to_context, to_conversations
from guardreasoner.engines import Engine, Generation, GenerationConfig, create_engine
from guardreasoner.engines.forcing import answer_config
from guardreasoner.errors import EngineCapabilityError, EngineError, EngineTimeoutError
from guardreasoner.model_source import DEFAULT_MODEL
from guardreasoner.parsing import parse_output
from guardreasoner.policy import FailurePolicy, apply_policy_to_all, first_pass_doubt
from guardreasoner.prompt import build_prompt
from guardreasoner.reasoning import ReasoningBandLike, ReasoningMode, load_reasoning_band, reasoning_mode
from guardreasoner.scores import ENGINE_SCORE_GAPS, score_verdict, verdict_scores
from guardreasoner.telemetry.attributes import content_tracing
from guardreasoner.telemetry.spans import engine_request, traced_classify
from guardreasoner.thresholds import ThresholdsLike, apply_thresholds, load_thresholds
from guardreasoner.verdict import ParseStatus, Verdict

logger = logging.getLogger("guardreasoner")

PARSE_INLINE_CHARS = 16_384
"""Outputs longer than this (in total, per call) are parsed in a worker thread by the async methods."""


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
    ``thresholds`` (a ``{field: threshold}`` mapping or a thresholds file's path, as ``guardreasoner eval
    --calibrate`` writes) turns each task's score into its label: the positive label when score >= threshold.
    Without thresholds the labels are greedy decoding's; every verdict carries the scores the engine allows.
    ``reasoning`` (``guardreasoner.reasoning``) is ``"always"`` (reason, then answer: the paper's setting),
    ``"never"`` (the answer block forced right after the prompt, its labels scored) or ``"auto"`` (the forced
    answer first; conversations with a task scored inside ``reasoning_band`` are then reasoned in full).
    ``reasoning_band`` is a ``(low, high)`` pair, a :class:`~guardreasoner.reasoning.ReasoningBand` or a band
    file's path (default ``(0.05, 0.95)``, not calibrated for any weights). Under ``fail_closed`` a forced
    answer is a clean allow only when every task it answers scored outside the band.
    ``truncation`` is ``"error"`` (a conversation longer than the context raises) or ``"head_tail"``.
    ``timeout`` (seconds) is one deadline for each whole call, sync or async (connection, retries and backoff
    included): what is unanswered by then gets a ``timeout`` verdict under the policy, and a late answer is
    never used. The ``openai`` engine's limit for one attempt is ``request_timeout=``.

    Each call is a ``guardreasoner.classify`` OpenTelemetry span with the verdicts' labels and metrics (extra
    ``otel``; nothing is recorded until the application sets a provider). ``trace_content=True`` (or the
    ``GUARDREASONER_TRACE_CONTENT=1`` environment variable, read when the guard is built) also puts the
    conversations and the model's outputs into the span; by default no text is traced.

    Each conversation's verdict depends on its own request alone where the engine sends one per
    conversation (``openai``); a failure of the whole engine call fails every verdict of that call (under the
    policy). An engine that cannot be built or load its model raises :class:`EngineLoadError` instead.
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
        thresholds: ThresholdsLike = None,
        reasoning: ReasoningMode | str = ReasoningMode.ALWAYS,
        reasoning_band: ReasoningBandLike = None,
        trace_content: bool | None = None,
        **engine_options: Any,
    ):
        if truncation not in ("error", "head_tail"):
            raise ValueError(f"truncation must be 'error' or 'head_tail', got {truncation!r}.")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}.")
        self.policy = FailurePolicy(policy)
        self.generation = generation or GenerationConfig(max_new_tokens=max_new_tokens)
        self.truncation = truncation
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout}.")
        self.timeout = timeout
        self.thresholds = load_thresholds(thresholds)
        self.reasoning = reasoning_mode(reasoning)
        self.reasoning_band = load_reasoning_band(reasoning_band)
        self._warned_without_scores = False
        self.trace_content = content_tracing(trace_content)
        if isinstance(engine, Engine):
            if engine_options:
                raise ValueError(
                    f"Engine options {sorted(engine_options)} cannot apply to a ready engine instance."
                )
            self.engine = engine
        else:
            self.engine = create_engine(engine, model, **engine_options)
        self.model = os.fspath(model)
        if self.reasoning is not ReasoningMode.ALWAYS:
            unsupported = self.engine.forced_answer_unsupported()
            if unsupported is not None:
                if not isinstance(engine, Engine):
                    self.engine.close()
                raise EngineCapabilityError(f"reasoning={self.reasoning.value!r}: {unsupported}")

    # -- sync -----------------------------------------------------------------------------------------

    @traced_classify
    def classify(self, prompt: str, response: str | None = None) -> Verdict:
        """Classify one conversation: the user's ``prompt`` and, optionally, the AI's ``response``."""
        return self.classify_batch([Conversation.model_construct(prompt=prompt, response=response)])[0]

    @traced_classify
    def classify_batch(self, items: Iterable[ConversationLike]) -> list[Verdict]:
        """Classify many conversations in one engine call; verdicts come back in order.

        With ``reasoning="auto"``, one call forces every answer and one more reasons on every conversation
        the forced answers left unsure. Under the ``raise`` policy every conversation is decided first; then
        one :class:`GuardUndecidedError` carries all the verdicts.
        """
        started = time.monotonic()
        conversations, prompts, cut = self._prepare(items)
        if not prompts:
            return []
        if self.reasoning is ReasoningMode.ALWAYS:
            return self._decide(self._verdicts(conversations, self._generate(prompts, started), cut))
        first = self._first_pass(conversations, self._force(prompts, started), cut)
        escalated = self._escalated(first)
        if escalated:
            generations = self._generate([prompts[i] for i in escalated], started)
            reasoned = self._verdicts(
                [conversations[i] for i in escalated], generations, [cut[i] for i in escalated]
            )
            first = self._merged(first, escalated, reasoned)
        return self._decide(first)

    # -- async ----------------------------------------------------------------------------------------

    @traced_classify
    async def aclassify(self, prompt: str, response: str | None = None) -> Verdict:
        """Async :meth:`classify`. Concurrent calls share the engine (vLLM batches them continuously); with
        ``reasoning="auto"`` each call that its forced answer leaves unsure is reasoned on at once."""
        return (await self.aclassify_batch([Conversation.model_construct(prompt=prompt, response=response)]))[
            0
        ]

    @traced_classify
    async def aclassify_batch(self, items: Iterable[ConversationLike]) -> list[Verdict]:
        """Async :meth:`classify_batch`. Counting tokens and parsing long outputs run in worker threads, so
        one heavy conversation never stalls the other calls on the loop."""
        started = time.monotonic()
        conversations, prompts, cut = await asyncio.to_thread(self._prepare, items)
        if not prompts:
            return []
        if self.reasoning is ReasoningMode.ALWAYS:
            return self._decide(
                await self._aparsed(conversations, await self._agenerate(prompts, started), cut)
            )
        first = self._first_pass(conversations, await self._aforce(prompts, started), cut)
        escalated = self._escalated(first)
        if escalated:
            generations = await self._agenerate([prompts[i] for i in escalated], started)
            reasoned = await self._aparsed(
                [conversations[i] for i in escalated], generations, [cut[i] for i in escalated]
            )
            first = self._merged(first, escalated, reasoned)
        return self._decide(first)

    async def _aparsed(
        self, conversations: list[Conversation], generations: list[Generation], cut: list[bool]
    ) -> list[Verdict]:
        if sum(len(g.text) for g in generations) > PARSE_INLINE_CHARS:
            return await asyncio.to_thread(self._verdicts, conversations, generations, cut)
        return self._verdicts(conversations, generations, cut)

    # -- the engine calls: each within what is left of the call's deadline ----------------------------------

    def _generate(self, prompts: list[str], started: float) -> list[Generation]:
        if (late := self._past_deadline(started, len(prompts))) is not None:
            return late
        try:
            with engine_request(self, prompts, self.generation) as request:
                return request.done(
                    self.engine.generate_each(prompts, self.generation, timeout=self._left(started))
                )
        except EngineError as exc:
            return [Generation.failed(exc)] * len(prompts)

    async def _agenerate(self, prompts: list[str], started: float) -> list[Generation]:
        if (late := self._past_deadline(started, len(prompts))) is not None:
            return late
        try:
            with engine_request(self, prompts, self.generation) as request:
                return request.done(
                    await self.engine.agenerate_each(prompts, self.generation, timeout=self._left(started))
                )
        except EngineError as exc:
            return [Generation.failed(exc)] * len(prompts)

    def _force(self, prompts: list[str], started: float) -> list[Generation]:
        try:
            with engine_request(self, prompts, answer_config()) as request:
                return request.done(self.engine.force_answers(prompts, timeout=self._left(started)))
        except EngineError as exc:
            return [Generation.failed(exc)] * len(prompts)

    async def _aforce(self, prompts: list[str], started: float) -> list[Generation]:
        try:
            with engine_request(self, prompts, answer_config()) as request:
                return request.done(await self.engine.aforce_answers(prompts, timeout=self._left(started)))
        except EngineError as exc:
            return [Generation.failed(exc)] * len(prompts)

    # -- internals ------------------------------------------------------------------------------------

    def _left(self, started: float) -> float | None:
        """Seconds left of the call's deadline after preparing (counting tokens may have asked a server)."""
        if self.timeout is None:
            return None
        return max(self.timeout - (time.monotonic() - started), 0.001)

    def _past_deadline(self, started: float, count: int) -> list[Generation] | None:
        """Timeouts for a second pass that the first left no time for (None: there is time)."""
        if self.timeout is None or time.monotonic() - started < self.timeout:
            return None
        error = EngineTimeoutError(
            f"The call's deadline of {self.timeout:g} s passed before the reasoning pass could start."
        )
        return [Generation.failed(error)] * count

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

    def _verdicts(
        self, conversations: list[Conversation], generations: list[Generation], cut: list[bool]
    ) -> list[Verdict]:
        """Each conversation's verdict from its own generation: parsed, or its request's failure."""
        return [
            self._failure(g.error) if g.error is not None else self._parse(c, g, t)
            for c, g, t in zip(conversations, generations, cut, strict=True)
        ]

    def _parse(self, conversation: Conversation, generation: Generation, truncated: bool) -> Verdict:
        """The parsed verdict, scored, with the thresholds applied (before the policy, which then decides
        what the thresholded labels cannot)."""
        verdict = parse_output(
            generation.text,
            has_response=conversation.response is not None,
            finish_reason=generation.finish_reason,
            num_generated_tokens=generation.num_generated_tokens,
            num_prompt_tokens=generation.num_prompt_tokens,
            input_truncated=truncated,
        ).model_copy(update={"forced_answer": generation.forced_answer})
        verdict = score_verdict(
            verdict, generation.label_logprobs, has_response=conversation.response is not None
        )
        return apply_thresholds(verdict, self.thresholds)

    # -- answer-first (guardreasoner.reasoning) --------------------------------------------------------

    def _first_pass(
        self, conversations: list[Conversation], generations: list[Generation], cut: list[bool]
    ) -> list[Verdict]:
        """The forced answers' verdicts, each with its scores kept as the first pass's."""
        verdicts = [
            verdict.model_copy(
                update={
                    "reasoning_mode": self.reasoning,
                    "reasoned": False,
                    "first_pass_scores": verdict_scores(verdict),
                    "first_pass_tokens": generation.num_generated_tokens,
                    "reasoning_band": self.reasoning_band,
                }
            )
            for verdict, generation in zip(self._verdicts(conversations, generations, cut), generations)
        ]
        self._warn_once_without_scores(verdicts)
        return verdicts

    def _escalated(self, first: list[Verdict]) -> dict[int, str]:
        """``auto``: the conversations whose forced answer cannot decide alone, in order, each with why
        (``never``: none)."""
        if self.reasoning is not ReasoningMode.AUTO:
            return {}
        doubts = {i: first_pass_doubt(verdict) for i, verdict in enumerate(first)}
        return {i: doubt for i, doubt in doubts.items() if doubt is not None}

    def _merged(
        self, first: list[Verdict], escalated: dict[int, str], reasoned: list[Verdict]
    ) -> list[Verdict]:
        """The first pass's verdicts with the escalated ones replaced by their reasoned verdicts, which keep
        the first pass's scores and say why they were escalated."""
        merged = list(first)
        for (i, doubt), verdict in zip(escalated.items(), reasoned):
            merged[i] = verdict.model_copy(
                update={
                    "reasoning_mode": self.reasoning,
                    "first_pass_scores": first[i].first_pass_scores,
                    "first_pass_tokens": first[i].first_pass_tokens,
                    "reasoning_band": self.reasoning_band,
                    "escalation_reason": doubt,
                }
            )
        return merged

    def _warn_once_without_scores(self, verdicts: list[Verdict]) -> None:
        """Say once per guard that the engine gives the forced answers no scores, and what that costs."""
        if self._warned_without_scores:
            return
        missing = {
            status for v in verdicts for status in v.score_status.values() if status in ENGINE_SCORE_GAPS
        }
        if not missing:
            return
        self._warned_without_scores = True
        effect = (
            "every conversation is reasoned in full, as with reasoning='always'"
            if self.reasoning is ReasoningMode.AUTO
            else f"no forced answer is a clean allow under {FailurePolicy.FAIL_CLOSED.value}"
        )
        logger.warning(
            "reasoning=%r needs the forced answers' label scores, but the %s engine gives none (%s): %s.",
            self.reasoning.value,
            self.engine.name,
            "; ".join(f"{status.value}: {ENGINE_SCORE_GAPS[status]}" for status in sorted(missing)),
            effect,
        )

    def _failure(self, exc: EngineError) -> Verdict:
        timeout = isinstance(exc, EngineTimeoutError)
        message = str(exc) or type(exc).__name__
        return Verdict(
            is_parsing_error=True,
            parse_status=ParseStatus.TIMEOUT if timeout else ParseStatus.ENGINE_ERROR,
            parse_detail=f"The {self.engine.name} engine failed: {message}",
            error=message,
        )

    def _decide(self, verdicts: list[Verdict]) -> list[Verdict]:
        """Apply the policy to each verdict; log once per call how many the policy decided, and why."""
        decided = apply_policy_to_all(verdicts, self.policy)
        undecided = Counter(
            "a safe reading that is not clean" if v.is_usable else v.parse_status.value
            for v in decided
            if v.decided_by == "policy"
        )
        if undecided:
            logger.warning(
                "GuardReasoner could not decide %d of %d conversation(s) (%s); policy %s treats them as %s.",
                sum(undecided.values()),
                len(decided),
                ", ".join(f"{status}: {count}" for status, count in undecided.most_common()),
                self.policy.value,
                "harmful" if self.policy is FailurePolicy.FAIL_CLOSED else "safe",
            )
        fallbacks = sum(bool(v.threshold_fallbacks) for v in decided)
        if fallbacks:
            logger.warning(
                "Thresholds could not decide %d of %d conversation(s) (no score: see verdict.score_status); "
                "greedy decoding's labels stand.",
                fallbacks,
                len(decided),
            )
        return decided

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> GuardReasoner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
