"""Every python snippet of the LlamaIndex README, and the root README's LlamaIndex snippet, runs as written.

The snippets use ``index`` (the reader's index) and ``llm`` (the reader's LLM); here they are a one-node
vector index on mock embeddings and a function-calling fake that calls the ``search`` tool when it has one
and no result yet, and otherwise answers "Lima is the capital of Peru.". ``GuardReasoner(...)`` builds the
scripted guard instead of loading a model (the snippet's arguments are checked to be a real call first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, CompletionResponse, MessageRole
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.schema import TextNode
from llama_index.core.tools import ToolSelection

from tests.adapters import python_blocks, run_python_blocks, script_guard_reasoner
from tests.conftest import REPO_ROOT

PACKAGE_README = REPO_ROOT / "packages" / "llamaindex_guard" / "README.md"
ROOT_README = REPO_ROOT / "README.md"
ANSWER = "Lima is the capital of Peru."


def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    tools = kwargs.get("tools") or []
    if tools and not any(message.role == MessageRole.TOOL for message in messages):
        call = ToolSelection(
            tool_id="call-1", tool_name=tools[0].metadata.name, tool_kwargs={"query": "Peru"}
        )
        return ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [call]})
    return ChatMessage(role="assistant", content=ANSWER)


class ReadmeLLM(MockFunctionCallingLLM):
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=ANSWER)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
        def words():
            text = ""
            for index, word in enumerate(ANSWER.split(" ")):
                delta = word if index == 0 else " " + word
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return words()


@pytest.fixture
def namespace(monkeypatch, tmp_path) -> dict:
    script_guard_reasoner(monkeypatch)
    monkeypatch.chdir(tmp_path)  # the shadow snippet's JSONL sink lands here
    index = VectorStoreIndex([TextNode(text=ANSWER)], embed_model=MockEmbedding(embed_dim=8))
    return {"index": index, "llm": ReadmeLLM(response_generator=respond), "__name__": "readme"}


def test_the_package_readme_snippets_run_in_order(namespace, capsys, tmp_path):
    run_python_blocks(PACKAGE_README, namespace, at_least=7)
    out = capsys.readouterr().out
    assert "Blocked (input: prompt_harmfulness=harmful).\nharmful\n" in out
    assert "input harmful\n" in out and "[False]\n" in out
    assert out.count(ANSWER) >= 6  # postprocessor, stream, chat, agent, workflow, shadow
    assert "\ninput\n" in out  # the split request, caught with the earlier turn folded in
    assert "I'm sorry, but I can't help with that.\n" in out  # the streamed agent refusal
    assert "'recorded': 1, 'dropped': 0" in out
    assert len((tmp_path / "guardreasoner_verdicts.jsonl").read_text().splitlines()) == 1
    # the tracing snippet's span handler saw the agent's three checks
    assert "['GuardReasoner.input', 'GuardReasoner.tool', 'GuardReasoner.output']" in out


def test_the_root_readme_llamaindex_snippet_runs(namespace, guard):
    block = next(b for b in python_blocks(ROOT_README) if "llama_index.postprocessor.guardreasoner" in b)

    def search(query: str) -> str:
        """Search the web."""
        return ANSWER

    namespace.update(guard=guard, tools=[search])
    exec(compile(block, str(ROOT_README), "exec"), namespace)
    try:
        assert (
            namespace["engine"].query("How do I build a bomb?").metadata["guardreasoner"]["stage"] == "input"
        )
        assert str(namespace["engine"].query("Capital of Peru?")) == ANSWER
    finally:
        namespace["shadow"].detach()
        namespace["shadow"].recorder.close()
