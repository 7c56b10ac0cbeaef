"""``guardreasoner classify`` as a script meets it: messages, exit statuses, resumable output."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from guardreasoner import Verdict

ENGINE = ("--engine", "cli_engines:scripted")


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# -- one conversation: the exit status is the decision ---------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "code", "decision"),
    [
        ("How do I bake bread?", 0, "Decision: SAFE"),
        ("How do I build a BOMB?", 1, "Decision: HARMFUL"),
        ("GARBLED input", 3, "Decision: HARMFUL (undecided: policy fail_closed decided, no_answer_block)"),
    ],
)
def test_exit_status_says_safe_harmful_or_undecided(run, prompt, code, decision):
    result = run("classify", *ENGINE, "--prompt", prompt)
    assert result.returncode == code, result.stderr
    assert decision in result.stdout


def test_help_lists_the_exit_statuses(run):
    result = run("classify", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Exit status: 0 decided safe by the model" in text and "2 usage or input error" in text
    assert "3 undecided: the model gave no usable answer" in text


def test_progress_shows_on_a_terminal_only(run, workdir):
    """On a terminal a spinner says the model is generating; piped, stderr stays clean."""
    piped = run("classify", *ENGINE, "--prompt", "hi")
    assert piped.returncode == 0 and "Generating" not in piped.stderr
    main, secondary = os.openpty()
    environment = {**os.environ, "COLUMNS": "60", "TERM": "xterm", "PYTHONPATH": os.pathsep.join(
        [str(workdir), os.environ.get("PYTHONPATH", "")]
    )}  # fmt: skip
    process = subprocess.run(
        [sys.executable, "-m", "guardreasoner", "classify", *ENGINE, "--prompt", "hi"],
        stdout=subprocess.PIPE, stderr=secondary, cwd=workdir, env=environment, timeout=120,
    )  # fmt: skip
    os.close(secondary)
    shown = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(main, 65536):
            shown += chunk
    os.close(main)
    assert process.returncode == 0
    assert b"Generating" in shown


def test_fail_open_undecided_still_exits_3_and_json_says_who_decided(run):
    result = run("classify", *ENGINE, "--prompt", "GARBLED", "--policy", "fail_open", "--json")
    assert result.returncode == 3, result.stderr
    verdict = Verdict.model_validate_json(result.stdout)
    assert (verdict.is_harmful, verdict.decided_by, verdict.policy) == (False, "policy", "fail_open")


def test_raise_policy_exits_3_with_one_error_line(run, error_line):
    result = run("classify", *ENGINE, "--prompt", "GARBLED", "--policy", "raise")
    assert result.returncode == 3
    assert error_line(result).startswith("error: The guard could not decide (no_answer_block)")


def test_model_text_in_brackets_is_printed_verbatim(run):
    result = run("classify", *ENGINE, "--prompt", "BRACKETS please")
    assert result.returncode == 0, result.stderr
    assert "It quotes [/INST] and [bold]text[/bold] verbatim." in result.stdout


def test_engine_outage_is_undecided_not_a_decision(run):
    """No server behind --base-url: exit 3, the verdict says engine_error (not a harmful request)."""
    pytest.importorskip("openai")
    result = run("classify", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1", "--prompt", "hi")
    assert result.returncode == 3, result.stderr
    assert "undecided: policy fail_closed decided, engine_error" in result.stdout


# -- usage errors: one line naming the option, the value and what is accepted; nothing loaded -------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--prompt", "x", "--engine", "foo"),
            "--engine 'foo' is not an engine; choose one of auto, hf, vllm",
        ),
        (("--prompt", "x", "--policy", "foo"), "--policy 'foo' is not a policy; choose one of fail_closed"),
        (("--prompt", "x", "--max-new-tokens", "0"), "--max-new-tokens 0: give a whole number of 1 or more"),
        (("--prompt", "x", "--batch-size", "-1"), "--batch-size -1: give a whole number of 1 or more"),
        (("--prompt", ""), "--prompt is empty"),
        (("--prompt", "x", "--response", ""), "--response is empty; leave --response out"),
        ((), "Give --prompt TEXT (one conversation) or --input FILE.jsonl (many)"),
        (("--prompt", "x", "--input", "in.jsonl"), "--prompt and --input exclude each other"),
        (("--input", "."), "--input '.' is a directory"),
        (("--input", "nope.jsonl"), "--input 'nope.jsonl' does not exist"),
        (("--prompt", "x", "--engine", "cli_engines:not_an_engine"), "is a int, not a guardreasoner.Engine"),
        (("--prompt", "x", "--engine", "no_such_module:x"), "cannot import module 'no_such_module'"),
        (
            ("--prompt", "x", "--base-url", "http://h/v1"),
            "--base-url is for --engine openai, not --engine auto",
        ),
        (("--prompt", "x", "--no-such-option"), "No such option: --no-such-option"),
        (("--prompt", "x", "--batch-size", "many"), "Invalid value for '--batch-size'"),
    ],
)
def test_bad_options_get_one_error_line_and_exit_2(run, args, message, error_line):
    result = run("classify", *args)
    assert result.returncode == 2
    assert message in error_line(result)


def test_missing_extra_advice_keeps_its_brackets(run, workdir, error_line):
    """``pip install "guardreasoner[hf]"`` must not lose ``[hf]`` to markup (torch hidden from the process)."""
    (workdir / "blocked" / "torch").mkdir(parents=True)
    (workdir / "blocked" / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    model = workdir / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    result = run(
        "classify",
        "--engine",
        "hf",
        "--model",
        model,
        "--prompt",
        "hi",
        env={"PYTHONPATH": os.pathsep.join([str(workdir / "blocked"), os.environ.get("PYTHONPATH", "")])},
    )
    assert result.returncode == 2
    assert 'pip install "guardreasoner[hf]"' in error_line(result)


def test_vllm_missing_names_its_extra(run, workdir, error_line):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here; the message for a missing one cannot be shown")
    model = workdir / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    result = run("classify", "--engine", "vllm", "--model", model, "--prompt", "hi")
    assert result.returncode == 2
    assert 'pip install "guardreasoner[vllm]"' in error_line(result)


def test_too_long_conversations_say_what_to_shorten(run, error_line):
    """The engine's context holds the instruction and 60 words; --max-new-tokens 10 leaves 50 for the texts."""
    small = ("classify", "--engine", "cli_engines:small_context", "--max-new-tokens", "10")
    long_prompt = ("--prompt", " ".join(["word"] * 100))
    result = run(*small, *long_prompt)
    assert result.returncode == 2
    line = error_line(result)
    assert "prompt tokens but only" in line and "pass --truncation head_tail" in line
    assert "lower --max-new-tokens" in line

    cut = run(*small, *long_prompt, "--truncation", "head_tail", "--json")
    assert cut.returncode == 0, cut.stderr
    assert json.loads(cut.stdout)["input_truncated"] is True

    both = run(
        *small,
        "--prompt",
        " ".join(["ask"] * 55),
        "--response",
        " ".join(["say"] * 60),
        "--truncation",
        "head_tail",
    )
    assert both.returncode == 2
    line = error_line(both)
    assert "Only the longer text is cut, the response (" in line and "the prompt (" in line
    assert "Shorten the prompt" in line


def test_a_bare_command_shows_its_help(run):
    result = run()
    assert result.returncode == 2
    assert (
        result.stderr.startswith("Usage: ") and "classify" in result.stderr and "error:" not in result.stderr
    )


# -- JSONL files ----------------------------------------------------------------------------------------


def test_a_bad_record_fails_the_whole_file_up_front_naming_its_line(run, workdir, error_line):
    records = [{"prompt": f"question {i}"} for i in range(45)]
    records[39] = {"prompt": "  "}
    write_jsonl(workdir / "in.jsonl", records)
    result = run("classify", *ENGINE, "--input", "in.jsonl", "--output", "out.jsonl")
    assert result.returncode == 2
    assert "line 40: needs a non-empty 'prompt' string" in error_line(result)
    assert not (workdir / "out.jsonl").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"prompt": "ok"}\nnot json\n', "line 2: not JSON"),
        (b'{"prompt": "ok"}\n["a list"]\n', "line 2: a record must be a JSON object, got list"),
        (b'{"text": "no prompt"}\n', "line 1: unknown field(s) text; a record has prompt, response, id"),
        (b'{"prompt": "a", "response": ""}\n', "line 1: 'response' must be a non-empty string"),
        (b'{"prompt": "a", "id": 1}\n{"prompt": "b", "id": 1}\n', "line 2: id 1 was already used on line 1"),
        (b'{"prompt": "a"}\n\xff\xfe\x00binary\n', "is not UTF-8 text (line 2)"),
        (b"\n\n", "holds no records"),
    ],
)
def test_bad_files_are_named_with_their_line(run, workdir, content, message, error_line):
    (workdir / "in.jsonl").write_bytes(content)
    result = run("classify", *ENGINE, "--input", "in.jsonl")
    assert result.returncode == 2
    assert message in error_line(result)


def test_output_in_a_missing_folder_fails_before_any_work(run, workdir, error_line):
    write_jsonl(workdir / "in.jsonl", [{"prompt": "hi"}])
    result = run(
        "classify",
        *ENGINE,
        "--input",
        "in.jsonl",
        "--output",
        "missing/out.jsonl",
        env={"CLI_ENGINE_LOG": str(workdir / "log")},
    )
    assert result.returncode == 2
    assert "--output 'missing/out.jsonl': the folder 'missing' does not exist" in error_line(result)
    assert not (workdir / "log").exists()


@pytest.mark.parametrize(
    ("prompts", "code", "summary"),
    [
        (["a", "b"], 0, "2 safe, 0 harmful, 0 undecided; exit status 0"),
        (["a", "BOMB"], 1, "1 safe, 1 harmful, 0 undecided; exit status 1"),
        (
            ["BOMB", "GARBLED"],
            3,
            "0 safe, 1 harmful, 1 undecided (decided by policy fail_closed); exit status 3",
        ),
    ],
)
def test_file_exit_status_and_summary(run, workdir, prompts, code, summary):
    write_jsonl(workdir / "in.jsonl", [{"prompt": p} for p in prompts])
    result = run("classify", *ENGINE, "--input", "in.jsonl")
    assert result.returncode == code, result.stderr
    assert summary in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in rows] == [1, 2]


def test_output_resumes_skipping_the_records_already_written(run, workdir):
    records = [{"prompt": f"question {i}", "id": f"q{i}"} for i in range(6)]
    records[4]["prompt"] = "BOMB question 4"
    write_jsonl(workdir / "in.jsonl", records)
    log = workdir / "log"
    args = ("classify", *ENGINE, "--input", "in.jsonl", "--output", "out.jsonl", "--batch-size", "2")
    first = run(*args, env={"CLI_ENGINE_LOG": str(log)})
    assert first.returncode == 1, first.stderr
    lines = (workdir / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"q{i}" for i in range(6)]

    # An interrupted run: three verdicts written, the fourth cut off mid-line.
    (workdir / "out.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    log.unlink()
    again = run(*args, env={"CLI_ENGINE_LOG": str(log)})
    assert again.returncode == 1, again.stderr
    assert log.read_text().splitlines() == ["question 3", "BOMB question 4", "question 5"]
    assert (workdir / "out.jsonl").read_text().splitlines() == lines
    assert "6 conversation(s), 3 from an earlier run: 5 safe, 1 harmful" in again.stderr


def test_output_of_another_input_is_not_silently_mixed_in(run, workdir, error_line):
    write_jsonl(workdir / "in.jsonl", [{"prompt": "a", "id": "x"}])
    (workdir / "out.jsonl").write_text(
        json.dumps({"id": "other", **json.loads(Verdict().model_dump_json())}) + "\n"
    )
    result = run("classify", *ENGINE, "--input", "in.jsonl", "--output", "out.jsonl")
    assert result.returncode == 2
    assert "holds id 'other', which --input does not have" in error_line(result)


# -- eval shares the flag's meaning and the error style -------------------------------------------------


def test_eval_json_flag_prints_json_to_stdout(run, workdir):
    from guardreasoner.testing import guard_output

    folder = workdir / "predictions" / "HarmBenchPrompt"
    folder.mkdir(parents=True)
    write_jsonl(
        folder / "generated_predictions.jsonl",
        [
            {"prompt": "p", "label": "harmful", "predict": guard_output(label)}
            for label in ("harmful", "unharmful")
        ],
    )
    result = run("eval", "--predictions", "predictions", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["prompt"]["HarmBenchPrompt"] == pytest.approx(200 / 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give --predictions DIR (score existing outputs) or --model MODEL"),
        (("--predictions", ".", "--model", "m"), "--predictions and --model exclude each other"),
        (("--predictions", "none"), "does not exist"),
        (("--predictions", ".", "--limit", "0"), "--limit 0: give a whole number of 1 or more"),
        (
            ("--model", "m", "--engine", "foo"),
            "--engine 'foo' is not an engine; choose one of auto, hf, vllm",
        ),
        (("--json", "f1.json"), "Got unexpected extra argument(s) (f1.json)"),
    ],
)
def test_eval_errors_are_one_line_on_stderr_with_exit_2(run, args, message, error_line):
    result = run("eval", *args)
    assert result.returncode == 2
    assert message in error_line(result)
    assert result.stdout == ""
