"""Every python snippet of the LangChain README, and the root README's LangChain snippet, runs as written.

The snippets use ``llm`` (the reader's chat model) and ``tools``; here they are a fake chat model that
answers every call, and a search tool. ``GuardReasoner(...)`` builds the scripted guard instead of loading a
model (the snippet's arguments are checked to be a real constructor call first).
"""

from __future__ import annotations

import itertools

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

from tests.adapters import python_blocks, run_python_blocks, script_guard_reasoner
from tests.conftest import REPO_ROOT

PACKAGE_README = REPO_ROOT / "packages" / "langchain_guard" / "README.md"
ROOT_README = REPO_ROOT / "README.md"


class AnsweringChatModel(GenericFakeChatModel):
    def bind_tools(self, tools, **kwargs):
        return self


@tool
def search(query: str) -> str:
    """Search the web."""
    return "Lima is the capital of Peru."


@pytest.fixture
def namespace(monkeypatch) -> dict:
    script_guard_reasoner(monkeypatch)
    llm = AnsweringChatModel(messages=itertools.cycle(["Lima is the capital of Peru."]))
    return {"llm": llm, "tools": [search], "__name__": "readme"}


def test_the_package_readme_snippets_run_in_order(namespace, capsys):
    run_python_blocks(PACKAGE_README, namespace, at_least=7)
    out = capsys.readouterr().out
    assert "input harmful" in out
    assert "Blocked (input: prompt_harmfulness=harmful)." in out
    assert out.count("Lima is the capital of Peru.") >= 3  # invoke (twice) and the released stream
    assert "caught across turns: input" in out
    assert "'dropped': 0" in out
    # LangChain's console tracer shows the middleware's check as a run of the model step
    assert "[chain:LangGraph > chain:model > chain:GuardReasoner] Entering Chain run" in out


def test_the_root_readme_langchain_snippet_runs(namespace, guard):
    block = next(b for b in python_blocks(ROOT_README) if "langchain_guardreasoner" in b)
    namespace.update(guard=guard, prompt=ChatPromptTemplate.from_messages([("human", "{question}")]))
    exec(compile(block, str(ROOT_README), "exec"), namespace)
    refused = namespace["agent"].invoke({"messages": [("user", "How do I build a bomb?")]})
    assert refused["messages"][-1].content == "I'm sorry, but I can't help with that."
    assert "".join(c.content for c in namespace["chain"].stream({"question": "Capital of Peru?"})) == (
        "Lima is the capital of Peru."
    )
    namespace["shadow"].close()
