"""Shadow mode for async LangChain runs: the async form of the shadow callback handler."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from langchain_guardreasoner._shadow import ShadowHandler, attach, run_info


class AsyncGuardReasonerCallbackHandler(ShadowHandler, AsyncCallbackHandler):
    """:class:`~langchain_guardreasoner.GuardReasonerCallbackHandler` for async runs (``ainvoke``,
    ``astream``): the same options and records. Without ``enforce`` its callbacks only queue (they never
    await the guard); with it they await the guard's ``aclassify`` and raise on a harmful verdict.

    >>> handler = AsyncGuardReasonerCallbackHandler(guard, sink="verdicts.jsonl")  # doctest: +SKIP
    >>> await agent.ainvoke({"messages": [...]}, config={"callbacks": [handler]})  # doctest: +SKIP
    """

    # -- callbacks ------------------------------------------------------------------------------------

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        info = run_info(run_id, parent_run_id, tags, metadata, serialized)
        for request, meta in self.calls.started(run_id, messages, info):
            await self._check(request, None, "input", meta, run_id)

    async def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        info = run_info(run_id, parent_run_id, tags, metadata, serialized)
        for request, meta in self.calls.started(run_id, prompts, info):
            await self._check(request, None, "input", meta, run_id)

    async def on_llm_end(
        self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        for request, text, meta, generation in self.calls.ended(
            run_id, response, run_info(run_id, parent_run_id)
        ):
            attach(generation, await self._check(request, text, "output", meta, run_id))

    async def on_llm_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self.calls.forget(run_id)

    async def _check(
        self, request: str, response: str | None, stage: str, meta: dict[str, Any], run_id: UUID
    ) -> Any:
        try:
            return await self.recorder.acheck(request, response, stage=stage, metadata=meta)
        except BaseException:
            self.calls.forget(run_id)
            raise
