"""Running the real command lines as a user does: a subprocess, a narrow terminal, a long working path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPTED_ENGINE_MODULE = textwrap.dedent(
    '''
    """Engines for ``--engine cli_engines:NAME``. ``scripted`` logs each prompt's first record marker."""
    import os

    from guardreasoner.testing import ScriptedEngine, guard_output

    TABLE = {
        "BOMB": guard_output("harmful"),
        "GARBLED": "I looked at it and will stop here.",
        "BRACKETS": guard_output("unharmful", reasoning="It quotes [/INST] and [bold]text[/bold] verbatim."),
    }


    def scripted():
        def answer(prompt):
            log = os.environ.get("CLI_ENGINE_LOG")
            if log:
                with open(log, "a", encoding="utf-8") as handle:
                    handle.write(prompt.rsplit("Human user:\\n", 1)[1].split("\\n", 1)[0] + "\\n")
            for key, output in TABLE.items():
                if key in prompt.rsplit("Human user:", 1)[1]:
                    return output
            return guard_output("unharmful")

        return ScriptedEngine(answer)


    def small_context():
        """The instruction plus 60 words (the scripted engine counts words as tokens)."""
        from guardreasoner.prompt import INSTRUCTION

        return ScriptedEngine(lambda prompt: guard_output("unharmful"), max_context_tokens=len(INSTRUCTION.split()) + 60)


    not_an_engine = 42
    '''
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working folder under a long path, as CI clones use."""
    path = tmp_path / ("a-very-long-directory-name-like-ci-uses-for-its-clones-" * 2) / "work"
    path.mkdir(parents=True)
    (path / "cli_engines.py").write_text(SCRIPTED_ENGINE_MODULE, encoding="utf-8")
    return path


@pytest.fixture
def run(workdir: Path):
    """``run("classify", ...)``: ``python -m guardreasoner`` in ``workdir`` with COLUMNS=60, no TTY."""

    def invoke(*args: object, module: str = "guardreasoner", env: dict | None = None, timeout: float = 120):
        environment = {**os.environ, "COLUMNS": "60", "NO_COLOR": "1", **(env or {})}
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(workdir), *filter(None, [environment.get("PYTHONPATH")])]
        )
        return subprocess.run(
            [sys.executable, "-m", module, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=workdir,
            env=environment,
        )

    return invoke


@pytest.fixture
def error_line():
    """``error_line(result)``: the one ``error: ...`` line a failed command prints (no traceback, no other)."""
    return _error_line


def _error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]
