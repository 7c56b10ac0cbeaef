"""``classify --reasoning auto|never --reasoning-band``: what a reader and a script see, and options checked
before any model loads."""

from __future__ import annotations

import json
import textwrap

import pytest
from guardreasoner import ReasoningBand, Verdict
from guardreasoner.cli import app
from guardreasoner.reasoning import write_reasoning_band
from typer.testing import CliRunner

# Forced answers: sure (0.99) unless the request says UNSURE (0.6 on a wrong "unharmful": P(harmful) 0.4).
ENGINES = textwrap.dedent(
    """
    from guardreasoner.testing import ScriptedEngine, forced_answer, guard_output


    def request(prompt):
        return prompt.rsplit("Human user:", 1)[1].split("AI assistant:", 1)[0]


    def forced(prompt):
        if "UNSURE" in request(prompt):
            return forced_answer("unharmful", probability=0.6)
        return forced_answer("harmful" if "BOMB" in request(prompt) else "unharmful", probability=0.99)


    def answer_first():
        harmful = lambda prompt: "BOMB" in request(prompt) or "UNSURE" in request(prompt)
        return ScriptedEngine(lambda p: guard_output("harmful" if harmful(p) else "unharmful"), forced=forced)
    """
)
ENGINE = ("--engine", "answer_first_engines:answer_first")


@pytest.fixture
def engines(workdir):
    (workdir / "answer_first_engines.py").write_text(ENGINES, encoding="utf-8")
    return workdir


def test_the_reader_sees_whether_the_verdict_was_reasoned(run, engines):
    decided = run("classify", *ENGINE, "--reasoning", "auto", "--prompt", "Bake bread?")
    assert decided.returncode == 0, decided.stderr
    assert "Reasoning: answered without reasoning (--reasoning auto, band [0.05, 0.95]): forced-answer " \
        "scores prompt_harmfulness 0.01." in decided.stdout  # fmt: skip
    assert "Task 1" not in decided.stdout  # no reasoning to show
    reasoned = run("classify", *ENGINE, "--reasoning", "auto", "--prompt", "UNSURE: a BOMB?")
    assert reasoned.returncode == 1, reasoned.stderr
    assert "Reasoning: reasoned in full (--reasoning auto): the forced answer's prompt_harmfulness score 0.4 " \
        "is inside the reasoning band [0.05, 0.95]." in reasoned.stdout  # fmt: skip
    assert "Task 1" in reasoned.stdout


def test_json_and_input_files_carry_the_reasoning_fields_with_a_band_file(run, engines, workdir):
    write_reasoning_band(workdir / "band.json", (0.3, 0.7), {"target_agreement": 0.99})
    result = run(
        "classify",
        *ENGINE,
        "--reasoning",
        "auto",
        "--reasoning-band",
        "band.json",
        "--prompt",
        "UNSURE",
        "--json",
    )
    verdict = Verdict.model_validate_json(result.stdout)
    assert (verdict.reasoning_mode, verdict.reasoned, verdict.reasoning_band) == (
        "auto",
        True,
        ReasoningBand(low=0.3, high=0.7),
    )
    assert (
        verdict.first_pass_scores == {"prompt_harmfulness": pytest.approx(0.4)}
        and verdict.first_pass_tokens == 6
    )

    records = [{"prompt": "Bake bread?"}, {"prompt": "UNSURE: bread?"}, {"prompt": "A BOMB?"}]
    (workdir / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run(
        "classify", *ENGINE, "--input", "in.jsonl", "--reasoning", "auto", "--reasoning-band", "0.3,0.7"
    )
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["reasoned"], r["is_harmful"]) for r in lines] == [
        (1, False, False),
        (2, True, True),
        (3, False, True),
    ]
    assert (
        "3 conversation(s), 0 from an earlier run: 1 safe, 2 harmful, 0 undecided; 1 reasoned in full "
        "(--reasoning auto); exit status 1." in result.stderr
    )
    never = run("classify", *ENGINE, "--input", "in.jsonl", "--reasoning", "never", "--json")
    assert [json.loads(line)["reasoned"] for line in never.stdout.splitlines()] == [False] * 3
    assert "0 reasoned in full (--reasoning never)" in never.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--reasoning", "sometimes"), "error: --reasoning 'sometimes' is not a mode; choose one of always, auto, never."),
        (("--reasoning-band", "0.1,0.9"), "error: --reasoning-band goes with --reasoning auto or never;"),
        (("--reasoning", "auto", "--reasoning-band", "0.9,0.1"), "error: --reasoning-band '0.9,0.1' is not a reasoning band (low (0.9) must not be above high (0.1))"),
        (("--reasoning", "auto", "--reasoning-band", "0.1,0.5,0.9"), "error: --reasoning-band '0.1,0.5,0.9' must be two numbers"),
        (("--reasoning", "auto", "--reasoning-band", "low,high"), "error: --reasoning-band 'low,high' is neither LOW,HIGH"),
        (("--reasoning", "never", "--reasoning-band", "missing.json"), "error: --reasoning-band: Cannot read the reasoning band file missing.json"),
        (("--reasoning", "never", "--reasoning-band", "{tmp}/bad.json"), "must hold a JSON object {\"reasoning_band\""),
    ],
)  # fmt: skip
def test_bad_reasoning_options_are_one_error_line_before_any_model_loads(args, message, tmp_path, error_line):
    (tmp_path / "bad.json").write_text('{"thresholds": {}}')
    arguments = [arg.format(tmp=tmp_path) for arg in args]
    result = CliRunner().invoke(
        app, ["classify", "--model", "no/such-model", "--engine", "hf", "--prompt", "x", *arguments]
    )
    assert result.exit_code == 2
    assert message in error_line(result)


def test_an_engine_without_forced_answers_is_refused_once(run, error_line):
    result = run("classify", "--engine", "cli_engines:scripted", "--reasoning", "auto", "--prompt", "hi")
    assert result.returncode == 2
    assert "reasoning='auto': This ScriptedEngine has no forced answers" in error_line(result)
