"""GuardReasoner for LlamaIndex: a node postprocessor, guarded query and chat engines, guarded agents, and a
shadow-mode instrumentation event handler. Every check the engines and agents make is a ``GuardReasoner.<stage>``
span of LlamaIndex's instrumentation, its verdict in a :class:`GuardReasonerVerdictEvent`.

Install with ``pip install "guardreasoner[llamaindex]"`` (the distribution is
``llama-index-postprocessor-guardreasoner``). Importing this package without llama-index-core installed
raises :class:`guardreasoner.MissingExtraError`, which names that extra.
"""

from guardreasoner.errors import MissingExtraError

try:
    import llama_index.core.postprocessor.types  # noqa: F401
except ImportError as exc:  # the framework is this package's dependency; say how to install it
    raise MissingExtraError(
        "llamaindex", "llama-index-core", "llama_index.postprocessor.guardreasoner"
    ) from exc

from llama_index.postprocessor.guardreasoner._tracing import GuardReasonerVerdictEvent
from llama_index.postprocessor.guardreasoner.agent import GuardedAgent
from llama_index.postprocessor.guardreasoner.chat_engine import GuardedChatEngine
from llama_index.postprocessor.guardreasoner.postprocessor import GuardReasonerNodePostprocessor
from llama_index.postprocessor.guardreasoner.query_engine import GuardedQueryEngine
from llama_index.postprocessor.guardreasoner.shadow import GuardReasonerEventHandler

from guardreasoner.integrations import DEFAULT_VIOLATION_MESSAGE, GuardReasonerViolation

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_VIOLATION_MESSAGE",
    "GuardReasonerEventHandler",
    "GuardReasonerNodePostprocessor",
    "GuardReasonerVerdictEvent",
    "GuardReasonerViolation",
    "GuardedAgent",
    "GuardedChatEngine",
    "GuardedQueryEngine",
]
