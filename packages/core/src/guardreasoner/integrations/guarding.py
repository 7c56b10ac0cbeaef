"""The options every guarded wrapper takes, checked once, and what they do when the guard blocks.

LangChain's ``guard_chain`` and ``GuardReasonerMiddleware`` and LlamaIndex's guarded query engine, chat
engine and agent take the same keywords (``check_input``, ``exit_behavior``, ``violation_message``,
``stream_mode``...). Each public constructor still declares them itself, with its own defaults (an agent
middleware ends a turn by default, a chain raises), so that editors and ``help()`` show them; it hands
them to :class:`Guarding`, which owns their checks, the guard built from the options, the refusal and the
stream moderator. :class:`GuardedOptions` gives the wrapper the options back as read-only attributes.
"""

from __future__ import annotations

import copy
import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, get_args

from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import options
from guardreasoner.integrations.history import DEFAULT_HISTORY_TURNS
from guardreasoner.integrations.options import ExitBehavior, StreamMode
from guardreasoner.integrations.parallel import Held, arun_checked, run_checked
from guardreasoner.integrations.provider import GuardProvider, is_violation
from guardreasoner.integrations.streaming import DEFAULT_STREAM_CHUNK_TOKENS, BufferedStreamModerator
from guardreasoner.integrations.trace import NO_TRACE, Check, CheckTracer, aclassify_checks, classify_checks
from guardreasoner.verdict import Verdict

__all__ = ["GuardedOptions", "Guarding"]

T = TypeVar("T")


class Guarding:
    """A guarded wrapper's options, checked at construction, and its guard (``guard=``, or built on first
    use from ``model=`` and the other keyword options: :class:`~guardreasoner.integrations.GuardProvider`).

    ``exit_behaviors`` narrows the behaviours a surface supports (a chain has no turn to ``"end"``). An
    option a surface does not take keeps the default here, or what the surface fixes (a query engine judges
    the query alone: ``history_window=0``). ``tracer`` is the adapter's: every check made through
    :meth:`classify`, :meth:`call_checked` or :meth:`moderator` is recorded in its framework's traces.
    """

    def __init__(
        self,
        guard: GuardReasoner | None,
        model: str | None,
        guard_options: dict[str, Any],
        *,
        check_input: bool,
        check_output: bool,
        exit_behavior: ExitBehavior,
        violation_message: str,
        parallel_input_check: bool,
        history_window: int = DEFAULT_HISTORY_TURNS,
        stream_mode: StreamMode = "buffered",
        stream_chunk_tokens: int = DEFAULT_STREAM_CHUNK_TOKENS,
        exit_behaviors: tuple[str, ...] = get_args(ExitBehavior),
        tracer: CheckTracer = NO_TRACE,
    ):
        self.provider = GuardProvider(guard, model, guard_options)
        self.tracer = tracer
        self.check_input = check_input
        self.check_output = check_output
        self.exit_behavior = options.check_exit_behavior(exit_behavior, exit_behaviors)
        self.violation_message = options.check_violation_message(violation_message)
        self.parallel_input_check = parallel_input_check
        self.history_window = options.check_history_window(history_window)
        self.stream_mode = options.check_stream_mode(stream_mode)
        self.stream_chunk_tokens = options.check_stream_chunk_tokens(stream_chunk_tokens)

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any], **fixed: Any) -> Guarding:
        """From a wrapper constructor's own arguments: its ``locals()``, taken before it binds anything else.

        The constructor declares the keywords (what editors and ``help()`` show, with that wrapper's
        defaults); this takes the ones named here (``guard``, ``model``, ``guard_options`` for the ``**``
        rest, and the options), so they are handed over in one place. ``fixed`` sets what the surface does
        not take as a keyword.
        """
        taken = {name: arguments[name] for name in inspect.signature(cls).parameters if name in arguments}
        return cls(**{**taken, **fixed})

    @property
    def guard(self) -> GuardReasoner:
        return self.provider.get()

    def at_current_step(self) -> Guarding:
        """These options, their checks recorded under the current step wherever they run (a stream's checks,
        made as it is read after the call that returned it ended)."""
        bound = copy.copy(self)
        bound.tracer = self.tracer.here()
        return bound

    def classify(self, stage: str, prompt: str, response: str | None = None) -> Verdict:
        """The guard's verdict on one exchange, judged at ``stage`` and recorded by the tracer."""
        return classify_checks(self.tracer, self.guard, [Check(stage, prompt, response)])[0]

    async def aclassify(self, stage: str, prompt: str, response: str | None = None) -> Verdict:
        """:meth:`classify` with the guard's ``aclassify``."""
        return (await aclassify_checks(self.tracer, self.guard, [Check(stage, prompt, response)]))[0]

    def classify_all(self, checks: Sequence[Check]) -> list[Verdict]:
        """The verdicts of several checks, in one guard call, each recorded by the tracer."""
        return classify_checks(self.tracer, self.guard, checks)

    async def aclassify_all(self, checks: Sequence[Check]) -> list[Verdict]:
        """:meth:`classify_all` with the guard's ``aclassify_batch``."""
        return await aclassify_checks(self.tracer, self.guard, checks)

    def call_checked(self, request: str | None, call: Callable[[], T]) -> Held[Verdict | None, T]:
        """``call()``, its result held until ``request`` (judged alone) is found safe, and started beside
        the check under ``parallel_input_check``. Nothing is judged without ``check_input`` or a request."""
        if request is None or not self.check_input:
            return Held(None, False, call())
        check = lambda: self.classify("input", request)  # noqa: E731
        return run_checked(check, call, blocks=_blocks_request, beside=self.parallel_input_check)

    async def acall_checked(
        self, request: str | None, call: Callable[[], Awaitable[T]]
    ) -> Held[Verdict | None, T]:
        """:meth:`call_checked` for an async call."""
        if request is None or not self.check_input:
            return Held(None, False, await call())
        check = self.aclassify("input", request)
        return await arun_checked(check, call, blocks=_blocks_request, beside=self.parallel_input_check)

    def refusal(self, verdict: Verdict, stage: str) -> str:
        """The refusal text: ``violation_message`` filled from the verdict."""
        return options.format_violation_message(self.violation_message, verdict, stage)

    def refuse(self, verdict: Verdict, stage: str, content: str) -> str:
        """Raise :class:`~guardreasoner.integrations.GuardReasonerViolation` under ``exit_behavior="error"``;
        else the refusal text."""
        if self.exit_behavior == "error":
            raise options.GuardReasonerViolation(verdict=verdict, stage=stage, content=content)
        return self.refusal(verdict, stage)

    def moderator(
        self, prompt: str, text_of: Callable[[T], str], **options: Any
    ) -> BufferedStreamModerator[T]:
        """The moderator of a stream answering ``prompt``: ``stream_mode="buffered"`` releases it every
        ``stream_chunk_tokens`` tokens, ``"whole"`` once, after the whole answer is judged. ``options`` go to
        :class:`BufferedStreamModerator` (such as ``read_ahead``)."""
        chunk = self.stream_chunk_tokens if self.stream_mode == "buffered" else sys.maxsize
        return BufferedStreamModerator(
            self.guard, prompt, chunk_tokens=chunk, text_of=text_of, tracer=self.tracer.here(), **options
        )


def _blocks_request(verdict: Verdict) -> bool:
    return is_violation(verdict, judged_on="request")


class _Option(Generic[T]):
    """A wrapper's option, read from its ``_guarding``; read-only, since options are checked when built."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, wrapper: Any, owner: type | None = None) -> T:
        if wrapper is None:
            return self  # type: ignore[return-value]  # the class's attribute: the descriptor itself
        return getattr(wrapper._guarding, self.name)

    def __set__(self, wrapper: Any, value: Any) -> None:
        raise AttributeError(f"{self.name} is set when the guarded wrapper is built; build a new one.")


class GuardedOptions:
    """A guarded wrapper's options (and its guard) as read-only attributes, from its ``_guarding``."""

    _guarding: Guarding
    guard = _Option[GuardReasoner]()
    check_input = _Option[bool]()
    check_output = _Option[bool]()
    exit_behavior = _Option[ExitBehavior]()
    violation_message = _Option[str]()
    parallel_input_check = _Option[bool]()
    history_window = _Option[int]()
    stream_mode = _Option[StreamMode]()
    stream_chunk_tokens = _Option[int]()
