"""Each check a LangChain run: a child run named ``GuardReasoner`` of the step it guards.

The run goes through LangChain's callback managers, so every tracer the step has (LangSmith's, Langfuse's
handler, the console tracer, ``astream_events``) records it with no configuration of its own: the judged
exchange as its inputs, :func:`~guardreasoner.integrations.verdict_summary` as its outputs, the guard's
:func:`~guardreasoner.telemetry.guard_attributes` (model, engine, policy, reasoning mode) and the stage in its
metadata, and the check's own start and end. A guard that raises ends the run with the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from guardreasoner import Verdict
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import NO_TRACE, Check, CheckTracer, verdict_summary
from guardreasoner.telemetry import guard_attributes
from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import (
    ensure_config,
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
)

RUN_NAME = "GuardReasoner"


class RunTracer(CheckTracer):
    """Records each check as a child run named ``GuardReasoner``.

    ``parents``: the config of the step each check belongs to (one for all checks, or one per check, as a
    batch has); None reads it when the check is made, from the config LangChain and LangGraph set for the
    code they run (``ensure_config()``), so the run is a sibling of the model call or chain the step runs.
    """

    def __init__(self, parents: Sequence[RunnableConfig] | None = None):
        self._parents = parents

    def here(self) -> RunTracer:
        return self if self._parents is not None else RunTracer([ensure_config()])

    def _configs(self, count: int) -> Sequence[RunnableConfig]:
        parents = self._parents if self._parents is not None else [ensure_config()]
        if len(parents) == 1:
            return list(parents) * count
        if len(parents) != count:
            raise ValueError(f"{len(parents)} parent configs for {count} checks.")
        return parents

    def start(self, guard: GuardReasoner, checks: Sequence[Check]) -> list[Any]:
        runs = []
        for config, check in zip(self._configs(len(checks)), checks):
            manager = get_callback_manager_for_config(config)
            runs.append(_start(manager, guard, check))
        return runs

    async def astart(self, guard: GuardReasoner, checks: Sequence[Check]) -> list[Any]:
        runs = []
        for config, check in zip(self._configs(len(checks)), checks):
            manager = get_async_callback_manager_for_config(config)
            runs.append(await _start(manager, guard, check))
        return runs

    def end(self, runs: list[Any], checks: Sequence[Check], verdicts: Sequence[Verdict]) -> None:
        for run, check, verdict in zip(runs, checks, verdicts):
            run.on_chain_end(verdict_summary(verdict, check))

    async def aend(self, runs: list[Any], checks: Sequence[Check], verdicts: Sequence[Verdict]) -> None:
        for run, check, verdict in zip(runs, checks, verdicts):
            await run.on_chain_end(verdict_summary(verdict, check))

    def fail(self, runs: list[Any], checks: Sequence[Check], error: BaseException) -> None:
        for run in runs:
            run.on_chain_error(error)

    async def afail(self, runs: list[Any], checks: Sequence[Check], error: BaseException) -> None:
        for run in runs:
            await run.on_chain_error(error)


def _start(manager: CallbackManager | AsyncCallbackManager, guard: GuardReasoner, check: Check) -> Any:
    """Start the check's run under ``manager`` (a fresh one: its metadata is this run's): the run's manager,
    or for an async manager the awaitable giving it."""
    meta = {f"guardreasoner_{key}": value for key, value in guard_attributes(guard).items()}
    manager.add_metadata({**meta, "guardreasoner_stage": check.stage}, inherit=False)
    return manager.on_chain_start(None, check.inputs(), name=RUN_NAME, run_type="chain")


RUNS = RunTracer()
"""The tracer of the middleware, ``guard_chain`` and ``GuardReasonerRunnable``: checks under the running step."""


def beside_model_call(parent_run_id: UUID | None) -> CheckTracer:
    """For a callback handler's check of a model call: runs beside that call, under the step that made it.

    A handler sees the call's ``parent_run_id`` but not its callback manager; the config LangChain set for
    the code that made the call is that step's when its run is the call's parent (a model inside a chain,
    an agent or a graph). A model called on its own has no step to show the check in: nothing is recorded
    (an output's verdict is still in the AI message's metadata).
    """
    config = ensure_config()
    if parent_run_id is None or getattr(config.get("callbacks"), "parent_run_id", None) != parent_run_id:
        return NO_TRACE
    return RunTracer([config])
