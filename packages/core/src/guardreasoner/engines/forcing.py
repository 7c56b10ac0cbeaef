"""Forced answers: the answer block's opening appended, and a few greedy tokens that state the labels.

Two uses. Answer-first (``guardreasoner.reasoning``): :data:`PROMPT_ANSWER_OPENING` right after the prompt
(``Engine.force_answers``). The runaway cap: after ``max_reasoning_tokens`` an engine stops the reasoning and
forces the answer.

A few outputs of the released models reason on to the token limit without an answer (issue 14: 3 of the 1B's
and 3 of the 8B's ran to ~2,000 tokens). An engine with a cap generates at most that many tokens; an output
cut there gets :data:`ANSWER_OPENING` appended and a few more greedy tokens, which state the labels, and its
generation says ``forced_answer``. The recommended cap is about 845 tokens, twice the released outputs' p99.
"""

from __future__ import annotations

import dataclasses

from guardreasoner.engines.base import Generation, GenerationConfig
from guardreasoner.prompt import answer_block

RECOMMENDED_MAX_REASONING_TOKENS = 845
"""About twice the p99 length of the released models' outputs."""

ANSWER_OPENING = "\n---\n\n" + answer_block({}).partition("\n")[0] + "\n"
"""What is appended to a runaway's text: the separator and the heading of the answer block, as the released
outputs write them before the labels."""

PROMPT_ANSWER_OPENING = ANSWER_OPENING.removeprefix("\n")
"""What answer-first (``guardreasoner.reasoning``) appends to the prompt: the prompt ends with a blank line
already, so prompt and opening read ``...\n\n---\n\nAnswers: \n`` as the released outputs write the block
after their reasoning (and the opening's tokens are those of the whole text: the blank line stays one token)."""

FORCED_ANSWER_TOKENS = 32
"""Greedy tokens generated after :data:`ANSWER_OPENING`: enough for the three label lines."""


def capped(config: GenerationConfig, max_reasoning_tokens: int | None) -> GenerationConfig | None:
    """``config`` with ``max_new_tokens`` lowered to the cap, or None when the cap does not bind (off, or not
    below the caller's own limit, which then stays a plain ``length`` finish)."""
    if max_reasoning_tokens is None or config.max_new_tokens <= max_reasoning_tokens:
        return None
    return dataclasses.replace(config, max_new_tokens=max_reasoning_tokens)


def answer_config() -> GenerationConfig:
    """Greedy, a few tokens: reading the labels after the forced opening."""
    return GenerationConfig(max_new_tokens=FORCED_ANSWER_TOKENS)


def check_max_reasoning_tokens(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f"max_reasoning_tokens must be a positive number of tokens or None (off); got {value!r}. "
            f"About {RECOMMENDED_MAX_REASONING_TOKENS} (twice the released outputs' p99) is recommended."
        )
    return value


def opened(generation: Generation) -> Generation:
    """An answer-first generation whose text starts with the opening it continued (a failure as it is); its
    label log-probabilities, which spell the end of the text, still point at the labels."""
    if generation.error is not None:
        return generation
    return dataclasses.replace(generation, text=PROMPT_ANSWER_OPENING + generation.text, samples=())
