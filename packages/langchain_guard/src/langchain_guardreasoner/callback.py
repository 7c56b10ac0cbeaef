"""Shadow mode for LangChain: a callback handler that judges every model call it observes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult

from langchain_guardreasoner._shadow import ShadowHandler, attach
from langchain_guardreasoner._tracing import beside_model_call


class GuardReasonerCallbackHandler(ShadowHandler, BaseCallbackHandler):
    """Judge each model call's input and output off the request path, and record every verdict.

    >>> handler = GuardReasonerCallbackHandler(guard, sink="verdicts.jsonl")  # doctest: +SKIP
    >>> agent.invoke({"messages": [...]}, config={"callbacks": [handler]})  # doctest: +SKIP

    Attach it to any chain, agent or model with ``callbacks=[...]`` (in the config of a call, or
    ``model.with_config(callbacks=[...])``). At each chat-model (``on_chat_model_start``) or LLM
    (``on_llm_start``) start it submits the request (the last human message with ``history_window`` earlier
    turns folded in; a completion prompt as is); at its end (``on_llm_end``) the output's text as the response
    to that request. A :class:`~guardreasoner.integrations.ShadowRecorder` queues the checks and judges them
    in worker threads, so the app never waits for the guard; each record (to ``sink``: ``"log"``, a JSONL
    path, or a callable) carries the verdict and the run's ids, tags and metadata (``run_id``,
    ``parent_run_id``, ``tags``, ``run_metadata``, ``model``, ``prompt_index``). Under overload (more than
    ``max_queue`` waiting) checks are dropped and counted (:meth:`stats`, ``dropped``), and logged once.
    :meth:`flush` waits for the queue; :meth:`close` drains it and stops the workers.

    ``enforce=True`` judges in the callback instead, before the model runs (input) and before its output is
    returned (output), and raises :class:`~guardreasoner.integrations.GuardReasonerViolation` on a harmful
    verdict (``raise_error`` is set, so LangChain propagates it out of the call); the output's verdict is also
    put in the AI message's ``response_metadata["guardreasoner"]``. Enforcement waits for the guard, so it
    is as slow as a serial guard. Each enforced check is a run named ``GuardReasoner`` beside the model call,
    under the step that made it (a model called on its own, outside a chain or graph, has none). Async runs:
    use :class:`AsyncGuardReasonerCallbackHandler`.

    ``recorder=`` shares one recorder (one queue, one sink) between handlers; otherwise one is built from
    ``guard=`` (or ``model=`` and the guard options) and ``sink``, ``max_queue``, ``workers``, ``enforce``.
    """

    # -- callbacks ------------------------------------------------------------------------------------

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[Any], *, run_id: UUID, **run: Any
    ) -> None:
        for request, meta in self._inputs(serialized, prompts, run_id, run):
            self._check(request, None, "input", meta, run_id, run.get("parent_run_id"))

    on_chat_model_start = on_llm_start  # a chat model's message lists: the same checks

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **run: Any) -> None:
        for request, text, meta, generation in self._outputs(response, run_id, run):
            attach(generation, self._check(request, text, "output", meta, run_id, run.get("parent_run_id")))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **run: Any) -> None:
        self.calls.forget(run_id)

    def _check(
        self,
        request: str,
        response: str | None,
        stage: str,
        meta: dict[str, Any],
        run_id: UUID,
        parent_run_id: UUID | None,
    ) -> Any:
        with self._forget_on_error(run_id):
            return self.recorder.check(
                request, response, stage=stage, metadata=meta, tracer=beside_model_call(parent_run_id)
            )
