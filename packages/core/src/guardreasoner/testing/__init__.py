"""Test doubles for users' own tests and ours: no weights to download, no network.

- :class:`ScriptedEngine`: a deterministic engine that answers from a function or a table, so an
  application's tests can exercise a guard's decisions (and its failure policy) without a model; with
  ``forced=`` (:func:`forced_answer`) it also scripts the answers that ``reasoning="auto"``/``"never"`` force.
- :func:`build_tiny_llama`: a tiny random-weight Llama with a locally trained tokenizer, saved like a hub
  model, so the real loading path runs; :data:`TINY_LLAMA`, its sizes.
- :func:`train_tiny_guard`: the same model trained for seconds to answer a few fixed conversations in the
  GuardReasoner format, so end-to-end tests see a real model generate parseable verdicts.
"""

from guardreasoner.testing.scripted import ForcedAnswer, ScriptedEngine, forced_answer, guard_output
from guardreasoner.testing.tiny import (
    TINY_GUARD_CASES,
    TINY_LLAMA,
    GuardCase,
    build_tiny_llama,
    train_tiny_guard,
)

__all__ = [
    "TINY_GUARD_CASES",
    "TINY_LLAMA",
    "ForcedAnswer",
    "GuardCase",
    "ScriptedEngine",
    "build_tiny_llama",
    "forced_answer",
    "guard_output",
    "train_tiny_guard",
]
