"""The paper's 13 benchmarks: 11 datasets scored on three tasks.

Names are the upstream prediction folder names, typos included (``XSTestReponseHarmful``), so that released
prediction folders are read as they are. The order is the paper's table order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from guardreasoner.errors import EvaluationError
from guardreasoner.tasks import Task


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
    task: Task
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
    Benchmark(TOXIC_CHAT, Task.PROMPT_HARMFULNESS),
    Benchmark(HARMBENCH_PROMPT, Task.PROMPT_HARMFULNESS),
    Benchmark(OPENAI_MODERATION, Task.PROMPT_HARMFULNESS),
    Benchmark(AEGIS, Task.PROMPT_HARMFULNESS),
    Benchmark(SIMPLE_SAFETY, Task.PROMPT_HARMFULNESS),
    Benchmark(WILDGUARD, Task.PROMPT_HARMFULNESS, _WILD, "prompt_harm_label"),
    Benchmark(HARMBENCH_RESPONSE, Task.RESPONSE_HARMFULNESS),
    Benchmark(SAFE_RLHF, Task.RESPONSE_HARMFULNESS, _ANSWERS),
    Benchmark(BEAVER_TAILS, Task.RESPONSE_HARMFULNESS, _ANSWERS),
    Benchmark(XSTEST_HARMFUL, Task.RESPONSE_HARMFULNESS),
    Benchmark(WILDGUARD, Task.RESPONSE_HARMFULNESS, _WILD, "response_harm_label"),
    Benchmark(XSTEST_REFUSAL, Task.RESPONSE_REFUSAL),
    Benchmark(WILDGUARD, Task.RESPONSE_REFUSAL, _WILD, "response_refusal_label"),
)
"""In the column order of the paper's tables."""


def benchmarks_for(task: Task) -> list[Benchmark]:
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
