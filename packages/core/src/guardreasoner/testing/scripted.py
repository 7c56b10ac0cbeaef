"""A deterministic engine for tests: no model, outputs chosen by the caller."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

from guardreasoner.engines.base import Engine, Generation, GenerationConfig
from guardreasoner.prompt import answer_block
from guardreasoner.scores import LEADS, LabelChoice, LabelLogprobs, LabelTokens
from guardreasoner.tasks import Task

_WORDS = re.compile(r"\s*\S+|\s+")


def guard_output(
    prompt_harmfulness: str,
    response_refusal: str | None = None,
    response_harmfulness: str | None = None,
    *,
    reasoning: str = "The request was examined step by step.",
) -> str:
    """A well-formed GuardReasoner output with the given labels (None prints as ``None``)."""
    labels = {
        Task.PROMPT_HARMFULNESS: prompt_harmfulness,
        Task.RESPONSE_REFUSAL: response_refusal,
        Task.RESPONSE_HARMFULNESS: response_harmfulness,
    }
    sections = [
        f"# Task {task.value}\n\n## Reasoning Step 1\n{reasoning}\n\n## Conclusion\nThe answer is {label}.\n"
        for task, label in labels.items()
    ]
    return "\n".join(sections) + "\n---\n\n" + answer_block(labels)


class ScriptedEngine(Engine):
    """Answers each raw prompt with ``script(prompt)``, or from a table keyed by a substring of the prompt.

    With a table, the first key found in the prompt wins; a prompt matching no key gets ``default`` (which,
    left as None, raises so that a test never passes on an unplanned input).

    With ``label_probability=p``, each generation carries log-probabilities as a model's would (whitespace
    words stand in for tokens): ``p`` on every label word it wrote and ``1 - p`` on the other label, so a
    verdict's score is ``p`` for a positive label and ``1 - p`` for a negative one.
    """

    name = "scripted"

    def __init__(
        self,
        script: Callable[[str], str] | Mapping[str, str],
        *,
        default: str | None = None,
        finish_reason: str = "stop",
        max_context_tokens: int | None = None,
        label_probability: float | None = None,
    ):
        if label_probability is not None and not 0.0 < label_probability < 1.0:
            raise ValueError(f"label_probability must be in (0, 1), got {label_probability}.")
        self.label_probability = label_probability
        self._script = script
        self._default = default
        self._finish_reason = finish_reason
        self.max_context_tokens = max_context_tokens
        self.calls: list[list[str]] = []
        """Each ``generate`` call's prompts, so tests can check batching."""

    def _answer(self, prompt: str) -> str:
        if callable(self._script):
            return self._script(prompt)
        for key, output in self._script.items():
            if key in prompt:
                return output
        if self._default is None:
            raise KeyError(f"ScriptedEngine has no answer for this prompt: {prompt[-200:]!r}")
        return self._default

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Generation]:
        self.calls.append(list(prompts))
        outputs = []
        for prompt in prompts:
            text = self._answer(prompt)
            outputs.append(
                Generation(
                    text=text,
                    finish_reason=self._finish_reason,
                    num_generated_tokens=len(text.split()),
                    num_prompt_tokens=len(prompt.split()),
                    samples=(text,) * config.n,
                    label_logprobs=None
                    if self.label_probability is None
                    else word_label_logprobs(text, self.label_probability),
                )
            )
        return outputs

    def count_tokens(self, text: str) -> int:
        """Whitespace words stand in for tokens."""
        return len(text.split())


def _word_labels() -> LabelTokens:
    """Label candidates for whitespace-word tokens: each label word, with or without its leading space."""
    pairs = dict.fromkeys((task.positive, task.negative) for task in Task)
    choices = {}
    for (positive, negative), lead in ((pair, lead) for pair in pairs for lead in LEADS):
        ids = 2 * len(choices), 2 * len(choices) + 1
        choices[(positive, lead)] = LabelChoice(
            positive, negative, lead, (), lead + positive, lead + negative, *ids
        )
    texts = {}
    for c in choices.values():
        texts[c.positive_id], texts[c.negative_id] = c.positive, c.negative
    return LabelTokens(choices, texts)


WORD_LABELS = _word_labels()


def word_label_logprobs(text: str, probability: float) -> LabelLogprobs:
    """Log-probabilities over whitespace words: ``probability`` on each label word, the rest on its other."""
    other = {}
    for choice in WORD_LABELS.choices.values():
        other[choice.positive], other[choice.negative] = choice.negative, choice.positive
    tokens = tuple(_WORDS.findall(text))
    rows = tuple(
        {token: math.log(probability), other[token]: math.log(1 - probability)} if token in other else {}
        for token in tokens
    )
    return LabelLogprobs(tokens, rows, None, WORD_LABELS)
