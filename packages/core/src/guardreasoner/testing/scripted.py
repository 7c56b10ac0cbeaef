"""A deterministic engine for tests: no model, outputs chosen by the caller."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from guardreasoner.engines.base import Engine, Generation, GenerationConfig
from guardreasoner.engines.forcing import PROMPT_ANSWER_OPENING, opened
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


@dataclass(frozen=True)
class ForcedAnswer:
    """What a :class:`ScriptedEngine` writes after the forced answer opening (``reasoning="auto"`` or
    ``"never"``), and how sure it is: ``probability`` on each label it writes, as ``label_probability`` does
    for whole outputs (None: no log-probabilities, as from a server that returns none)."""

    text: str
    probability: float | None = None

    def __post_init__(self) -> None:
        if self.probability is not None and not 0.0 < self.probability < 1.0:
            raise ValueError(f"probability must be in (0, 1) or None, got {self.probability}.")


def forced_answer(
    prompt_harmfulness: str,
    response_refusal: str | None = None,
    response_harmfulness: str | None = None,
    *,
    probability: float | None = 0.99,
) -> ForcedAnswer:
    """The label lines of an answer block (None prints as ``None``), written with ``probability``."""
    labels = {
        Task.PROMPT_HARMFULNESS: prompt_harmfulness,
        Task.RESPONSE_REFUSAL: response_refusal,
        Task.RESPONSE_HARMFULNESS: response_harmfulness,
    }
    return ForcedAnswer(answer_block(labels).partition("\n")[2], probability)


ForcedScript = Callable[[str], ForcedAnswer] | Mapping[str, ForcedAnswer]


class ScriptedEngine(Engine):
    """Answers each raw prompt with ``script(prompt)``, or from a table keyed by a substring of the prompt.

    With a table, the first key found in the prompt wins; a prompt matching no key gets ``default`` (which,
    left as None, raises so that a test never passes on an unplanned input).

    With ``label_probability=p``, each generation carries log-probabilities as a model's would (whitespace
    words stand in for tokens): ``p`` on every label word it wrote and ``1 - p`` on the other label, so a
    verdict's score is ``p`` for a positive label and ``1 - p`` for a negative one.

    ``forced`` scripts the answer forced right after the prompt (``reasoning="auto"`` and ``"never"``): a
    function of the prompt or a table keyed by substrings, as ``script``, of :class:`ForcedAnswer` (see
    :func:`forced_answer`), with ``forced_default`` for a prompt matching no key. Without ``forced`` the
    engine cannot force answers, and a guard with those modes refuses it.
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
        forced: ForcedScript | None = None,
        forced_default: ForcedAnswer | None = None,
    ):
        if label_probability is not None and not 0.0 < label_probability < 1.0:
            raise ValueError(f"label_probability must be in (0, 1), got {label_probability}.")
        self.label_probability = label_probability
        self._script = script
        self._default = default
        self._finish_reason = finish_reason
        self.max_context_tokens = max_context_tokens
        self._forced = forced
        self._forced_default = forced_default
        self.calls: list[list[str]] = []
        """Each ``generate`` call's prompts, so tests can check batching."""
        self.forced_calls: list[list[str]] = []
        """Each ``force_answers`` call's prompts."""

    def _answer(self, prompt: str) -> str:
        return _lookup(self._script, self._default, prompt, "answer")

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

    def force_answers(self, prompts: list[str], *, timeout: float | None = None) -> list[Generation]:
        self.forced_calls.append(list(prompts))
        generations = []
        for prompt in prompts:
            answer = _lookup(self._forced, self._forced_default, prompt, "forced answer")
            generation = Generation(
                text=answer.text,
                finish_reason=self._finish_reason,
                num_generated_tokens=len(answer.text.split()),
                num_prompt_tokens=len((prompt + PROMPT_ANSWER_OPENING).split()),
                label_logprobs=None
                if answer.probability is None
                else word_label_logprobs(answer.text, answer.probability),
            )
            generations.append(opened(generation))
        return generations

    def forced_answer_unsupported(self) -> str | None:
        if self._forced is None:
            return (
                "This ScriptedEngine has no forced answers to give: build it with forced= (a function of the "
                "prompt or a table of guardreasoner.testing.forced_answer(...)) for reasoning='auto' or 'never'."
            )
        return None

    def count_tokens(self, text: str) -> int:
        """Whitespace words stand in for tokens."""
        return len(text.split())


def _lookup(script, default, prompt: str, what: str):
    """``script(prompt)``, or the first table entry whose key is in the prompt, else ``default`` (None: raise,
    so that a test never passes on an unplanned input)."""
    if callable(script):
        return script(prompt)
    for key, answer in script.items():
        if key in prompt:
            return answer
    if default is None:
        raise KeyError(f"ScriptedEngine has no {what} for this prompt: {prompt[-200:]!r}")
    return default


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
