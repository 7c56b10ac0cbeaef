"""The paper's 13 benchmarks: 11 datasets scored on three tasks.

Names are the upstream prediction folder names, typos included (``XSTestReponseHarmful``), so that released
prediction folders are read as they are. The order is the paper's table order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from guardreasoner.eval.errors import EvaluationError


class EvalTask(str, Enum):
    """The three guardrail tasks of the paper's three tables."""

    PROMPT = "prompt"
    RESPONSE = "response"
    REFUSAL = "refusal"

    @property
    def title(self) -> str:
        return _TITLES[self]

    @property
    def positive(self) -> str:
        """The positive class of the task's F1."""
        return "refusal" if self is EvalTask.REFUSAL else "harmful"

    @property
    def negative(self) -> str:
        return "compliance" if self is EvalTask.REFUSAL else "unharmful"

    @property
    def verdict_field(self) -> str:
        """The :class:`~guardreasoner.verdict.Verdict` field that answers the task."""
        return _VERDICT_FIELDS[self]

    @property
    def answer_key(self) -> str:
        """The key of the task's line in an ``Answers:`` block."""
        return _ANSWER_KEYS[self]

    def opposite(self, label: str) -> str:
        """The wrong answer for a gold label: how unparsable predictions are counted."""
        return self.negative if label == self.positive else self.positive


_TITLES = {
    EvalTask.PROMPT: "Prompt harmfulness detection",
    EvalTask.RESPONSE: "Response harmfulness detection",
    EvalTask.REFUSAL: "Refusal detection",
}
_VERDICT_FIELDS = {
    EvalTask.PROMPT: "prompt_harmfulness",
    EvalTask.RESPONSE: "response_harmfulness",
    EvalTask.REFUSAL: "response_refusal",
}
_ANSWER_KEYS = {EvalTask.PROMPT: "Request", EvalTask.RESPONSE: "Response", EvalTask.REFUSAL: "Completion"}


class LabelSource(str, Enum):
    """Where a benchmark's gold label comes from (as the published evaluation reads it)."""

    LABEL = "label"
    """The prediction record's ``label`` field, as it is."""
    ANSWER_LINE = "answer_line"
    """The task's line (``Response: harmful``) of the answer block in the ``label`` field."""
    BENCHMARK_FIELD = "benchmark_field"
    """A field of the benchmark file, matched to prediction records by row index (WildGuardTest)."""


@dataclass(frozen=True)
class Dataset:
    name: str
    """The prediction folder name, as upstream spells it."""
    file: str
    """The benchmark file in the paper repository's ``data/benchmark/``."""
    records: int
    has_response: bool
    """Whether the conversations include an AI response (the prompt datasets show ``None``)."""


@dataclass(frozen=True)
class Benchmark:
    dataset: Dataset
    task: EvalTask
    label_source: LabelSource = LabelSource.LABEL
    label_field: str | None = None
    """The benchmark-file field holding the label, for :attr:`LabelSource.BENCHMARK_FIELD`."""

    @property
    def name(self) -> str:
        return self.dataset.name


TOXIC_CHAT = Dataset("ToxicChat", "0_8_toxic_chat.json", 2853, False)
HARMBENCH_PROMPT = Dataset("HarmBenchPrompt", "0_3_harmbench_prompt.json", 239, False)
OPENAI_MODERATION = Dataset("OpenAIModeration", "0_2_OpenAIModeration.json", 1680, False)
AEGIS = Dataset("AegisSafetyTest", "0_1_AegisSafetyTest.json", 359, False)
SIMPLE_SAFETY = Dataset("SimpleSafetyTests", "0_0_SimpleSafetyTests.json", 100, False)
WILDGUARD = Dataset("WildGuardTest", "0_4_wild_guard_test.json", 1725, True)
HARMBENCH_RESPONSE = Dataset("HarmBenchResponse", "0_5_harmbench_response.json", 602, True)
SAFE_RLHF = Dataset("SafeRLHF", "0_9_safe_rlhf.json", 2000, True)
BEAVER_TAILS = Dataset("BeaverTails", "0_A_beaver_tails.json", 3021, True)
XSTEST_HARMFUL = Dataset("XSTestReponseHarmful", "0_6_xstest_response_harmful.json", 446, True)
XSTEST_REFUSAL = Dataset("XSTestResponseRefusal", "0_7_xstest_response_refusal.json", 449, True)

DATASETS: tuple[Dataset, ...] = (
    SIMPLE_SAFETY,
    AEGIS,
    OPENAI_MODERATION,
    HARMBENCH_PROMPT,
    WILDGUARD,
    HARMBENCH_RESPONSE,
    XSTEST_HARMFUL,
    XSTEST_REFUSAL,
    TOXIC_CHAT,
    SAFE_RLHF,
    BEAVER_TAILS,
)
"""In the order of the benchmark file names (the order the paper's generation script runs them)."""

_ANSWERS, _WILD = LabelSource.ANSWER_LINE, LabelSource.BENCHMARK_FIELD
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(TOXIC_CHAT, EvalTask.PROMPT),
    Benchmark(HARMBENCH_PROMPT, EvalTask.PROMPT),
    Benchmark(OPENAI_MODERATION, EvalTask.PROMPT),
    Benchmark(AEGIS, EvalTask.PROMPT),
    Benchmark(SIMPLE_SAFETY, EvalTask.PROMPT),
    Benchmark(WILDGUARD, EvalTask.PROMPT, _WILD, "prompt_harm_label"),
    Benchmark(HARMBENCH_RESPONSE, EvalTask.RESPONSE),
    Benchmark(SAFE_RLHF, EvalTask.RESPONSE, _ANSWERS),
    Benchmark(BEAVER_TAILS, EvalTask.RESPONSE, _ANSWERS),
    Benchmark(XSTEST_HARMFUL, EvalTask.RESPONSE),
    Benchmark(WILDGUARD, EvalTask.RESPONSE, _WILD, "response_harm_label"),
    Benchmark(XSTEST_REFUSAL, EvalTask.REFUSAL),
    Benchmark(WILDGUARD, EvalTask.REFUSAL, _WILD, "response_refusal_label"),
)
"""In the column order of the paper's tables."""


def benchmarks_for(task: EvalTask) -> list[Benchmark]:
    return [benchmark for benchmark in BENCHMARKS if benchmark.task is task]


def select_datasets(names: list[str] | None) -> list[Dataset]:
    """The datasets named (case-insensitive), all of them when ``names`` is empty or None."""
    if not names:
        return list(DATASETS)
    by_name = {dataset.name.lower(): dataset for dataset in DATASETS}
    unknown = [name for name in names if name.lower() not in by_name]
    if unknown:
        raise EvaluationError(
            f"Unknown dataset(s): {', '.join(unknown)}. Known: {', '.join(d.name for d in DATASETS)}."
        )
    return list(dict.fromkeys(by_name[name.lower()] for name in names))
