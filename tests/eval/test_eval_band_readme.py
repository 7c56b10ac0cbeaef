"""The root README's snippet that calibrates a band on your own conversations runs as written (on the
scripted guard with forced answers instead of the weights it names)."""

from __future__ import annotations

import inspect

import guardreasoner
from guardreasoner.engines import Engine
from guardreasoner.eval.band import EMPTY_BAND
from guardreasoner.guard import GuardReasoner
from guardreasoner.reasoning import load_reasoning_band

from tests.adapters import answer_first_engine, python_blocks
from tests.conftest import REPO_ROOT


def test_the_own_conversations_snippet_writes_a_band_the_guard_reads(tmp_path, monkeypatch, capsys):
    (block,) = [b for b in python_blocks(REPO_ROOT / "README.md") if "calibrate_band(" in b]

    def scripted(*args, engine="auto", **options) -> GuardReasoner:
        inspect.signature(GuardReasoner).bind(*args, engine=engine, **options)
        return GuardReasoner(
            engine=engine if isinstance(engine, Engine) else answer_first_engine(), **options
        )

    monkeypatch.setattr(guardreasoner, "GuardReasoner", scripted)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    # The scripted forced answers agree with the reasoned ones and are sure: nothing needs reasoning.
    assert load_reasoning_band(tmp_path / "reasoning_band.json") == EMPTY_BAND
    assert capsys.readouterr().out == "[0.5, 0.5] 1.0 0.0\n"
