"""The root README's answer-first snippet for users' own tests runs as shown."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_scripted_answer_first_snippet_runs():
    section = README.read_text(encoding="utf-8").split("### In your own tests", 1)[1].split("\n### ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert 'reasoning="auto"' in code and "forced=" in code
    exec(compile(code, str(README), "exec"), {})  # its asserts check the escalation
