"""guardreasoner: GuardReasoner (Liu et al., 2025) as a library.

Importing this package loads no ML framework: each engine imports its dependency when it is used.
"""

from importlib.metadata import PackageNotFoundError, version

import guardreasoner.audit as audit
from guardreasoner.conversation import Conversation
from guardreasoner.engines import Engine, Generation, GenerationConfig
from guardreasoner.errors import (
    ContextLengthError,
    EngineCapabilityError,
    EngineError,
    EngineTimeoutError,
    GuardReasonerError,
    GuardUndecidedError,
    InvalidInputError,
    MissingExtraError,
    ModelNotFoundError,
)
from guardreasoner.guard import GuardReasoner
from guardreasoner.parsing import parse_output
from guardreasoner.policy import FailurePolicy, apply_policy
from guardreasoner.prompt import INSTRUCTION, PromptFormat, build_prompt
from guardreasoner.reasoning import ReasoningBand, ReasoningMode
from guardreasoner.tasks import Task
from guardreasoner.thresholds import ThresholdsError, apply_thresholds, load_thresholds
from guardreasoner.verdict import ParseStatus, ScoreStatus, TaskReasoning, Verdict

try:
    __version__ = version("guardreasoner")  # written once, in packages/core/pyproject.toml
except PackageNotFoundError:  # sources on sys.path without an install
    __version__ = "0+unknown"

__all__ = [
    "INSTRUCTION",
    "ContextLengthError",
    "Conversation",
    "Engine",
    "EngineCapabilityError",
    "EngineError",
    "EngineTimeoutError",
    "FailurePolicy",
    "Generation",
    "GenerationConfig",
    "GuardReasoner",
    "GuardReasonerError",
    "GuardUndecidedError",
    "InvalidInputError",
    "MissingExtraError",
    "ModelNotFoundError",
    "ParseStatus",
    "PromptFormat",
    "ReasoningBand",
    "ReasoningMode",
    "ScoreStatus",
    "Task",
    "TaskReasoning",
    "ThresholdsError",
    "Verdict",
    "apply_policy",
    "apply_thresholds",
    "audit",
    "build_prompt",
    "load_thresholds",
    "parse_output",
]
