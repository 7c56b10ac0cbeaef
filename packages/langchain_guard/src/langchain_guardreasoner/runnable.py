"""A guard step for LCEL chains: passes its input through when safe, raises when harmful."""

from __future__ import annotations

from typing import Any

from guardreasoner import InvalidInputError, Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import (
    DEFAULT_HISTORY_TURNS,
    Check,
    GuardProvider,
    GuardReasonerViolation,
    aclassify_checks,
    classify_checks,
    is_violation,
)
from langchain_core.runnables import Runnable, RunnableConfig

from langchain_guardreasoner._messages import conversation_of
from langchain_guardreasoner._tracing import RUNS, RunTracer


class GuardReasonerRunnable(Runnable[Any, Any]):
    """Check a conversation with GuardReasoner inside an LCEL chain.

    >>> guard = GuardReasonerRunnable(guard=GuardReasoner("yueliu1999/GuardReasoner-1B"))  # doctest: +SKIP
    >>> chain = prompt_template | guard | chat_model  # doctest: +SKIP

    The input is a str (the user's request), a message list or PromptValue (the request is the last human
    message; the response is the last AI message after it, if any), or ``{"prompt": ..., "response": ...}``
    (str or message values; other keys pass through). Multi-part message content counts as its text parts
    joined. Up to ``history_window`` earlier human/AI turns of a message list are folded into the prompt
    (:func:`guardreasoner.integrations.fold_history`; 0: the last human message alone).

    A safe input comes out unchanged (the same object). A harmful one raises
    :class:`~guardreasoner.integrations.GuardReasonerViolation`, which carries the verdict. With a response
    present, the *response* is judged (a harmful request that the AI refused passes); without, the request.
    A verdict the guard's policy decided (unparseable output, engine failure) blocks under ``fail_closed``
    and passes under ``fail_open``; under ``raise`` the core's ``GuardUndecidedError`` propagates.

    With ``return_verdict=True`` the step returns the :class:`~guardreasoner.Verdict` instead and never
    raises a violation.

    The guard is ``guard=`` (a ready :class:`~guardreasoner.GuardReasoner`, shared as is) or built on first
    use from ``model=`` and the other keyword options (``engine=``, ``policy=``, ``base_url=``, ...).
    ``batch``/``abatch`` classify every input in one ``classify_batch`` call. Each check is a child run
    named ``GuardReasoner`` of the step's run (of each input's run in a batch), with the verdict as outputs.
    """

    def __init__(
        self,
        guard: GuardReasoner | None = None,
        *,
        return_verdict: bool = False,
        history_window: int = DEFAULT_HISTORY_TURNS,
        model: str | None = None,
        name: str | None = None,
        **guard_options: Any,
    ):
        self._provider = GuardProvider(guard, model, guard_options)
        self.return_verdict = return_verdict
        self.history_window = history_window
        self.name = name

    @property
    def guard(self) -> GuardReasoner:
        """The guard (built now if it was configured by options)."""
        return self._provider.get()

    # -- Runnable -------------------------------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._check, input, config)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._acheck, input, config)

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        return self._batch_with_config(self._check_batch, inputs, config, return_exceptions=return_exceptions)

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        return await self._abatch_with_config(
            self._acheck_batch, inputs, config, return_exceptions=return_exceptions
        )

    # -- internals ------------------------------------------------------------------------------------

    def _check(self, value: Any) -> Any:
        prompt, response = conversation_of(value, history_window=self.history_window)
        verdict = classify_checks(RUNS, self.guard, [_judged(prompt, response)])[0]
        return self._outcome(value, prompt, response, verdict, raise_=True)

    async def _acheck(self, value: Any) -> Any:
        prompt, response = conversation_of(value, history_window=self.history_window)
        verdict = (await aclassify_checks(RUNS, self.guard, [_judged(prompt, response)]))[0]
        return self._outcome(value, prompt, response, verdict, raise_=True)

    def _check_batch(self, values: list[Any], config: list[RunnableConfig]) -> list[Any]:
        outputs, readable, conversations = self._read_all(values)
        tracer = RunTracer([config[index] for index in readable])  # each check under its input's run
        checks = [_judged(*conversation) for conversation in conversations]
        verdicts = classify_checks(tracer, self.guard, checks) if checks else []
        return self._finish_batch(values, outputs, readable, conversations, verdicts)

    async def _acheck_batch(self, values: list[Any], config: list[RunnableConfig]) -> list[Any]:
        outputs, readable, conversations = self._read_all(values)
        tracer = RunTracer([config[index] for index in readable])
        checks = [_judged(*conversation) for conversation in conversations]
        verdicts = await aclassify_checks(tracer, self.guard, checks) if checks else []
        return self._finish_batch(values, outputs, readable, conversations, verdicts)

    def _read_all(self, values: list[Any]) -> tuple[list[Any], list[int], list[tuple[str, str | None]]]:
        """Read each input; one that cannot be read becomes that item's error, not the whole batch's."""
        outputs: list[Any] = [None] * len(values)
        readable, conversations = [], []
        for index, value in enumerate(values):
            try:
                conversations.append(conversation_of(value, history_window=self.history_window))
                readable.append(index)
            except InvalidInputError as exc:
                outputs[index] = exc
        return outputs, readable, conversations

    def _finish_batch(self, values, outputs, readable, conversations, verdicts) -> list[Any]:
        for index, (prompt, response), verdict in zip(readable, conversations, verdicts):
            outputs[index] = self._outcome(values[index], prompt, response, verdict, raise_=False)
        return outputs

    def _outcome(
        self, value: Any, prompt: str, response: str | None, verdict: Verdict, *, raise_: bool
    ) -> Any:
        """The step's output: the verdict, the input unchanged, or the violation (raised or returned)."""
        if self.return_verdict:
            return verdict
        if not is_violation(verdict, judged_on="request" if response is None else "response"):
            return value
        violation = GuardReasonerViolation(
            verdict=verdict,
            stage="input" if response is None else "output",
            content=prompt if response is None else response,
        )
        if raise_:
            raise violation
        return violation


def _judged(prompt: str, response: str | None) -> Check:
    """The check of a conversation: its request alone (``input``), or its response (``output``)."""
    return Check("input" if response is None else "output", prompt, response)
