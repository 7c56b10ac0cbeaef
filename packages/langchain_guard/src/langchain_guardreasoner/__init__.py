"""GuardReasoner for LangChain: agent middleware, a guard step and a guard wrapper for LCEL chains, and
shadow-mode callback handlers.

Install with ``pip install "guardreasoner[langchain]"``. Importing this package without LangChain installed
raises :class:`guardreasoner.MissingExtraError`, which names that extra.
"""

from guardreasoner.errors import MissingExtraError

try:
    import langchain.agents.middleware.types  # noqa: F401
    import langchain_core.runnables  # noqa: F401
except ImportError as exc:  # the framework is this package's dependency; say how to install it
    _missing = (exc.name or "langchain").split(".")[0]
    raise MissingExtraError(
        "langchain", {"langchain_core": "langchain-core"}.get(_missing, _missing), "langchain_guardreasoner"
    ) from exc

from guardreasoner.integrations import DEFAULT_VIOLATION_MESSAGE, GuardReasonerViolation, ShadowRecorder

from langchain_guardreasoner.async_callback import AsyncGuardReasonerCallbackHandler
from langchain_guardreasoner.callback import GuardReasonerCallbackHandler
from langchain_guardreasoner.chain import GuardedRunnable, guard_chain
from langchain_guardreasoner.middleware import GuardReasonerMiddleware
from langchain_guardreasoner.runnable import GuardReasonerRunnable

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_VIOLATION_MESSAGE",
    "AsyncGuardReasonerCallbackHandler",
    "GuardReasonerCallbackHandler",
    "GuardReasonerMiddleware",
    "GuardReasonerRunnable",
    "GuardReasonerViolation",
    "GuardedRunnable",
    "ShadowRecorder",
    "guard_chain",
]
