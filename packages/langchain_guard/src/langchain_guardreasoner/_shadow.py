"""What both shadow callback handlers read from LangChain's callbacks: each model call's input, and its
output paired with that input. The judging, queueing and recording are
:class:`guardreasoner.integrations.ShadowRecorder`'s."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from guardreasoner import InvalidInputError
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import DEFAULT_HISTORY_TURNS, GuardProvider, ShadowRecorder, ShadowSink
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from langchain_guardreasoner._messages import message_text, messages_conversation


class ShadowCalls:
    """The model calls a handler has seen start and not yet end: ``run_id`` -> the request of each prompt."""

    def __init__(
        self,
        guard: GuardReasoner | None,
        recorder: ShadowRecorder | None,
        *,
        check_input: bool,
        check_output: bool,
        history_window: int,
        sink: ShadowSink,
        max_queue: int,
        workers: int,
        enforce: bool,
        model: str | None,
        guard_options: dict[str, Any],
    ):
        if recorder is not None and (guard is not None or model is not None or guard_options):
            raise ValueError(
                "Pass either recorder= (it holds its guard) or the guard and its options, not both."
            )
        if recorder is None:
            recorder = ShadowRecorder(
                GuardProvider(guard, model, guard_options).get(),
                sink=sink,
                max_queue=max_queue,
                workers=workers,
                enforce=enforce,
            )
        self.recorder = recorder
        self.check_input = check_input
        self.check_output = check_output
        self.history_window = history_window
        self.skipped = 0
        """Checks not made for want of text: a prompt with no human message, an output of tool calls only."""
        self._requests: dict[UUID, list[str | None]] = {}
        self._lock = threading.Lock()

    def started(
        self, run_id: UUID, prompts: Sequence[Sequence[BaseMessage] | str], info: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Remember each prompt's request for the output; the input checks to make (request, metadata)."""
        requests: list[str | None] = []
        for prompt in prompts:
            if isinstance(prompt, str):
                requests.append(prompt if prompt.strip() else None)
                continue
            try:
                requests.append(messages_conversation(prompt, self.history_window)[0])
            except InvalidInputError:
                requests.append(None)
        with self._lock:
            self._requests[run_id] = requests
            self.skipped += sum(request is None for request in requests) * self.check_input
        if not self.check_input:
            return []
        return [(r, {**info, "prompt_index": i}) for i, r in enumerate(requests) if r is not None]

    def ended(
        self, run_id: UUID, response: LLMResult, info: dict[str, Any]
    ) -> list[tuple[str, str, dict[str, Any], Any]]:
        """The output checks (request, response text, metadata, the generation) for a finished call."""
        with self._lock:
            requests = self._requests.pop(run_id, [])
        if not self.check_output:
            return []
        checks = []
        for index, (request, generations) in enumerate(zip(requests, response.generations)):
            generation = generations[0] if generations else None
            text = None
            if request is not None and generation is not None:
                text = (
                    message_text(generation.message)
                    if isinstance(generation, ChatGeneration)
                    else generation.text
                )
            if text is None or not text.strip():
                with self._lock:
                    self.skipped += 1
                continue
            checks.append((request, text, {**info, "prompt_index": index}, generation))
        return checks

    def forget(self, run_id: UUID) -> None:
        with self._lock:
            self._requests.pop(run_id, None)


def run_info(
    run_id: UUID,
    parent_run_id: UUID | None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    serialized: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What each record carries to join it with the run's trace."""
    info: dict[str, Any] = {
        "run_id": str(run_id),
        "parent_run_id": str(parent_run_id) if parent_run_id else None,
    }
    if tags:
        info["tags"] = list(tags)
    if metadata:
        info["run_metadata"] = dict(metadata)
    if serialized and (name := serialized.get("name")):
        info["model"] = name
    return info


def attach(generation: Any, verdict: Any) -> None:
    """Put an enforcing check's verdict in the generated message's metadata (the output the caller gets)."""
    from guardreasoner.integrations import violation_metadata

    if verdict is not None and isinstance(generation, ChatGeneration):
        generation.message.response_metadata["guardreasoner"] = violation_metadata(verdict, "output")


class ShadowHandler:
    """What the sync and async handlers share: their options, the recorder and its counters."""

    def __init__(
        self,
        guard: GuardReasoner | None = None,
        *,
        recorder: ShadowRecorder | None = None,
        sink: ShadowSink = "log",
        max_queue: int = 1000,
        workers: int = 1,
        enforce: bool = False,
        check_input: bool = True,
        check_output: bool = True,
        history_window: int = DEFAULT_HISTORY_TURNS,
        model: str | None = None,
        **guard_options: Any,
    ):
        self.calls = ShadowCalls(
            guard,
            recorder,
            check_input=check_input,
            check_output=check_output,
            history_window=history_window,
            sink=sink,
            max_queue=max_queue,
            workers=workers,
            enforce=enforce,
            model=model,
            guard_options=guard_options,
        )
        self.recorder = self.calls.recorder
        self.raise_error = self.recorder.enforce

    def stats(self) -> dict[str, int]:
        """The recorder's counters (``submitted``, ``recorded``, ``dropped``...) and ``skipped``."""
        return {**self.recorder.stats(), "skipped": self.calls.skipped}

    def flush(self, timeout: float | None = None) -> bool:
        return self.recorder.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        self.recorder.close(timeout)

    # -- what both handlers' callbacks do, but for judging (sync or awaited) ------------------------------

    def _inputs(
        self, serialized: dict[str, Any], prompts: Sequence[Any], run_id: UUID, run: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The input checks of a starting call: ``prompts`` are a chat model's message lists or an LLM's
        strings; ``run`` the callback's other keywords (``parent_run_id``, ``tags``, ``metadata``)."""
        info = run_info(run_id, run.get("parent_run_id"), run.get("tags"), run.get("metadata"), serialized)
        return self.calls.started(run_id, prompts, info)

    def _outputs(
        self, response: LLMResult, run_id: UUID, run: dict[str, Any]
    ) -> list[tuple[str, str, dict[str, Any], Any]]:
        """The output checks of a finished call (request, response text, metadata, the generation)."""
        return self.calls.ended(run_id, response, run_info(run_id, run.get("parent_run_id")))

    @contextlib.contextmanager
    def _forget_on_error(self, run_id: UUID) -> Iterator[None]:
        """A check that raises (an enforced violation, a guard error) ends the call: drop its requests."""
        try:
            yield
        except BaseException:
            self.calls.forget(run_id)
            raise
