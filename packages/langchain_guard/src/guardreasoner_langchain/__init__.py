"""GuardReasoner for LangChain: a Runnable guard for LCEL chains, ``guard_chain``, and agent middleware.

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
        "langchain", {"langchain_core": "langchain-core"}.get(_missing, _missing), "guardreasoner_langchain"
    ) from exc

from guardreasoner_langchain.chain import GuardedRunnable, guard_chain
from guardreasoner_langchain.errors import GuardReasonerViolation
from guardreasoner_langchain.middleware import DEFAULT_VIOLATION_MESSAGE, GuardReasonerMiddleware
from guardreasoner_langchain.runnable import GuardReasonerRunnable

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_VIOLATION_MESSAGE",
    "GuardReasonerMiddleware",
    "GuardReasonerRunnable",
    "GuardReasonerViolation",
    "GuardedRunnable",
    "guard_chain",
]
