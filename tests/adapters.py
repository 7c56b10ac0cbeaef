"""What the LangChain and LlamaIndex adapter tests share: running a README's python blocks (with
``GuardReasoner(...)`` building the scripted guard of ``tests.conftest.judge`` instead of loading a model),
checking that a guarded wrapper applies the options it was given, showing traces as the READMEs do, and the
scripted guard's forced answers (``reasoning="auto"``)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import guardreasoner
import pytest
from guardreasoner.guard import GuardReasoner
from guardreasoner.integrations import GuardedOptions
from guardreasoner.parsing import parse_output
from guardreasoner.prompt import split_prompt
from guardreasoner.testing import ForcedAnswer, ScriptedEngine, forced_answer

from tests.conftest import judge


def python_blocks(path: Path) -> list[str]:
    return fenced_blocks(path, "python")


def fenced_blocks(path: Path, language: str) -> list[str]:
    """The README's code blocks fenced as ``language`` (```` ```python ````, ```` ```text ````...)."""
    pattern = rf"```{re.escape(language)}\n(.*?)```"
    return re.findall(pattern, path.read_text(encoding="utf-8"), flags=re.DOTALL)


def run_python_blocks(path: Path, namespace: dict, *, at_least: int) -> None:
    """Run the README's python blocks in order in one namespace, as a reader would (and at least that many,
    so a README that lost its snippets fails)."""
    blocks = python_blocks(path)
    assert len(blocks) >= at_least
    for block in blocks:
        exec(compile(block, str(path), "exec"), namespace)


def script_guard_reasoner(monkeypatch: pytest.MonkeyPatch) -> None:
    """``guardreasoner.GuardReasoner(...)`` in a snippet builds the scripted guard, once the snippet's
    arguments are checked to be a valid call of the real constructor."""

    def scripted(*args, **options) -> GuardReasoner:
        inspect.signature(GuardReasoner).bind(*args, **options)
        return GuardReasoner(engine=ScriptedEngine(judge))

    monkeypatch.setattr(guardreasoner, "GuardReasoner", scripted)


def assert_options_applied(wrapper: object, options: dict) -> None:
    """Each option reads back from the wrapper's :class:`~guardreasoner.integrations.Guarding` as given (a
    keyword its constructor declares but does not hand over would read as the default), and a wrapper with
    the options as attributes does not let them be changed afterwards."""
    guarding = wrapper._guarding
    assert {name: getattr(guarding, name) for name in options} == options
    if isinstance(wrapper, GuardedOptions):
        assert {name: getattr(wrapper, name) for name in options} == options
        with pytest.raises(AttributeError, match="set when the guarded wrapper is built"):
            wrapper.check_input = not wrapper.check_input


def render_tree(roots: list, *, children, label) -> str:
    """The trees under ``roots`` as indented text (``├──``/``└──``), each node's children from
    ``children(node)`` in the order given, each line ``label(node)``: what the READMEs show."""
    lines: list[str] = []

    def visit(node, prefix: str, connector: str, below: str) -> None:
        lines.append(prefix + connector + label(node))
        kids = children(node)
        for index, kid in enumerate(kids):
            last = index == len(kids) - 1
            visit(kid, prefix + below, "└── " if last else "├── ", "    " if last else "│   ")

    for root in roots:
        visit(root, "", "", "")
    return "\n".join(lines)


def overlap(a, b) -> bool:
    """Whether two records' times overlap (LangChain runs, LlamaIndex spans: ``start_time``, ``end_time``)."""
    return a.start_time < b.end_time and b.start_time < a.end_time


def canonical_tree(text: str) -> list:
    """A rendered tree with each node's children sorted: two renderings are equal whatever the order of
    siblings that ran side by side (a check beside the model call it guards)."""
    nodes: list = []
    stack: list[tuple[int, list]] = [(-1, nodes)]
    for line in text.strip("\n").splitlines():
        name = line.lstrip("│├└─ ")
        depth = (len(line) - len(name)) // 4
        while stack[-1][0] >= depth:
            stack.pop()
        kids: list = []
        stack[-1][1].append((name, kids))
        stack.append((depth, kids))

    def sort(tree: list) -> list:
        return sorted((name, sort(kids)) for name, kids in tree)

    return sort(nodes)


def forced_judge(raw_prompt: str) -> ForcedAnswer:
    """What ``judge`` reasons to, forced right after the prompt and sure (0.99); a request saying ``unsure``
    gets the other request label at 0.6 (inside the default band), so only its reasoning gets it right."""
    request, response = split_prompt(raw_prompt)
    reasoned = parse_output(judge(raw_prompt), has_response=response is not None)
    labels = [reasoned.prompt_harmfulness, reasoned.response_refusal, reasoned.response_harmfulness]
    if "unsure" not in request:
        return forced_answer(*labels, probability=0.99)
    labels[0] = "unharmful" if labels[0] == "harmful" else "harmful"
    return forced_answer(*labels, probability=0.6)


def answer_first_engine() -> ScriptedEngine:
    """The scripted guard's engine with forced answers (:func:`forced_judge`)."""
    return ScriptedEngine(judge, forced=forced_judge)
