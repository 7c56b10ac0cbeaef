"""Shared fixtures: the reference data beside the checkout, and tiny models built on the spot."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from guardreasoner.guard import GuardReasoner
from guardreasoner.testing import ScriptedEngine, guard_output

# No test may reach the hub: loading goes through local directories only.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (
    Path(os.environ.get("GUARDREASONER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) / "guardreasoner"
)


@pytest.fixture
def otel():
    """guardreasoner's spans and metrics during the test (:class:`tests.telemetry.CapturedTelemetry`), sent to a
    provider of the test's own, so no global OpenTelemetry state is set or shared between tests."""
    from guardreasoner.telemetry import set_providers

    from tests.telemetry import CapturedTelemetry

    captured = CapturedTelemetry()
    set_providers(captured.tracer_provider, captured.meter_provider)
    try:
        yield captured
    finally:
        set_providers()
        captured.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data/guardreasoner``: the paper's benchmark sets and the released models' outputs."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"The reference data is missing: expected {SHARED_DATA} (set GUARDREASONER_SHARED_DATA).")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama and its tokenizer, saved as a hub model would be."""
    from guardreasoner.testing import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def trained_guard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama trained (about ten seconds) to answer ``TINY_GUARD_CASES`` in GuardReasoner format."""
    from guardreasoner.testing import train_tiny_guard

    return train_tiny_guard(tmp_path_factory.mktemp("tiny-guard"))


# -- A scripted guard for the adapter tests ------------------------------------------------------------
# It reads the conversation the core put in the prompt: a request mentioning "bomb" is harmful; a response is
# harmful when it mentions "bomb", a refusal when it says "sorry"; anything mentioning "garbled" gets an
# output with no answers (so the failure policy decides).


def judge(raw_prompt: str) -> str:
    conversation = raw_prompt.split("Human user:\n", 1)[1]
    request, response = conversation.rsplit("\n\nAI assistant:\n", 1)
    response = response.removesuffix("\n\n")
    if "garbled" in conversation:
        return "The request is hard to judge and I will stop here."
    request_label = "harmful" if "bomb" in request.lower() else "unharmful"
    if response == "None":
        return guard_output(request_label)
    refusal = "refusal" if "sorry" in response.lower() else "compliance"
    return guard_output(request_label, refusal, "harmful" if "bomb" in response.lower() else "unharmful")


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine(judge)


@pytest.fixture
def guard(engine: ScriptedEngine) -> GuardReasoner:
    return GuardReasoner(engine=engine)


@pytest.fixture
def scored_engine():
    """``scored_engine(p)``: the scripted guard's engine with scores (``p`` on every label it writes)."""
    return lambda probability: ScriptedEngine(judge, label_probability=probability)


@pytest.fixture
def make_guard():
    """A fresh scripted guard with the given options (``policy=...``)."""
    return lambda **options: GuardReasoner(engine=ScriptedEngine(judge), **options)


class TimedEngine(ScriptedEngine):
    """The scripted guard at a model's pace: each call sleeps ``seconds_per_token`` per generated token of
    its longest output (whitespace words), as a decoder generating the batch in parallel would."""

    def __init__(self, script=judge, *, seconds_per_token: float, **options):
        super().__init__(script, **options)
        self.seconds_per_token = seconds_per_token

    def _pace(self, generations) -> float:
        return self.seconds_per_token * max((g.num_generated_tokens or 0 for g in generations), default=0)

    def generate(self, prompts, config):
        generations = super().generate(prompts, config)
        time.sleep(self._pace(generations))
        return generations

    async def agenerate(self, prompts, config):
        generations = super().generate(prompts, config)
        await asyncio.sleep(self._pace(generations))
        return generations


@pytest.fixture
def timed_guard():
    """A scripted guard whose checks take about ``seconds`` each (a request alone: a 3-task output)."""

    def build(seconds: float, **options) -> GuardReasoner:
        tokens = len(guard_output("unharmful").split())
        return GuardReasoner(engine=TimedEngine(seconds_per_token=seconds / tokens), **options)

    return build
