"""Shadow mode for async LangChain runs: the async form of the shadow callback handler."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import LLMResult

from langchain_guardreasoner._shadow import ShadowHandler, attach
from langchain_guardreasoner._tracing import beside_model_call


class AsyncGuardReasonerCallbackHandler(ShadowHandler, AsyncCallbackHandler):
    """:class:`~langchain_guardreasoner.GuardReasonerCallbackHandler` for async runs (``ainvoke``,
    ``astream``): the same options and records. Without ``enforce`` its callbacks only queue (they never
    await the guard); with it they await the guard's ``aclassify`` and raise on a harmful verdict.

    >>> handler = AsyncGuardReasonerCallbackHandler(guard, sink="verdicts.jsonl")  # doctest: +SKIP
    >>> await agent.ainvoke({"messages": [...]}, config={"callbacks": [handler]})  # doctest: +SKIP
    """

    # -- callbacks ------------------------------------------------------------------------------------

    async def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[Any], *, run_id: UUID, **run: Any
    ) -> None:
        for request, meta in self._inputs(serialized, prompts, run_id, run):
            await self._check(request, None, "input", meta, run_id, run.get("parent_run_id"))

    on_chat_model_start = on_llm_start  # a chat model's message lists: the same checks

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **run: Any) -> None:
        for request, text, meta, generation in self._outputs(response, run_id, run):
            attach(
                generation, await self._check(request, text, "output", meta, run_id, run.get("parent_run_id"))
            )

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **run: Any) -> None:
        self.calls.forget(run_id)

    async def _check(
        self,
        request: str,
        response: str | None,
        stage: str,
        meta: dict[str, Any],
        run_id: UUID,
        parent_run_id: UUID | None,
    ) -> Any:
        with self._forget_on_error(run_id):
            return await self.recorder.acheck(
                request, response, stage=stage, metadata=meta, tracer=beside_model_call(parent_run_id)
            )
