"""Stop a model's generation from its callbacks, when a guarded stream ends early (the guard blocked it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler


class UpstreamStopped(GeneratorExit):
    """Raised inside the model's stream, at its next token, once the guard stopped that stream.

    A ``GeneratorExit``: it tells each generator on the way out to stop, as closing one does, and callback
    managers (which catch ``Exception``) let it through instead of logging it as a callback error.
    """


class StopSwitch(BaseCallbackHandler):
    """Stops the model's generation when a guarded stream ends early.

    Closing a LangChain sequence's stream does not stop its model: each step, closed, reads the rest of its
    input for tracing, which runs the model to the end. This handler, in the inner chain's callbacks, raises
    at the model's next token once ``stopped`` is set, which ends that generation there.
    """

    raise_error = True
    run_inline = True

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def joined(self, manager: Any) -> Any:
        manager.add_handler(self, inherit=True)
        return manager

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        if self.stopped:
            raise UpstreamStopped("GuardReasoner stopped this stream: the guard blocked its output.")

    def stoppable(self, stream: Iterator[Any]) -> Iterator[Any]:
        """``stream``, which, closed early, stops its model (set the switch, then close)."""
        try:
            for chunk in stream:  # noqa: UP028 (``yield from`` would close ``stream`` before the switch is set)
                yield chunk
        finally:
            self.stopped = True
            with contextlib.suppress(UpstreamStopped):
                getattr(stream, "close", lambda: None)()

    async def astoppable(self, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            self.stopped = True
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(UpstreamStopped):
                    await aclose()
