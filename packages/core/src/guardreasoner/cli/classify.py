"""``guardreasoner classify``: one conversation from flags, or many from a JSONL file.

Every option and the whole input file are checked before a model is loaded, so a mistake costs a second, not a
model load. The exit status says what was decided (see :class:`~guardreasoner.terminal.ExitCode`).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from guardreasoner.cli.options import (
    BaseUrlOption,
    DeviceOption,
    MaxNewTokensOption,
    ModelOption,
    ReasoningBandOption,
    ReasoningOption,
    check_reasoning,
)
from guardreasoner.engines import ENGINE_KINDS
from guardreasoner.errors import ContextLengthError, GuardReasonerError, GuardUndecidedError
from guardreasoner.model_source import DEFAULT_MODEL
from guardreasoner.policy import FailurePolicy
from guardreasoner.reasoning import ReasoningMode
from guardreasoner.terminal import ExitCode, check_positive, fail, progress_bar, spinner, stderr_console
from guardreasoner.verdict import Verdict

RECORD_KEYS = ("prompt", "response", "id")
POLICIES = tuple(policy.value for policy in FailurePolicy)
TRUNCATIONS = ("error", "head_tail")

EXIT_CODES_HELP = """\b
Exit status:
  0  decided safe by the model (--input: every conversation)
  1  decided harmful by the model (--input: any, none undecided)
  2  usage or input error; nothing was classified
  3  undecided: the model gave no usable answer (engine error,
     timeout, unparseable output) and --policy decided
     (--input: any such conversation)
"""


def classify_command(
    prompt: Annotated[str | None, typer.Option(help="The user's request.")] = None,
    response: Annotated[
        str | None, typer.Option(help="The AI's response (leave out to classify the request alone).")
    ] = None,
    input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="A JSONL file, one record a line: 'prompt', optional 'response', optional 'id' "
            "(default: the line number). The whole file is checked before the model loads.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="With --input: where to write one verdict a line, as JSON with the record's 'id' first "
            "(default: stdout). Rerunning with the same file skips the records already written."
        ),
    ] = None,
    model: ModelOption = DEFAULT_MODEL,
    engine: Annotated[
        str,
        typer.Option(
            help="auto, hf, vllm, openai, or MODULE:NAME, an importable guardreasoner.Engine instance or a "
            "function returning one (for example a ScriptedEngine in your tests; --model is then unused)."
        ),
    ] = "auto",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the verdict as JSON on stdout (with --input: always JSONL).")
    ] = False,
    policy: Annotated[
        str,
        typer.Option(help="fail_closed, fail_open or raise: what an undecided verdict counts as."),
    ] = FailurePolicy.FAIL_CLOSED.value,
    max_new_tokens: MaxNewTokensOption = 2048,
    batch_size: Annotated[int, typer.Option(help="With --input: conversations per engine call.")] = 32,
    truncation: Annotated[
        str,
        typer.Option(
            help="error: a conversation longer than the model's context minus --max-new-tokens is an error; "
            "head_tail: keep the head and tail of its longer text (the verdict says input_truncated)."
        ),
    ] = "error",
    base_url: BaseUrlOption = None,
    device: DeviceOption = None,
    thresholds: Annotated[
        Path | None,
        typer.Option(
            help="A thresholds file ('guardreasoner eval --calibrate' writes one): each task's label is the "
            "positive one when its score reaches the threshold."
        ),
    ] = None,
    reasoning: ReasoningOption = ReasoningMode.ALWAYS.value,
    reasoning_band: ReasoningBandOption = None,
) -> None:
    """Classify a conversation (--prompt/--response) or a JSONL file of them (--input)."""
    _check_options(prompt, response, input, output, engine, policy, base_url, device)
    mode, band = check_reasoning(reasoning, reasoning_band)
    check_positive(max_new_tokens=max_new_tokens, batch_size=batch_size)
    if truncation not in TRUNCATIONS:
        fail(f"--truncation '{truncation}' is not a mode; choose one of {', '.join(TRUNCATIONS)}.")
    records = read_records(input) if input is not None else []
    done = read_done(output, records) if output is not None else {}

    from guardreasoner.guard import GuardReasoner

    console = stderr_console()
    try:
        with console.status(f"Loading {model} ({engine})") if console.is_terminal else nullcontext():
            guard = GuardReasoner(
                engine=_load_engine_spec(engine) if ":" in engine else engine,
                policy=policy,
                max_new_tokens=max_new_tokens,
                truncation=truncation,
                thresholds=thresholds,
                reasoning=mode,
                reasoning_band=band,
                **({} if ":" in engine else {"model": model}),
                **{k: v for k, v in {"base_url": base_url, "device": device}.items() if v is not None},
            )
        with guard:
            if input is None:
                with spinner(console) as progress:
                    progress.add_task("Generating", total=None)
                    verdict = guard.classify(prompt, response)
                if json_output:
                    typer.echo(verdict.model_dump_json(indent=2))
                else:
                    _show(verdict)
                raise typer.Exit(int(exit_code([verdict])))
            verdicts = _classify_file(guard, records, done, output, batch_size, console)
    except GuardUndecidedError as exc:
        fail(str(exc), ExitCode.UNDECIDED)
    except ContextLengthError as exc:  # the library's advice, in the command line's words
        message = str(exc)
        for python, flag in (
            ("truncation='head_tail'", "--truncation head_tail"),
            ("max_new_tokens", "--max-new-tokens"),
        ):
            message = message.replace(python, flag)
        fail(message)
    except GuardReasonerError as exc:
        fail(str(exc), ExitCode.USAGE)
    code = exit_code(verdicts)
    counts = Counter(_outcome(v) for v in verdicts)
    undecided = f" (decided by policy {policy})" if counts["undecided"] else ""
    reasoned = (
        f"; {sum(v.reasoned for v in verdicts)} reasoned in full (--reasoning {mode.value})"
        if mode is not ReasoningMode.ALWAYS
        else ""
    )
    typer.echo(
        f"{len(verdicts)} conversation(s), {len(done)} from an earlier run: {counts['safe']} safe, "
        f"{counts['harmful']} harmful, {counts['undecided']} undecided{undecided}{reasoned}; "
        f"exit status {int(code)}.",
        err=True,
    )
    raise typer.Exit(int(code))


def _check_options(
    prompt: str | None,
    response: str | None,
    input: Path | None,
    output: Path | None,
    engine: str,
    policy: str,
    base_url: str | None,
    device: str | None,
) -> None:
    """Everything that can be checked without a model, each failure naming the option, value and choices."""
    if prompt is None and input is None:
        fail("Give --prompt TEXT (one conversation) or --input FILE.jsonl (many).")
    if prompt is not None and input is not None:
        fail(
            "--prompt and --input exclude each other: give --prompt for one conversation or --input for many."
        )
    if prompt is not None and not prompt.strip():
        fail("--prompt is empty; give the user's request to classify.")
    if response is not None and input is not None:
        fail("--response goes with --prompt; in an --input file, put 'response' in each record.")
    if response is not None and not response.strip():
        fail("--response is empty; leave --response out to classify the request alone.")
    if output is not None and input is None:
        fail("--output goes with --input; a single verdict goes to stdout (use --json for JSON).")
    if ":" not in engine and engine not in ENGINE_KINDS:
        fail(
            f"--engine '{engine}' is not an engine; choose one of {', '.join(ENGINE_KINDS)}, or MODULE:NAME."
        )
    if policy not in POLICIES:
        fail(f"--policy '{policy}' is not a policy; choose one of {', '.join(POLICIES)}.")
    if base_url is not None and engine != "openai":
        fail(f"--base-url is for --engine openai, not --engine {engine}.")
    if device is not None and engine not in ("hf", "auto"):
        fail(f"--device is for --engine hf, not --engine {engine}.")
    if input is not None:
        if input.is_dir():
            fail(f"--input '{input}' is a directory; give a JSONL file.")
        if not input.is_file():
            fail(f"--input '{input}' does not exist.")
    if output is not None:
        if output.is_dir():
            fail(f"--output '{output}' is a directory; give a file name.")
        if not output.parent.is_dir():
            fail(f"--output '{output}': the folder '{output.parent}' does not exist; create it first.")
        if input is not None and output.resolve() == input.resolve():
            fail(f"--output '{output}' is the --input file; give another file.")


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file, each checked; a bad line fails the whole file, naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        fail(f"--input '{path}' is not UTF-8 text (line {line}); give a JSONL file.")
    except OSError as exc:
        fail(f"--input '{path}' cannot be read: {exc.strerror or exc}.")
    records: list[dict[str, Any]] = []
    seen: dict[Any, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        problem = _check_record(line)
        if isinstance(problem, str):
            fail(f"--input '{path}', line {number}: {problem}")
        record = problem
        record.setdefault("id", number)
        if record["id"] in seen:
            fail(
                f"--input '{path}', line {number}: id {record['id']!r} was already used on line "
                f"{seen[record['id']]}; ids must be unique."
            )
        seen[record["id"]] = number
        records.append(record)
    if not records:
        fail(f"--input '{path}' holds no records; give one JSON object a line with a 'prompt'.")
    return records


def _check_record(line: str) -> dict[str, Any] | str:
    """The record on ``line``, or what is wrong with it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at column {exc.colno})."
    if not isinstance(record, dict):
        return f"a record must be a JSON object, got {type(record).__name__}."
    unknown = sorted(set(record) - set(RECORD_KEYS))
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}; a record has {', '.join(RECORD_KEYS)}."
    prompt, response = record.get("prompt"), record.get("response")
    if not isinstance(prompt, str) or not prompt.strip():
        return "needs a non-empty 'prompt' string (the user's request)."
    if response is not None and (not isinstance(response, str) or not response.strip()):
        return "'response' must be a non-empty string, or left out (or null) to classify the request alone."
    if "id" in record and (isinstance(record["id"], bool) or not isinstance(record["id"], (str, int))):
        return "'id' must be a string or an integer."
    return record


def read_done(output: Path, records: list[dict[str, Any]]) -> dict[Any, Verdict]:
    """Verdicts an earlier run wrote to ``output``, by id; a line cut off by an interruption is dropped."""
    if not output.is_file():
        return {}
    try:
        text = output.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        fail(f"--output '{output}' exists and is not a verdict file; give a new file or remove it.")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):  # interrupted mid-write: that verdict is produced again
        output.write_text("".join(lines[:-1]), encoding="utf-8")
        lines = lines[:-1]
    ids = {record["id"] for record in records}
    done: dict[Any, Verdict] = {}
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            verdict = Verdict.model_validate(row)
        except ValueError:
            fail(f"--output '{output}', line {number} is not a verdict; give a new file or remove it.")
        if row.get("id") not in ids:
            fail(
                f"--output '{output}', line {number} holds id {row.get('id')!r}, which --input does not have; "
                "it holds another run's verdicts: give a new file or remove it."
            )
        done[row["id"]] = verdict
    return done


def _classify_file(
    guard: Any,
    records: list[dict[str, Any]],
    done: dict[Any, Verdict],
    output: Path | None,
    batch_size: int,
    console: Console,
) -> list[Verdict]:
    todo = [record for record in records if record["id"] not in done]
    verdicts = dict(done)
    sink = output.open("a", encoding="utf-8") if output else sys.stdout
    try:
        with progress_bar(console=console) as progress:
            task = progress.add_task("Classifying", total=len(records), completed=len(done))
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                conversations = [{"prompt": r["prompt"], "response": r.get("response")} for r in batch]
                for record, verdict in zip(batch, guard.classify_batch(conversations), strict=True):
                    sink.write(json.dumps({"id": record["id"], **verdict.model_dump(mode="json")}) + "\n")
                    verdicts[record["id"]] = verdict
                sink.flush()
                progress.advance(task, len(batch))
    finally:
        if output:
            sink.close()
    return [verdicts[record["id"]] for record in records]


def _outcome(verdict: Verdict) -> str:
    if verdict.decided_by == "policy":
        return "undecided"
    return "harmful" if verdict.is_harmful else "safe"


def exit_code(verdicts: list[Verdict]) -> ExitCode:
    """3 if any verdict was the policy's, else 1 if any is harmful, else 0."""
    outcomes = {_outcome(verdict) for verdict in verdicts}
    if "undecided" in outcomes:
        return ExitCode.UNDECIDED
    return ExitCode.HARMFUL if "harmful" in outcomes else ExitCode.SAFE


def _load_engine_spec(spec: str) -> Any:
    """``MODULE:NAME``: an :class:`~guardreasoner.engines.Engine` instance, or a function that returns one."""
    from guardreasoner.engines import Engine

    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fail(f"--engine '{spec}': cannot import module '{module_name}' ({exc}).")
    target = getattr(module, name, None)
    if target is None:
        fail(f"--engine '{spec}': module '{module_name}' has no '{name}'.")
    engine = target() if callable(target) and not isinstance(target, Engine) else target
    if not isinstance(engine, Engine):
        fail(f"--engine '{spec}' is a {type(engine).__name__}, not a guardreasoner.Engine.")
    return engine


def _show(verdict: Verdict) -> None:
    """The verdict for a reader. Model text is printed as text: brackets in it are not markup."""
    out = Console(markup=False, highlight=False, soft_wrap=True)
    decision = Text("Decision: ")
    decision.append(
        "HARMFUL" if verdict.is_harmful else "SAFE", style="red" if verdict.is_harmful else "green"
    )
    if verdict.decided_by == "policy":
        decision.append(f" (undecided: policy {verdict.policy} decided, {verdict.parse_status.value})")
    out.print(decision)
    out.print(f"  Request:    {verdict.prompt_harmfulness or '-'}")
    out.print(f"  Completion: {verdict.response_refusal or '-'}")
    out.print(f"  Response:   {verdict.response_harmfulness or '-'}")
    if verdict.reasoning_mode is not ReasoningMode.ALWAYS:
        out.print(Text("Reasoning: ") + Text(reasoning_note(verdict)))
    if verdict.parse_detail:
        out.print(Text("Note: ", style="yellow") + Text(verdict.parse_detail))
    for section in verdict.reasoning:
        out.print(Text(f"\nTask {section.task.value}", style="bold"))
        for number, step in enumerate(section.steps, 1):
            out.print(f"  {number}. {step}")
        if section.conclusion:
            out.print(f"  => {section.conclusion}")


def reasoning_note(verdict: Verdict) -> str:
    """Whether an answer-first verdict (``--reasoning auto|never``) was reasoned in full, and why."""
    scores = ", ".join(f"{field} {score:.3g}" for field, score in verdict.first_pass_scores.items()) or "none"
    mode = f"--reasoning {verdict.reasoning_mode.value}"
    if verdict.reasoned:
        return f"reasoned in full ({mode}): {verdict.escalation_reason}."
    return (
        f"answered without reasoning ({mode}, band {verdict.reasoning_band}): forced-answer scores {scores}."
    )
