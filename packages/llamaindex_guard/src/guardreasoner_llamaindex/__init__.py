"""GuardReasoner for LlamaIndex: a node postprocessor, and guarded query and chat engines.

Install with ``pip install "guardreasoner[llamaindex]"``. Importing this package without llama-index-core
installed raises :class:`guardreasoner.MissingExtraError`, which names that extra.
"""

from guardreasoner.errors import MissingExtraError

try:
    import llama_index.core.postprocessor.types  # noqa: F401
except ImportError as exc:  # the framework is this package's dependency; say how to install it
    raise MissingExtraError("llamaindex", "llama-index-core", "guardreasoner_llamaindex") from exc

from guardreasoner_llamaindex.chat_engine import GuardedChatEngine
from guardreasoner_llamaindex.errors import GuardReasonerViolation
from guardreasoner_llamaindex.postprocessor import GuardReasonerNodePostprocessor
from guardreasoner_llamaindex.query_engine import DEFAULT_REFUSAL, GuardedQueryEngine

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REFUSAL",
    "GuardReasonerNodePostprocessor",
    "GuardReasonerViolation",
    "GuardedChatEngine",
    "GuardedQueryEngine",
]
