"""``guard_chain``: wrap any Runnable so its input is judged before it runs and its output after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from guardreasoner import InvalidInputError, Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import GuardProvider, is_violation
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config

from guardreasoner_langchain._guard import Stage, conversation_of, message_text
from guardreasoner_langchain.errors import GuardReasonerViolation
from guardreasoner_langchain.middleware import DEFAULT_VIOLATION_MESSAGE


class GuardedRunnable(Runnable[Any, Any]):
    """A Runnable whose input and output GuardReasoner judges; build it with :func:`guard_chain`."""

    def __init__(
        self,
        chain: Runnable[Any, Any],
        provider: GuardProvider,
        *,
        check_input: bool,
        check_output: bool,
        exit_behavior: Literal["error", "replace"],
        violation_message: str,
        input_key: str | None,
    ):
        if exit_behavior not in ("error", "replace"):
            raise ValueError(f"exit_behavior must be 'error' or 'replace', got {exit_behavior!r}.")
        self.chain = chain
        self._provider = provider
        self.check_input = check_input
        self.check_output = check_output
        self.exit_behavior = exit_behavior
        self.violation_message = violation_message
        self.input_key = input_key
        self.name = f"Guarded{chain.get_name()}"

    @property
    def guard(self) -> GuardReasoner:
        return self._provider.get()

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._run, input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(self._arun, input, config, **kwargs)

    def _run(self, value: Any, run_manager: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        request = self._request(value)
        if self.check_input:
            verdict = self.guard.classify(request)
            if is_violation(verdict, judged_on="request"):
                return self._violation(verdict, "input", request, None)
        output = self.chain.invoke(value, patch_config(config, callbacks=run_manager.get_child()), **kwargs)
        if self.check_output and (response := self._response(output)) is not None:
            verdict = self.guard.classify(request, response)
            if is_violation(verdict, judged_on="response"):
                return self._violation(verdict, "output", response, output)
        return output

    async def _arun(self, value: Any, run_manager: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        request = self._request(value)
        if self.check_input:
            verdict = await self.guard.aclassify(request)
            if is_violation(verdict, judged_on="request"):
                return self._violation(verdict, "input", request, None)
        output = await self.chain.ainvoke(
            value, patch_config(config, callbacks=run_manager.get_child()), **kwargs
        )
        if self.check_output and (response := self._response(output)) is not None:
            verdict = await self.guard.aclassify(request, response)
            if is_violation(verdict, judged_on="response"):
                return self._violation(verdict, "output", response, output)
        return output

    def _request(self, value: Any) -> str:
        if isinstance(value, Mapping) and "prompt" not in value and "messages" not in value:
            if self.input_key is not None:
                if self.input_key not in value:
                    raise InvalidInputError(f"The chain's input has no {self.input_key!r} key (input_key).")
                value = value[self.input_key]
            else:
                texts = [v for v in value.values() if isinstance(v, str)]
                if len(texts) != 1:
                    raise InvalidInputError(
                        f"Cannot tell which key of the chain's input {sorted(value)} is the user's request: "
                        "pass input_key= to guard_chain."
                    )
                value = texts[0]
        return conversation_of(value)[0]

    @staticmethod
    def _response(output: Any) -> str | None:
        if isinstance(output, (str, BaseMessage)):
            return message_text(output)
        raise InvalidInputError(
            f"guard_chain can judge a chain's output when it is a str or a message, not a "
            f"{type(output).__name__}: end the chain with a StrOutputParser, or pass check_output=False."
        )

    def _violation(self, verdict: Verdict, stage: Stage, content: str, output: Any) -> Any:
        if self.exit_behavior == "error":
            raise GuardReasonerViolation(verdict=verdict, stage=stage, content=content)
        if isinstance(output, BaseMessage):
            return output.model_copy(update={"content": self.violation_message})
        return self.violation_message


def guard_chain(
    chain: Runnable[Any, Any],
    guard: GuardReasoner | None = None,
    *,
    check_input: bool = True,
    check_output: bool = True,
    exit_behavior: Literal["error", "replace"] = "error",
    violation_message: str = DEFAULT_VIOLATION_MESSAGE,
    input_key: str | None = None,
    model: str | None = None,
    **guard_options: Any,
) -> GuardedRunnable:
    """Wrap ``chain``: judge its input before it runs and its output (as the response) after.

    >>> safe_chain = guard_chain(prompt | llm | StrOutputParser(), guard)  # doctest: +SKIP

    The request is read from the chain's input: a str, messages or PromptValue (the last human message),
    ``{"prompt": ...}``, or a mapping whose ``input_key`` (or only str value) holds it. The output must be a
    str or a message (its text parts joined). A flagged input stops the chain before it runs.

    ``exit_behavior``: ``"error"`` raises :class:`~guardreasoner_langchain.GuardReasonerViolation` (with
    the verdict); ``"replace"`` returns ``violation_message`` instead: as a copy of the output message when
    the chain returned a message, else (and always for a flagged input, since the chain did not run) as a str.
    Policy-decided verdicts follow the guard's policy (fail closed blocks). ``batch`` runs ``invoke`` per
    input; use :class:`GuardReasonerRunnable` in the chain for one batched guard call.
    """
    provider = GuardProvider(guard, model, guard_options)
    return GuardedRunnable(
        chain,
        provider,
        check_input=check_input,
        check_output=check_output,
        exit_behavior=exit_behavior,
        violation_message=violation_message,
        input_key=input_key,
    )
