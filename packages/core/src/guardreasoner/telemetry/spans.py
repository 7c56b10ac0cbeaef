"""The spans and metrics of a check: a ``guardreasoner.classify`` span per call of the guard, the engine's
request as its child (OpenTelemetry's GenAI conventions), and the call's metrics.

The span is started in the caller's context, so it nests under the caller's current span: in a worker thread
too, where the thread was handed the caller's context (``contextvars.copy_context``, ``asyncio.to_thread``,
LangChain's executors). A call made inside another call of the same guard (``classify`` runs ``classify_batch``)
is part of the outer span, not a span of its own.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from enum import Enum
from typing import Any, TypeVar

from guardreasoner.conversation import to_conversations
from guardreasoner.errors import GuardReasonerError, GuardUndecidedError
from guardreasoner.prompt import PromptFormat
from guardreasoner.telemetry.attributes import (
    LABEL_FIELDS,
    guard_attributes,
    prefixed,
    verdict_attributes,
    verdict_counts,
)
from guardreasoner.telemetry.otel import Otel, current, error_type
from guardreasoner.verdict import Verdict

CLASSIFY_SPAN = "guardreasoner.classify"

F = TypeVar("F", bound=Callable[..., Any])

_KIND_FIELDS = ("is_harmful", "decided_by", *LABEL_FIELDS, "forced_answer", "reasoning_mode", "reasoned")
"""The verdict fields the verdict counter is broken down by (each takes two or three values)."""
_METRIC_GUARD_FIELDS = ("model", "engine")
"""What of the guard every metric point carries (a verdict's own ``policy`` goes on the policy's decisions)."""

_traced_guard: ContextVar[object | None] = ContextVar("guardreasoner_traced_guard", default=None)
"""The guard whose call the current span is: its nested calls add no span of their own."""


def traced_classify(method: F) -> F:
    """Decorates a guard's public classify method (sync or async): one ``guardreasoner.classify`` span and the
    call's metrics, recorded from the verdicts it returns (or the :class:`GuardUndecidedError` it raises)."""
    signature = inspect.signature(method)
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def traced_async(guard: Any, *args: Any, **kwargs: Any) -> Any:
            otel = current()
            if otel is None or _traced_guard.get() is guard:
                return await method(guard, *args, **kwargs)
            with _ClassifyCall(otel, guard, signature, args, kwargs) as call:
                return call.done(await method(guard, *call.args, **call.kwargs))

        return traced_async  # type: ignore[return-value]

    @functools.wraps(method)
    def traced(guard: Any, *args: Any, **kwargs: Any) -> Any:
        otel = current()
        if otel is None or _traced_guard.get() is guard:
            return method(guard, *args, **kwargs)
        with _ClassifyCall(otel, guard, signature, args, kwargs) as call:
            return call.done(method(guard, *call.args, **call.kwargs))

    return traced  # type: ignore[return-value]


class _ClassifyCall:
    """One traced call: the span made current, the verdicts recorded on the way out."""

    def __init__(self, otel: Otel, guard: Any, signature: inspect.Signature, args: tuple, kwargs: dict):
        self.otel, self.guard = otel, guard
        self.signature, self.args, self.kwargs = signature, args, kwargs
        self.verdicts: list[Verdict] | None = None
        self.items: Any = None

    def __enter__(self) -> _ClassifyCall:
        self.started = time.perf_counter()
        self.span = self.otel.tracer.start_span(CLASSIFY_SPAN)
        self.recording = self.span.is_recording()
        if self.recording:
            self.span.set_attributes(prefixed(guard_attributes(self.guard)))
            if self.guard.trace_content:
                self._keep_conversations()
        self.tokens = (
            _traced_guard.set(self.guard),
            self.otel.context.attach(self.otel.trace.set_span_in_context(self.span)),
        )
        return self

    def _keep_conversations(self) -> None:
        """Keep what is judged, for the content events: a one-shot iterator of items is read into a list
        first (the guard reads it whole anyway)."""
        bound = self.signature.bind(self.guard, *self.args, **self.kwargs)
        if "items" in bound.arguments:
            if isinstance(bound.arguments["items"], Iterator):
                bound.arguments["items"] = list(bound.arguments["items"])
            self.items = bound.arguments["items"]
            self.args, self.kwargs = bound.args[1:], bound.kwargs
        else:
            self.items = [(bound.arguments["prompt"], bound.arguments.get("response"))]

    def done(self, result: Any) -> Any:
        self.verdicts = [result] if isinstance(result, Verdict) else list(result)
        return result

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        seconds = time.perf_counter() - self.started
        guard_token, context_token = self.tokens
        try:
            if isinstance(exc, GuardUndecidedError):
                self.verdicts = exc.verdicts  # every verdict of the call, decided ones included
            if self.recording:
                self._annotate(exc)
            record_metrics(self.otel, self.guard, self.verdicts or [], seconds, exc)
        finally:
            self.otel.context.detach(context_token)
            _traced_guard.reset(guard_token)
            self.span.end()

    def _annotate(self, exc: BaseException | None) -> None:
        span, verdicts = self.span, self.verdicts
        if verdicts is not None:
            span.set_attribute("guardreasoner.conversations", len(verdicts))
            if len(verdicts) == 1:
                span.set_attributes(prefixed(verdict_attributes(verdicts[0])))
            else:
                span.set_attributes(prefixed(verdict_counts(verdicts)))
            if self.items is not None:
                self._add_content_events(verdicts)
        if isinstance(exc, Exception):
            self.otel.record_error(span, exc, content=self.guard.trace_content)
        elif exc is not None:  # cancelled or interrupted: not a failure of the check, but not a result either
            span.set_attribute("error.type", error_type(exc))

    def _add_content_events(self, verdicts: list[Verdict]) -> None:
        """One ``guardreasoner.conversation`` event per conversation: its text and its verdict in full."""
        try:
            conversations = to_conversations(self.items)
        except GuardReasonerError:
            return
        for index, (conversation, verdict) in enumerate(zip(conversations, verdicts)):
            text = {"index": index, "prompt": conversation.prompt}
            if conversation.response is not None:
                text["response"] = conversation.response
            attributes = {**text, **verdict_attributes(verdict, content=True)}
            self.span.add_event("guardreasoner.conversation", prefixed(attributes))


def record_metrics(
    otel: Otel, guard: Any, verdicts: list[Verdict], seconds: float, exc: BaseException | None
) -> None:
    """The call's duration (with ``error.type`` when it raised), its verdicts by label and by who decided,
    the policy's decisions by why, and each conversation's generated tokens (both passes of a verdict
    reasoned on after its forced answer)."""
    about = guard_attributes(guard)
    base = prefixed({name: about[name] for name in _METRIC_GUARD_FIELDS})
    otel.duration.record(seconds, base if exc is None else {**base, "error.type": error_type(exc)})
    kinds: Counter[tuple] = Counter()
    decisions: Counter[tuple] = Counter()
    for verdict in verdicts:
        kinds[_verdict_kind(verdict)] += 1
        if verdict.decided_by != "model":
            why = (verdict.policy or guard.policy.value, verdict.parse_status.value, verdict.is_harmful)
            decisions[why] += 1
        if (tokens := verdict.total_generated_tokens) is not None:
            otel.generated_tokens.record(tokens, base)
    for kind, count in kinds.items():
        otel.verdicts.add(count, {**base, **dict(kind)})
    for (policy, status, harmful), count in decisions.items():
        attributes = {**base, "guardreasoner.policy": policy, "guardreasoner.parse_status": status}
        if harmful is not None:  # None: left undecided (the raise policy)
            attributes["guardreasoner.is_harmful"] = harmful
        otel.policy_decisions.add(count, attributes)


def _verdict_kind(verdict: Verdict) -> tuple[tuple[str, Any], ...]:
    """A verdict's metric attributes: the decision, who made it, the labels, a forced answer, whether the
    model reasoned (and in which mode)."""
    return tuple(
        (f"guardreasoner.{name}", value.value if isinstance(value, Enum) else value)
        for name in _KIND_FIELDS
        if (value := getattr(verdict, name)) is not None
    )


# -- the engine's request -----------------------------------------------------------------------------------


def engine_request(guard: Any, prompts: list[str], config: Any) -> _EngineCall | _Untraced:
    """The engine's request for ``prompts`` under ``config`` as a span, around the call that makes it::

        with engine_request(guard, prompts, guard.generation) as request:
            generations = request.done(guard.engine.generate_each(prompts, guard.generation))

    ``done`` records what came back (tokens, finish reasons); an exception leaving the block fails the span.
    Sync and async calls alike (nothing in it awaits)."""
    otel = current()
    return _Untraced() if otel is None else _EngineCall(otel, guard, prompts, config)


class _Untraced:
    """Without OpenTelemetry: the call, untouched."""

    def __enter__(self) -> _Untraced:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def done(self, generations: list[Any]) -> list[Any]:
        return generations


class _EngineCall:
    """The engine's request as a GenAI client span: ``{operation} {model}``, ``gen_ai.*`` attributes (the
    names of opentelemetry-semantic-conventions 0.66, ``gen_ai.provider.name`` being the engine's name), the
    tokens summed over the batch. A client span for a server the engine calls, else internal (in-process)."""

    def __init__(self, otel: Otel, guard: Any, prompts: list[str], config: Any):
        self.otel, self.guard, self.prompts, self.config = otel, guard, prompts, config

    def __enter__(self) -> _EngineCall:
        engine, config = self.guard.engine, self.config
        chat = getattr(engine, "prompt_format", None) == PromptFormat.CHAT
        operation = "chat" if chat else "text_completion"
        kind = self.otel.SpanKind.CLIENT if engine.name == "openai" else self.otel.SpanKind.INTERNAL
        self.span = self.otel.tracer.start_span(f"{operation} {self.guard.model}", kind=kind)
        if self.span.is_recording():
            attributes = {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": engine.name,
                "gen_ai.request.model": self.guard.model,
                "gen_ai.request.max_tokens": config.max_new_tokens,
                "gen_ai.request.temperature": config.temperature,
                "gen_ai.request.top_p": config.top_p,
                "guardreasoner.conversations": len(self.prompts),
            }
            if config.seed is not None:
                attributes["gen_ai.request.seed"] = config.seed
            if config.n != 1:
                attributes["gen_ai.request.choice.count"] = config.n
            self.span.set_attributes(attributes)
        self.token = self.otel.context.attach(self.otel.trace.set_span_in_context(self.span))
        return self

    def done(self, generations: list[Any]) -> list[Any]:
        if self.span.is_recording():
            attributes: dict[str, Any] = {}
            for name, field in (
                ("input_tokens", "num_prompt_tokens"),
                ("output_tokens", "num_generated_tokens"),
            ):
                counted = [getattr(g, field) for g in generations if getattr(g, field) is not None]
                if counted:
                    attributes[f"gen_ai.usage.{name}"] = sum(counted)
            reasons = sorted({g.finish_reason for g in generations if g.finish_reason})
            if reasons:
                attributes["gen_ai.response.finish_reasons"] = reasons
            failed = sum(g.error is not None for g in generations)
            if failed:
                attributes["guardreasoner.failed_requests"] = failed
            self.span.set_attributes(attributes)
        return generations

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if isinstance(exc, Exception) and self.span.is_recording():
                self.otel.record_error(self.span, exc, content=self.guard.trace_content)
        finally:
            self.otel.context.detach(self.token)
            self.span.end()
