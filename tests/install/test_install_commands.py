"""The READMEs' checkout install commands for the adapters work in a fresh virtual environment.

Each command documented in a README (root or package) that installs an adapter folder
(``./packages/langchain_guard``, ``./packages/llamaindex_guard``) runs as written, from the repository root,
in a new ``python -m venv`` per adapter; then the adapter's import name must import there. pip resolves the
frameworks from the package registry (through its cache), under CI's pins (``PIP_CONSTRAINT`` set to
``.ci/constraints.txt``, so the resolver does not search versions; the command itself is as written). The index command (``pip install
"guardreasoner[langchain]"``) is not run: the packages are not published from this checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

ADAPTERS = {
    "langchain_guard": "langchain_guardreasoner",
    "llamaindex_guard": "llama_index.postprocessor.guardreasoner",
}
READMES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "packages").glob("*/README.md"))]


def documented_commands(folder: str) -> list[str]:
    """``pip install ...`` commands (in code, comments dropped) that name ``./packages/<folder>``."""
    commands = []
    for readme in READMES:
        for match in re.finditer(r"pip install [^`\n#]*", readme.read_text(encoding="utf-8")):
            command = match.group(0).strip()
            if re.search(rf"\./packages/{folder}\b", command) and command not in commands:
                commands.append(command)
    return commands


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["langchain_guard", "llamaindex_guard"])
def test_the_documented_checkout_install_works_in_a_fresh_venv(tmp_path: Path, folder: str):
    commands = documented_commands(folder)
    assert commands, f"no README documents a checkout install of ./packages/{folder}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bin_dir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    for command in commands:
        args = command.split(" ", 2)[2]  # after "pip install"
        result = subprocess.run(
            f'"{bin_dir / "python"}" -m pip install --disable-pip-version-check --quiet {args}',
            shell=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PIP_CONSTRAINT": str(REPO_ROOT / ".ci" / "constraints.txt")},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{command!r} failed:\n{result.stderr[-3000:]}"
        imported = subprocess.run(
            [str(bin_dir / "python"), "-c", f"import {ADAPTERS[folder]}"], capture_output=True, text=True
        )
        assert imported.returncode == 0, f"after {command!r}: {imported.stderr[-2000:]}"


def test_every_adapter_command_found_names_a_real_folder():
    for folder in ADAPTERS:
        for command in documented_commands(folder):
            for path in re.findall(r"\./packages/[\w-]+", command):
                assert (REPO_ROOT / path).is_dir(), f"{command!r} names a missing folder {path}"
