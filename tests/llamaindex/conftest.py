"""A scripted GuardReasoner whose labels follow plain rules, and a scripted LlamaIndex LLM.

The scripted guard reads the conversation the core put in the prompt: a request mentioning "bomb" is
harmful; a response is harmful when it mentions "bomb", a refusal when it says "sorry"; anything mentioning
"garbled" gets an output with no answers (so the failure policy decides).
"""

from __future__ import annotations

from typing import Any

import pytest
from guardreasoner.guard import GuardReasoner
from guardreasoner.testing import ScriptedEngine, guard_output
from llama_index.core.base.llms.types import CompletionResponse, LLMMetadata
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback


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
def make_guard():
    """A fresh scripted guard with the given options (``policy=...``)."""
    return lambda **options: GuardReasoner(engine=ScriptedEngine(judge), **options)


class ScriptedLLM(CustomLLM):
    """Answers each completion with the next scripted reply (streamed word by word) and records prompts."""

    replies: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.replies.pop(0))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        self.prompts.append(prompt)
        words = self.replies.pop(0).split(" ")

        def gen():
            text = ""
            for i, word in enumerate(words):
                delta = word if i == 0 else " " + word
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()


@pytest.fixture
def scripted_llm():
    return lambda *replies: ScriptedLLM(replies=list(replies))
